//! Issue 5 in distributed mode: the same job API over RabbitMQ and Redis, the API, the
//! node and the webhook courier each on its own store connection (as separate processes).

mod common;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use common::jobs::SseItem;
use common::{AppOptions, new_user, spawn_app};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_api_works_the_same_on_rabbitmq_and_redis() {
    // A receiver that fails once, then accepts.
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let receiver = Router::new().route(
        "/hook",
        post(move || {
            let counter = counter.clone();
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, receiver).await.expect("serve") });

    let app = spawn_app(
        "jobs-dist",
        AppOptions {
            distributed: true,
            egress_allow: format!("127.0.0.1:{port}"),
            ..AppOptions::default()
        },
    )
    .await;
    let user = new_user();
    let (status, body) = app.execute(&user, "kept = 'here'").await;
    assert_eq!(status, 200, "{body}");

    // Submit with a key and a callback; the replay gets the same job.
    let request = json!({"user_uuid": user, "type": "execute",
        "code": "import time\nfor i in range(4):\n    print(i, flush=True)\n    time.sleep(0.3)",
        "callback_url": format!("http://127.0.0.1:{port}/hook")});
    let (status, first) = app.submit_job(&request, Some("dist-1")).await;
    assert_eq!(status, 202, "{first}");
    let (status, replay) = app.submit_job(&request, Some("dist-1")).await;
    assert_eq!((status, &replay["job_id"]), (200, &first["job_id"]));
    let id = first["job_id"].as_str().expect("id").to_owned();

    // Stream two events, drop, resume: every event once, stdout complete.
    let mut stream = app.events(&id, None).await;
    let mut ids = Vec::new();
    let mut stdout = String::new();
    while ids.len() < 2 {
        if let Some(SseItem::Event {
            id: Some(n),
            event,
            data,
        }) = stream.next().await
        {
            ids.push(n);
            if event == "stdout" {
                stdout.push_str(data["text"].as_str().expect("text"));
            }
        }
    }
    drop(stream);
    let mut stream = app.events(&id, Some(ids[1])).await;
    let mut result = None;
    while let Some(item) = stream.next().await {
        if let SseItem::Event { id, event, data } = item {
            match (id, event.as_str()) {
                (Some(n), "stdout") => {
                    ids.push(n);
                    stdout.push_str(data["text"].as_str().expect("text"));
                }
                (Some(n), _) => ids.push(n),
                (None, "result") => result = Some(data),
                _ => {}
            }
        }
    }
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    assert_eq!(stdout, "0\n1\n2\n3\n");
    assert_eq!(result.expect("result")["status"], "succeeded");

    // The webhook is retried once and delivered.
    let deadline = Instant::now() + Duration::from_secs(60);
    let delivery = loop {
        let r = app
            .get(&format!("/api/v1/jobs/{id}/deliveries"))
            .send()
            .await
            .expect("request");
        let body: Value = r.json().await.expect("json");
        if body["deliveries"][0]["state"] == "delivered" {
            break body["deliveries"][0].clone();
        }
        assert!(Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let codes: Vec<u64> = delivery["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["status_code"].as_u64().expect("code"))
        .collect();
    assert_eq!(codes, vec![503, 204]);
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    // Cancel a running job; the session keeps its state.
    let sleeper = app.submit_code(&user, "import time\ntime.sleep(30)").await;
    while app.job(&sleeper, 0).await["status"] != "running" {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let asked = Instant::now();
    assert_eq!(app.cancel(&sleeper).await.0, 202);
    let view = app.job(&sleeper, 10).await;
    eprintln!(
        "distributed: running job cancelled {:?} after DELETE",
        asked.elapsed()
    );
    assert_eq!(view["status"], "cancelled");
    let (_, body) = app.execute(&user, "print(kept)").await;
    assert_eq!(body["result_text"], "here\n");

    // The listing is in seq order.
    let r = app
        .get(&format!("/api/v1/sessions/{user}/jobs"))
        .send()
        .await
        .expect("request");
    let listed: Value = r.json().await.expect("json");
    let seqs: Vec<u64> = listed["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    app.stop().await;
}
