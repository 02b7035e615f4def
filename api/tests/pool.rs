//! Release, status and CORS: the session and pool endpoints around execution.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on the first surprise"
)]

mod common;

use common::{NODE, Node, TOKEN, config, error_of, json_of, new_user, spawn_app, spawn_app_with};
use std::time::Duration;
use tether_api::CorsOrigins;
use tether_protocol::{NodeId, UserUuid};
use tether_transport::{JobBus, SessionRegistry};

async fn release(app: &common::TestApp, user: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/release?user_uuid={user}")))
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn release_is_204_and_idempotent() {
    let app = spawn_app().await;
    let user = new_user();
    // Never seen: no sandbox, still 204.
    let r = release(&app, &user).await;
    assert_eq!(r.status(), 204);
    assert!(r.text().await.unwrap().is_empty());
    json_of(app.execute(&user, "1").await, 200).await;
    assert_eq!(release(&app, &user).await.status(), 204);
    assert_eq!(release(&app, &user).await.status(), 204);
}

#[tokio::test]
async fn release_of_an_unknown_session_needs_no_node() {
    let app = spawn_app_with(config(), Node::Absent).await;
    assert_eq!(release(&app, &new_user()).await.status(), 204);
}

#[tokio::test]
async fn release_of_a_session_whose_node_vanished_is_204() {
    let app = spawn_app().await;
    let user = new_user();
    json_of(app.execute(&user, "1").await, 200).await;
    // The node's queue disappears but its heartbeat has not expired yet.
    app.bus
        .delete_queue(&NodeId::try_from(NODE).unwrap())
        .await
        .unwrap();
    assert_eq!(release(&app, &user).await.status(), 204);
    let uuid = UserUuid::try_from(user.as_str()).unwrap();
    assert_eq!(app.registry.session_node(uuid).await.unwrap(), None);
}

#[tokio::test]
async fn status_sums_live_nodes_with_detail() {
    let app = spawn_app().await;
    let body = json_of(app.get("/api/v1/status").await, 200).await;
    assert_eq!(body["total_workers"], 4);
    assert_eq!(body["busy_workers"], 1);
    assert_eq!(body["is_initializing"], false);
    assert_eq!(body["idle_workers"], 2);
    assert_eq!(body["sessions"], 2);
    assert_eq!(body["capacity"], 10);
    let node = &body["nodes"][0];
    assert_eq!(node["id"], NODE);
    assert_eq!(node["ready"], true);
    assert_eq!(node["free"], 8);

    for starting in [Node::Starting, Node::Absent] {
        let app = spawn_app_with(config(), starting).await;
        let body = json_of(app.get("/api/v1/status").await, 200).await;
        assert_eq!(body["is_initializing"], true);
    }
}

async fn preflight(app: &common::TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(
            reqwest::Method::OPTIONS,
            app.url("/api/v1/execute?user_uuid=x"),
        )
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "content-type,x-auth-token",
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_is_off_by_default() {
    let app = spawn_app().await;
    let r = preflight(&app, "http://page.example").await;
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = app
        .client
        .get(app.url("/api/v1/status"))
        .header("X-Auth-Token", TOKEN)
        .header("Origin", "http://page.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn cors_allows_exactly_the_configured_origins() {
    let mut config = config();
    config.cors_origins = "http://page.example, null".parse::<CorsOrigins>().unwrap();
    let app = spawn_app_with(config, Node::Ready).await;
    let r = preflight(&app, "http://page.example").await;
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://page.example"
    );
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("x-auth-token"), "{allowed}");

    let r = preflight(&app, "http://evil.example").await;
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // A real cross-origin call (file:// pages send Origin: null) gets the header, and an
    // error answer too, so the page can read the detail.
    let r = app
        .client
        .post(app.url("/execute"))
        .header("Origin", "null")
        .header("X-Auth-Token", "wrong")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "null");
    error_of(r, 401, "unauthorized").await;
}

#[tokio::test]
async fn status_reflects_heartbeats_that_expire() {
    let app = spawn_app_with(config(), Node::Absent).await;
    let info = tether_transport::NodeInfo {
        id: NodeId::try_from("short-lived").unwrap(),
        capacity: 3,
        sessions: 0,
        draining: false,
        detail: serde_json::json!({ "ready": true }),
    };
    app.registry
        .heartbeat(info, Duration::from_millis(200))
        .await
        .unwrap();
    let body = json_of(app.get("/api/v1/status").await, 200).await;
    assert_eq!(body["total_workers"], 3, "falls back to capacity: {body}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let body = json_of(app.get("/api/v1/status").await, 200).await;
    assert_eq!(body["nodes"], serde_json::json!([]));
    assert_eq!(body["is_initializing"], true);
}
