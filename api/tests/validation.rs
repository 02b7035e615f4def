//! Authentication and request validation: 401, 404, 413 and 422 all in one error shape.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on the first surprise"
)]

mod common;

use common::{Node, TOKEN, config, error_of, json_of, new_user, spawn_app, spawn_app_with};
use serde_json::json;

#[tokio::test]
async fn missing_or_wrong_token_is_401() {
    let app = spawn_app().await;
    let url = app.url(&format!("/api/v1/execute?user_uuid={}", new_user()));
    let body = json!({ "code": "1" });
    let none = app.client.post(&url).json(&body).send().await.unwrap();
    let body_none = error_of(none, 401, "unauthorized").await;
    assert_eq!(
        body_none["detail"],
        "Invalid or missing authentication token"
    );
    let wrong = app
        .client
        .post(&url)
        .header("X-Auth-Token", format!("{TOKEN}x"))
        .json(&body)
        .send()
        .await
        .unwrap();
    error_of(wrong, 401, "unauthorized").await;
    for path in ["/api/v1/status", "/status"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        error_of(r, 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn probes_need_no_token() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(json_of(r, 200).await["status"], "ok");
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(json_of(r, 200).await["status"], "ready");

    let app = spawn_app_with(config(), Node::Starting).await;
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    error_of(r, 503, "unavailable").await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn user_uuid_missing_or_invalid_is_422_naming_it() {
    let app = spawn_app().await;
    for path in [
        "/api/v1/execute",
        "/api/v1/execute?user_uuid=",
        "/api/v1/execute?user_uuid=not-a-uuid",
        "/api/v1/execute?other=1",
    ] {
        let r = app.post_json(path, json!({ "code": "1" })).await;
        let body = error_of(r, 422, "invalid_request").await;
        assert_eq!(body["error"]["field"], "user_uuid", "{path}: {body}");
        assert!(body["detail"].as_str().unwrap().contains("user_uuid"));
    }
    let r = app
        .client
        .post(app.url("/api/v1/release"))
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .unwrap();
    error_of(r, 422, "invalid_request").await;
}

#[tokio::test]
async fn bad_bodies_are_422_naming_the_field() {
    let app = spawn_app().await;
    let path = format!("/api/v1/execute?user_uuid={}", new_user());
    let cases = [
        (json!({ "code": 5 }), "code"),
        (json!({}), "code"),
        (json!({ "code": "1", "cod": "x" }), "cod"),
        (json!({ "code": "1", "timeout_s": "soon" }), "timeout_s"),
        (json!({ "code": "1", "timeout_s": 0 }), "timeout_s"),
        (json!({ "code": "1", "timeout_s": 100_000 }), "timeout_s"),
        (json!(["code"]), "body"),
    ];
    for (body, field) in cases {
        let r = app.post_json(&path, body.clone()).await;
        let got = error_of(r, 422, "invalid_request").await;
        assert_eq!(got["error"]["field"], field, "{body}: {got}");
        assert!(got["detail"].as_str().unwrap().contains(field), "{got}");
    }
}

#[tokio::test]
async fn non_json_body_is_422_invalid_json() {
    let app = spawn_app().await;
    let url = app.url(&format!("/api/v1/execute?user_uuid={}", new_user()));
    for body in ["print(1)", "", "{\"code\": "] {
        let r = app
            .client
            .post(&url)
            .header("X-Auth-Token", TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        error_of(r, 422, "invalid_json").await;
    }
    // curl -d sends a form content type; a JSON body is still accepted.
    let r = app
        .client
        .post(&url)
        .header("X-Auth-Token", TOKEN)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"{"code": "1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn oversized_code_and_oversized_bodies_are_413() {
    let mut config = config();
    config.max_code_bytes = 1000;
    let app = spawn_app_with(config, Node::Ready).await;
    let path = format!("/api/v1/execute?user_uuid={}", new_user());
    let r = app
        .post_json(&path, json!({ "code": "x".repeat(1000) }))
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post_json(&path, json!({ "code": "x".repeat(1001) }))
        .await;
    let body = error_of(r, 413, "payload_too_large").await;
    assert!(body["detail"].as_str().unwrap().contains("1000 bytes"));
    // Far past the body limit: refused by axum's limit, same shape.
    let r = app
        .post_json(&path, json!({ "code": "x".repeat(200_000) }))
        .await;
    error_of(r, 413, "payload_too_large").await;
    let r = app
        .post_json(
            "/execute",
            json!({ "user_uuid": new_user(), "code": "x".repeat(200_000) }),
        )
        .await;
    error_of(r, 413, "payload_too_large").await;
}

#[tokio::test]
async fn unknown_route_is_404_in_the_error_shape() {
    let app = spawn_app().await;
    let r = app.get("/api/v1/nope").await;
    error_of(r, 404, "not_found").await;
}
