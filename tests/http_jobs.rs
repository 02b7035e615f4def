//! Issue 5, acceptance 1, 4, 5 and 6: the async job API over HTTP against real sandboxes.

mod common;

use common::{AppOptions, new_user, spawn_app};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The fields of an execution that do not depend on timing.
fn comparable(result: &Value) -> Value {
    let mut result = result.clone();
    let object = result.as_object_mut().expect("object");
    for volatile in [
        "duration_ms",
        "type",
        "worker_id",
        "result_text",
        "result_base64",
        "job_id",
        "seq",
    ] {
        object.remove(volatile);
    }
    result
}

/// Acceptance 1: submit → poll gives what the sync endpoint gives; `?wait` returns as soon
/// as the job ends. Also: a callback URL to 127.0.0.1 is refused without an allow-list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_matches_sync_and_wait_returns_early() {
    let app = spawn_app("jobs-poll", AppOptions::default()).await;
    for code in [
        "import math\nprint('a', math.pi)\nprint('b')\n{'x': [1, 2]}",
        "print('before')\nraise ValueError('boom')",
    ] {
        let (sync_user, async_user) = (new_user(), new_user());
        let (status, sync) = app.execute(&sync_user, code).await;
        assert_eq!(status, 200, "{sync}");
        let id = app.submit_code(&async_user, code).await;
        let view = loop {
            let view = app.job(&id, 0).await;
            if view["status"] != "queued" && view["status"] != "running" {
                break view;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(view["status"], "succeeded", "{view}");
        assert_eq!(view["result"]["type"], "execute");
        assert_eq!(
            comparable(&view["result"]),
            comparable(&sync),
            "code {code:?}"
        );
        assert!(view["started_at"].as_u64().is_some() && view["node_id"].is_string());
    }

    let user = new_user();
    let id = app
        .submit_code(&user, "import time\ntime.sleep(1)\nprint('done')")
        .await;
    let started = Instant::now();
    let view = app.job(&id, 30).await;
    let waited = started.elapsed();
    eprintln!("acceptance 1: ?wait=30 on a 1 s job returned after {waited:?}");
    assert_eq!(view["status"], "succeeded");
    assert_eq!(view["result"]["stdout"], "done\n");
    assert!(waited < Duration::from_secs(15), "{waited:?}");

    // No allow-list: a callback to this machine is refused at submit time.
    let (status, body) = app
        .submit_job(
            &json!({"user_uuid": user, "type": "execute", "code": "1",
                    "callback_url": "http://127.0.0.1:8080/hook"}),
            None,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "callback_url");
    app.stop().await;
}

/// Acceptance 4: a queued job cancelled behind a 3 s job never runs; a running
/// `time.sleep(30)` ends `cancelled` within 3 s and the session keeps its variables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_queued_and_running_jobs() {
    let app = spawn_app("jobs-cancel", AppOptions::default()).await;
    let user = new_user();
    let (status, _) = app.execute(&user, "kept = 41").await;
    assert_eq!(status, 200);

    let blocker = app
        .submit_code(&user, "import time\ntime.sleep(3)\nprint('blocker done')")
        .await;
    let victim = app
        .submit_code(
            &user,
            "side_effect = True\nopen('/sandbox/side-effect', 'w').write('ran')",
        )
        .await;
    let (status, cancelled) = app.cancel(&victim).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["error"]["code"], "cancelled");
    assert_eq!(app.finished(&blocker).await["status"], "succeeded");
    let victim_view = app.finished(&victim).await;
    assert_eq!(victim_view["status"], "cancelled");
    assert_eq!(victim_view["started_at"], Value::Null);
    let (_, check) = app
        .execute(
            &user,
            "import os\nprint('side_effect' in globals(), os.path.exists('/sandbox/side-effect'))",
        )
        .await;
    assert_eq!(check["result_text"], "False False\n", "{check}");
    // Cancelling again is harmless: still cancelled.
    assert_eq!(app.cancel(&victim).await.0, 200);
    // A finished job cannot be cancelled.
    let (status, body) = app.cancel(&blocker).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "job_finished");

    let sleeper = app.submit_code(&user, "import time\ntime.sleep(30)").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.job(&sleeper, 0).await["status"] != "running" {
        assert!(Instant::now() < deadline, "never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    let (status, body) = app.cancel(&sleeper).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["cancel_requested"], true);
    let view = app.job(&sleeper, 10).await;
    let took = asked.elapsed();
    eprintln!("acceptance 4: running job cancelled {took:?} after DELETE");
    assert_eq!(view["status"], "cancelled", "{view}");
    assert_eq!(view["result"]["outcome"], "cancelled");
    assert_eq!(view["result"]["state_preserved"], true);
    assert!(took < Duration::from_secs(3), "{took:?}");
    let (_, body) = app.execute(&user, "print(kept + 1)").await;
    assert_eq!(body["result_text"], "42\n", "{body}");
    app.stop().await;
}

/// Acceptance 5: one Idempotency-Key, one job (and one execution); a changed body → 422.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_submission_runs_once() {
    let app = spawn_app("jobs-idem", AppOptions::default()).await;
    let user = new_user();
    let body = json!({"user_uuid": user, "type": "execute",
                      "code": "runs = globals().get('runs', 0) + 1\nprint(runs)"});
    let (first_status, first) = app.submit_job(&body, Some("order-17")).await;
    let (second_status, second) = app.submit_job(&body, Some("order-17")).await;
    assert_eq!(
        (first_status, second_status),
        (202, 200),
        "{first} {second}"
    );
    assert_eq!(first["job_id"], second["job_id"]);
    let id = first["job_id"].as_str().unwrap();
    app.finished(id).await;
    let (third_status, third) = app.submit_job(&body, Some("order-17")).await;
    assert_eq!(third_status, 200);
    assert_eq!(third["status"], "succeeded");

    let mut changed = body.clone();
    changed["code"] = json!("print('different')");
    let (status, error) = app.submit_job(&changed, Some("order-17")).await;
    assert_eq!(status, 422);
    assert_eq!(error["error"]["code"], "idempotency_conflict");

    let (_, check) = app.execute(&user, "print(runs)").await;
    assert_eq!(check["result_text"], "1\n", "the job ran more than once");
    app.stop().await;
}

