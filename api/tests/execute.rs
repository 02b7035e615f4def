//! `POST /api/v1/execute`: the seed's shape, Tether's rich fields, and how each way an
//! execution can end maps to a status code.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on the first surprise"
)]

mod common;

use common::{Node, PNG, config, error_of, json_of, new_user, spawn_app, spawn_app_with};
use std::time::{Duration, Instant};
use tether_transport::JobStore;

#[tokio::test]
async fn success_has_seed_fields_and_rich_fields() {
    let app = spawn_app().await;
    let user = new_user();
    let body = json_of(app.execute(&user, "print('hello'); 1+1").await, 200).await;
    assert!(body["worker_id"].as_str().unwrap().starts_with("node-1-"));
    assert_eq!(body["result_text"], "hello\n2");
    assert!(body["result_base64"].is_null());
    assert_eq!(body["stdout"], "hello\n");
    assert_eq!(body["stderr"], "");
    assert_eq!(body["outcome"], "ok");
    assert_eq!(body["state_preserved"], true);
    assert_eq!(body["execution_count"], 1);
    assert_eq!(body["truncated"], false);
    assert!(body["duration_ms"].is_u64());
    assert!(body["error"].is_null());
    assert_eq!(body["seq"], 1);
    assert!(body["job_id"].is_string());
    let outputs = body["outputs"].as_array().unwrap();
    assert_eq!(outputs[0]["type"], "stream");
    assert_eq!(outputs[1]["type"], "execute_result");
    assert_eq!(outputs[1]["data"]["text/plain"], "2");
}

#[tokio::test]
async fn worker_id_is_stable_per_session() {
    let app = spawn_app().await;
    let (a, b) = (new_user(), new_user());
    let first = json_of(app.execute(&a, "1").await, 200).await;
    let again = json_of(app.execute(&a, "1").await, 200).await;
    let other = json_of(app.execute(&b, "1").await, 200).await;
    assert_eq!(first["worker_id"], again["worker_id"]);
    assert_ne!(first["worker_id"], other["worker_id"]);
    assert_eq!(again["seq"], 2);
}

#[tokio::test]
async fn image_and_text_come_in_one_response() {
    let app = spawn_app().await;
    let body = json_of(app.execute(&new_user(), "png").await, 200).await;
    assert_eq!(body["result_base64"], PNG);
    assert_eq!(body["result_text"], "plot\n");
    assert_eq!(body["outputs"][1]["type"], "display_data");
}

#[tokio::test]
async fn python_error_is_200_with_error_text_and_structure() {
    let app = spawn_app().await;
    let body = json_of(app.execute(&new_user(), "raise").await, 200).await;
    assert_eq!(body["result_text"], "ZeroDivisionError: division by zero");
    assert_eq!(body["outcome"], "error");
    assert_eq!(body["error"]["ename"], "ZeroDivisionError");
    assert_eq!(body["error"]["evalue"], "division by zero");
    assert!(!body["error"]["traceback"].as_array().unwrap().is_empty());
    assert_eq!(body["stdout"], "before\n");
    assert_eq!(body["state_preserved"], true);
}

#[tokio::test]
async fn timeout_is_503_saying_state_was_kept() {
    let app = spawn_app().await;
    let body = error_of(
        app.execute(&new_user(), "timeout").await,
        503,
        "execution_timeout",
    )
    .await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("timed out after 30 seconds"), "{detail}");
    assert!(
        detail.contains("interrupted") && detail.contains("kept"),
        "{detail}"
    );
    assert_eq!(body["execution"]["outcome"], "timeout_interrupted");
    assert_eq!(body["execution"]["state_preserved"], true);
    assert_eq!(body["execution"]["stdout"], "partial\n");
}

#[tokio::test]
async fn timeout_that_restarted_the_kernel_says_the_environment_was_reset() {
    let app = spawn_app().await;
    let body = error_of(
        app.execute(&new_user(), "timeout-reset").await,
        503,
        "execution_timeout",
    )
    .await;
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("restarted") && detail.contains("reset"),
        "{detail}"
    );
    assert_eq!(body["execution"]["state_preserved"], false);
}

#[tokio::test]
async fn sandbox_crash_is_504() {
    let app = spawn_app().await;
    let body = error_of(
        app.execute(&new_user(), "crash").await,
        504,
        "sandbox_unavailable",
    )
    .await;
    assert!(body["execution"].is_null());
    let body = error_of(
        app.execute(&new_user(), "oom").await,
        504,
        "sandbox_unavailable",
    )
    .await;
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("out of memory") && detail.contains("reset"),
        "{detail}"
    );
    assert_eq!(body["execution"]["outcome"], "oom_killed");
}

#[tokio::test]
async fn full_pool_is_503_with_retry_after() {
    let app = spawn_app().await;
    let response = app.execute(&new_user(), "full").await;
    assert!(response.headers().get("retry-after").is_some());
    error_of(response, 503, "no_capacity").await;

    // Placement itself can find every node full.
    let app = spawn_app_with(config(), Node::Full).await;
    let response = app.execute(&new_user(), "1").await;
    assert!(response.headers().get("retry-after").is_some());
    error_of(response, 503, "no_capacity").await;
}

#[tokio::test]
async fn starting_service_is_503_unavailable_with_retry_after() {
    for node in [Node::Absent, Node::Starting] {
        let app = spawn_app_with(config(), node).await;
        let response = app.execute(&new_user(), "1").await;
        let after: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(after >= 1);
        let body = error_of(response, 503, "unavailable").await;
        assert!(body["detail"].as_str().unwrap().contains("initializing"));
    }
}

#[tokio::test]
async fn a_worker_that_never_answers_is_a_bounded_504_and_the_job_is_cancelled() {
    let mut config = config();
    config.sync_wait_margin = Duration::from_millis(300);
    let app = spawn_app_with(config, Node::Ready).await;
    let start = Instant::now();
    let response = app
        .post_json(
            &format!("/api/v1/execute?user_uuid={}", new_user()),
            serde_json::json!({ "code": "hang", "timeout_s": 0.2 }),
        )
        .await;
    let body = error_of(response, 504, "sandbox_unavailable").await;
    assert!(start.elapsed() < Duration::from_secs(10));
    let message = body["error"]["message"].as_str().unwrap();
    let id = message.split_whitespace().nth(1).unwrap();
    let record = app
        .store
        .get(id.try_into().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(record.cancel_requested);
}

#[tokio::test]
async fn shutdown_ends_waiting_calls_with_503_and_stops_the_server() {
    let app = spawn_app().await;
    let waiting = {
        let client = app.client.clone();
        let url = app.url(&format!("/api/v1/execute?user_uuid={}", new_user()));
        tokio::spawn(async move {
            client
                .post(url)
                .header("X-Auth-Token", common::TOKEN)
                .json(&serde_json::json!({ "code": "hang" }))
                .send()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.shutdown.cancel();
    let response = waiting.await.unwrap();
    error_of(response, 503, "unavailable").await;
    tokio::time::timeout(Duration::from_secs(10), app.server)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
}
