//! The unversioned endpoints keep the seed's older contract (its test.html uses them).
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on the first surprise"
)]

mod common;

use common::{PNG, error_of, json_of, new_user, spawn_app};
use serde_json::json;

#[tokio::test]
async fn execute_answers_text_or_image() {
    let app = spawn_app().await;
    let user = new_user();
    let body = json_of(
        app.post_json("/execute", json!({ "user_uuid": user, "code": "1+1" }))
            .await,
        200,
    )
    .await;
    assert_eq!(body["result_text"], "hello\n2");
    assert!(body["result_base64"].is_null());
    let body = json_of(
        app.post_json("/execute", json!({ "user_uuid": user, "code": "png" }))
            .await,
        200,
    )
    .await;
    assert_eq!(body["result_base64"], PNG);
    assert!(
        body["result_text"].is_null(),
        "the seed sent an image or text: {body}"
    );
}

#[tokio::test]
async fn unknown_body_fields_are_ignored_as_the_seed_did() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/execute",
            json!({ "user_uuid": new_user(), "code": "1", "files": [] }),
        )
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn python_error_is_400_with_the_seed_detail() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/execute",
            json!({ "user_uuid": new_user(), "code": "raise" }),
        )
        .await;
    let body = error_of(r, 400, "execution_error").await;
    assert_eq!(
        body["detail"],
        "Python Execution Error: ZeroDivisionError: division by zero"
    );
    assert_eq!(body["execution"]["error"]["ename"], "ZeroDivisionError");
}

#[tokio::test]
async fn timeout_is_400_as_in_the_seed() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/execute",
            json!({ "user_uuid": new_user(), "code": "timeout-reset" }),
        )
        .await;
    let body = error_of(r, 400, "execution_timeout").await;
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("Code execution timed out after"),
        "{detail}"
    );
    assert!(detail.contains("reset"), "{detail}");
}

#[tokio::test]
async fn crash_and_full_pool_keep_their_status() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/execute",
            json!({ "user_uuid": new_user(), "code": "crash" }),
        )
        .await;
    error_of(r, 504, "sandbox_unavailable").await;
    let r = app
        .post_json(
            "/execute",
            json!({ "user_uuid": new_user(), "code": "full" }),
        )
        .await;
    assert!(r.headers().get("retry-after").is_some());
    error_of(r, 503, "no_capacity").await;
}

#[tokio::test]
async fn bad_user_uuid_in_the_body_is_422_naming_it() {
    let app = spawn_app().await;
    for body in [
        json!({ "code": "1" }),
        json!({ "user_uuid": "bob", "code": "1" }),
    ] {
        let r = app.post_json("/execute", body).await;
        let got = error_of(r, 422, "invalid_request").await;
        assert_eq!(got["error"]["field"], "user_uuid", "{got}");
    }
    let r = app
        .post_json("/execute", json!({ "user_uuid": new_user(), "code": 1 }))
        .await;
    let got = error_of(r, 422, "invalid_request").await;
    assert_eq!(got["error"]["field"], "code", "{got}");
}

#[tokio::test]
async fn release_answers_the_seed_sentence_every_time() {
    let app = spawn_app().await;
    let user = new_user();
    json_of(
        app.post_json("/execute", json!({ "user_uuid": user, "code": "1" }))
            .await,
        200,
    )
    .await;
    for _ in 0..2 {
        let body = json_of(
            app.post_json("/release", json!({ "user_uuid": user }))
                .await,
            200,
        )
        .await;
        assert_eq!(
            body,
            json!({ "status": "ok", "detail": format!("Worker for user {user} has been released.") })
        );
    }
}

#[tokio::test]
async fn status_has_exactly_the_seed_fields() {
    let app = spawn_app().await;
    let body = json_of(app.get("/status").await, 200).await;
    assert_eq!(
        body,
        json!({
            "total_workers": 4, "busy_workers": 1, "idle_workers_in_pool": 2,
            "is_initializing": false
        })
    );
}