/// Acceptance 6: 50 jobs submitted back-to-back for one session run in seq order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_jobs_run_in_seq_order() {
    let app = spawn_app("jobs-order", AppOptions::default()).await;
    let user = new_user();
    app.submit_code(&user, "order = []").await;
    let started = Instant::now();
    let mut last = String::new();
    let mut seqs = Vec::new();
    for i in 0..50 {
        let (status, body) = app
            .submit_job(
                &json!({"user_uuid": user, "type": "execute", "code": format!("order.append({i})")}),
                None,
            )
            .await;
        assert_eq!(status, 202, "{body}");
        seqs.push(body["seq"].as_u64().unwrap());
        last = body["job_id"].as_str().unwrap().to_owned();
    }
    let submitted = started.elapsed();
    assert_eq!(seqs, (2..=51).collect::<Vec<u64>>());
    assert_eq!(app.finished(&last).await["status"], "succeeded");
    eprintln!(
        "acceptance 6: 50 submissions took {submitted:?}; all 50 ran after {:?}",
        started.elapsed()
    );
    let (_, body) = app
        .execute(&user, "print(order == list(range(50)), len(order))")
        .await;
    assert_eq!(body["result_text"], "True 50\n", "{body}");

    // The listing shows them in seq order, each started after the one before.
    let r = app
        .get(&format!("/api/v1/sessions/{user}/jobs?limit=200"))
        .send()
        .await
        .unwrap();
    let listed: Value = r.json().await.unwrap();
    let jobs = listed["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 52, "51 jobs + the sync check");
    let starts: Vec<u64> = jobs
        .iter()
        .map(|j| j["started_at"].as_u64().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
    app.stop().await;
}
