//! Issue 3, acceptance 2: the seed-compatible API over HTTP against real sandboxes.

mod common;

use common::{AppOptions, TOKEN, new_user, spawn_app};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_isolation_images_errors_release() {
    let app = spawn_app("http", AppOptions::default()).await;
    let (a, b) = (new_user(), new_user());

    // Statefulness across requests.
    let (s, body) = app.execute(&a, "x = 41").await;
    assert_eq!(s, 200, "{body}");
    assert!(body["worker_id"].is_string());
    let (s, body) = app.execute(&a, "x += 1\nprint(x)").await;
    assert_eq!(s, 200);
    assert_eq!(body["result_text"], "42\n");
    assert_eq!(body["result_base64"], serde_json::Value::Null);
    assert_eq!(body["stdout"], "42\n");
    assert_eq!(body["outcome"], "ok");

    // Two users are isolated.
    let (s, body) = app.execute(&b, "print(x)").await;
    assert_eq!(s, 200);
    assert_eq!(body["result_text"], "NameError: name 'x' is not defined");
    assert_eq!(body["error"]["ename"], "NameError");
    assert!(
        body["error"]["traceback"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    );

    // Image and text in one response.
    let plot = "import matplotlib.pyplot as plt\nplt.plot([3, 1, 2])\nplt.show()\nprint('plotted')\n'last'";
    let (s, body) = app.execute(&a, plot).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["result_text"], "plotted\n'last'");
    assert!(
        body["result_base64"]
            .as_str()
            .is_some_and(|p| p.len() > 1000)
    );

    // Python error → 200 with the seed's text and the structured error.
    let (s, body) = app.execute(&a, "print('before')\n1/0").await;
    assert_eq!(s, 200);
    assert_eq!(body["result_text"], "ZeroDivisionError: division by zero");
    assert_eq!(body["stdout"], "before\n");
    assert_eq!(body["outcome"], "error");

    // Release → 204, then fresh state; releasing again (unknown) is also 204.
    let r = app
        .post(&format!("/api/v1/release?user_uuid={a}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (s, body) = app.execute(&a, "print('x' in globals())").await;
    assert_eq!(s, 200);
    assert_eq!(body["result_text"], "False\n");
    let r = app
        .post(&format!("/api/v1/release?user_uuid={}", new_user()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_is_503_and_the_session_still_works() {
    let app = spawn_app(
        "timeout",
        AppOptions {
            default_timeout: Duration::from_secs(2),
            ..AppOptions::default()
        },
    )
    .await;
    let u = new_user();
    app.execute(&u, "kept = 5").await;
    let (s, body) = app.execute(&u, "import time\ntime.sleep(20)").await;
    assert_eq!(s, 503, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("state was kept"), "{detail}");
    assert_eq!(body["error"]["code"], "execution_timeout");
    let (s, body) = app.execute(&u, "print(kept)").await;
    assert_eq!(s, 200);
    assert_eq!(body["result_text"], "5\n");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let app = spawn_app(
        "badreq",
        AppOptions {
            max_code_bytes: 1000,
            ..AppOptions::default()
        },
    )
    .await;
    let url = |p: &str| format!("{}{p}", app.url);
    let u = new_user();

    // 401 without and with a wrong token.
    let r = app
        .client
        .post(url(&format!("/api/v1/execute?user_uuid={u}")))
        .json(&json!({"code": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(body["detail"].is_string());
    let r = app
        .client
        .post(url(&format!("/api/v1/execute?user_uuid={u}")))
        .header("X-Auth-Token", "wrong")
        .json(&json!({"code": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // 422: missing user_uuid, invalid user_uuid, non-JSON body, wrong field type.
    let r = app
        .post("/api/v1/execute")
        .json(&json!({"code": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("user_uuid"),
        "{body}"
    );
    let r = app
        .post("/api/v1/execute?user_uuid=not-a-uuid")
        .json(&json!({"code": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let r = app
        .post(&format!("/api/v1/execute?user_uuid={u}"))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"]["code"].is_string(), "{body}");
    let r = app
        .post(&format!("/api/v1/execute?user_uuid={u}"))
        .json(&json!({"code": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap_or_default().contains("code"),
        "{body}"
    );

    // 413: code over the limit.
    let big = "x = 1\n".repeat(400);
    let r = app
        .post(&format!("/api/v1/execute?user_uuid={u}"))
        .json(&json!({"code": big}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_pool_is_503_with_retry_after() {
    let app = spawn_app(
        "full",
        AppOptions {
            max_total: 2,
            min_idle: 0,
            ..AppOptions::default()
        },
    )
    .await;
    for _ in 0..2 {
        let (s, body) = app.execute(&new_user(), "1").await;
        assert_eq!(s, 200, "{body}");
    }
    let r = app
        .post(&format!("/api/v1/execute?user_uuid={}", new_user()))
        .json(&json!({"code": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no_capacity");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_unversioned_endpoints_keep_their_contract() {
    let app = spawn_app("legacy", AppOptions::default()).await;
    let u = new_user();
    let r = app
        .post("/execute")
        .json(&json!({"user_uuid": u, "code": "a = 10\nb = 20"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = app
        .post("/execute")
        .json(&json!({"user_uuid": u, "code": "print(a * b)"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["result_text"], "200\n");
    let r = app
        .post("/execute")
        .json(&json!({"user_uuid": u, "code": "1/0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["detail"],
        "Python Execution Error: ZeroDivisionError: division by zero"
    );
    let r = app
        .post("/release")
        .json(&json!({"user_uuid": u}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(
        body["detail"],
        format!("Worker for user {u} has been released.")
    );
    let r = app.get("/status").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    for key in [
        "total_workers",
        "busy_workers",
        "idle_workers_in_pool",
        "is_initializing",
    ] {
        assert!(body.get(key).is_some(), "missing {key} in {body}");
    }
    let r = app.get("/api/v1/status").send().await.unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    for key in ["total_workers", "busy_workers", "is_initializing"] {
        assert!(body.get(key).is_some(), "missing {key} in {body}");
    }
    let _ = TOKEN;
    app.stop().await;
}
