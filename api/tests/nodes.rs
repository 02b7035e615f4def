//! Draining a node: `POST /api/v1/nodes/{id}/drain` and `/undrain`.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on the first surprise"
)]

mod common;

use common::{NODE, error_of, json_of, new_user, spawn_app};

#[tokio::test]
async fn a_drained_node_keeps_its_sessions_and_takes_no_new_ones() {
    let app = spawn_app().await;
    let old = new_user();
    json_of(app.execute(&old, "1").await, 200).await;

    let body = json_of(
        app.post_json(
            &format!("/api/v1/nodes/{NODE}/drain"),
            serde_json::Value::Null,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["node_id"], NODE);
    assert_eq!(body["draining"], true);
    assert_eq!(body["live"], true);
    let status = json_of(app.get("/api/v1/status").await, 200).await;
    assert_eq!(status["nodes"][0]["draining"], true, "{status}");

    // The existing session still runs; a new one finds no node.
    json_of(app.execute(&old, "1").await, 200).await;
    error_of(app.execute(&new_user(), "1").await, 503, "no_capacity").await;

    let body = json_of(
        app.post_json(
            &format!("/api/v1/nodes/{NODE}/undrain"),
            serde_json::Value::Null,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["draining"], false);
    json_of(app.execute(&new_user(), "1").await, 200).await;
}

#[tokio::test]
async fn drain_names_a_live_node_and_needs_the_token() {
    let app = spawn_app().await;
    error_of(
        app.post_json("/api/v1/nodes/no-such-node/drain", serde_json::Value::Null)
            .await,
        404,
        "not_found",
    )
    .await;
    let body = error_of(
        app.post_json("/api/v1/nodes/Bad_Id/drain", serde_json::Value::Null)
            .await,
        422,
        "invalid_request",
    )
    .await;
    assert_eq!(body["error"]["field"], "id");
    // Undrain works for any node id (clearing a mark left on a node that died).
    let body = json_of(
        app.post_json("/api/v1/nodes/gone-node/undrain", serde_json::Value::Null)
            .await,
        200,
    )
    .await;
    assert_eq!(body["live"], false);
    let r = app
        .client
        .post(app.url(&format!("/api/v1/nodes/{NODE}/drain")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
