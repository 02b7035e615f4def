//! The job API's contract with the fake worker: validation, polling, idempotency,
//! listing, cancel and the event stream's ending.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on the first surprise"
)]

mod common;

use common::{TOKEN, TestApp, error_of, json_of, new_user, spawn_app};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

impl TestApp {
    async fn submit(&self, body: Value) -> reqwest::Response {
        self.post_json("/api/v1/jobs", body).await
    }

    async fn submit_keyed(&self, key: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/jobs"))
            .header("X-Auth-Token", TOKEN)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

fn execute(user: &str, code: &str) -> Value {
    json!({ "user_uuid": user, "type": "execute", "code": code })
}

async fn field_error(app: &TestApp, body: Value, field: &str) {
    let r = app.submit(body.clone()).await;
    let e = error_of(r, 422, "invalid_request").await;
    assert_eq!(e["error"]["field"], field, "{body} → {e}");
}

#[tokio::test]
async fn bad_submissions_name_the_field() {
    let app = spawn_app().await;
    let u = new_user();
    field_error(
        &app,
        json!({"user_uuid": u, "type": "compile", "code": "1"}),
        "type",
    )
    .await;
    field_error(&app, json!({"user_uuid": u, "code": "1"}), "type").await;
    field_error(&app, json!({"user_uuid": u, "type": "execute"}), "code").await;
    field_error(
        &app,
        json!({"user_uuid": u, "type": "release", "code": "1"}),
        "code",
    )
    .await;
    field_error(
        &app,
        json!({"user_uuid": "nope", "type": "execute", "code": "1"}),
        "user_uuid",
    )
    .await;
    for t in [0, -1, 301] {
        field_error(
            &app,
            json!({"user_uuid": u, "type": "execute", "code": "1", "timeout_s": t}),
            "timeout_s",
        )
        .await;
    }
    field_error(
        &app,
        json!({"user_uuid": u, "type": "execute", "code": "1", "timout_s": 5}),
        "timout_s",
    )
    .await;
    for url in [
        "not a url",
        "/relative",
        "ftp://example.com/x",
        "http://user:pw@example.com/",
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://169.254.169.254/latest",
        "http://10.0.0.1/",
        "http://100.64.0.1/",
    ] {
        let body = json!({"user_uuid": u, "type": "execute", "code": "1", "callback_url": url});
        field_error(&app, body, "callback_url").await;
    }
    let big = "x".repeat(20_000);
    field_error(
        &app,
        json!({"user_uuid": u, "type": "execute", "code": "1", "metadata": {"big": big}}),
        "metadata",
    )
    .await;
    // Nothing was created for the session.
    let listed = json_of(app.get(&format!("/api/v1/sessions/{u}/jobs")).await, 200).await;
    assert_eq!(listed["jobs"], json!([]));
}

#[tokio::test]
async fn submit_then_poll() {
    let app = spawn_app().await;
    let u = new_user();
    let body =
        json!({"user_uuid": u, "type": "execute", "code": "print(1)", "metadata": {"k": [1, 2]}});
    let r = app.submit(body).await;
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let accepted = json_of(r, 202).await;
    let id = accepted["job_id"].as_str().unwrap().to_owned();
    assert_eq!(accepted["status"], "queued");
    assert_eq!(accepted["seq"], 1);
    assert_eq!(location, format!("/api/v1/jobs/{id}"));
    assert_eq!(accepted["links"]["self"], location);
    assert_eq!(accepted["links"]["events"], format!("{location}/events"));

    let view = json_of(app.get(&format!("{location}?wait=10")).await, 200).await;
    assert_eq!(view["status"], "succeeded");
    assert_eq!(view["job_id"], id);
    assert_eq!(view["user_uuid"], u);
    assert_eq!(view["type"], "execute");
    assert_eq!(view["node_id"], "node-1");
    assert_eq!(view["metadata"], json!({"k": [1, 2]}));
    assert_eq!(view["result"]["stdout"], "hello\n");
    assert!(view["queued_at"].as_u64().unwrap() <= view["finished_at"].as_u64().unwrap());

    // A job that never ends: ?wait returns at its deadline with the current record.
    let r = app.submit(execute(&u, "hang")).await;
    let hang = json_of(r, 202).await["job_id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let view = json_of(app.get(&format!("/api/v1/jobs/{hang}?wait=1")).await, 200).await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(view["status"], "running");
    assert_eq!(view["result"], Value::Null);

    error_of(
        app.get(&format!("/api/v1/jobs/{id}?wait=61")).await,
        422,
        "invalid_request",
    )
    .await;
    error_of(
        app.get(&format!("/api/v1/jobs/{id}?wait=x")).await,
        422,
        "invalid_request",
    )
    .await;
    error_of(
        app.get(&format!("/api/v1/jobs/{}", new_user())).await,
        404,
        "not_found",
    )
    .await;
    error_of(app.get("/api/v1/jobs/not-a-job").await, 404, "not_found").await;
    error_of(
        app.get(&format!("/api/v1/jobs/{}/events", new_user()))
            .await,
        404,
        "not_found",
    )
    .await;
    error_of(
        app.get(&format!("/api/v1/jobs/{}/deliveries", new_user()))
            .await,
        404,
        "not_found",
    )
    .await;
    let d = json_of(app.get(&format!("/api/v1/jobs/{id}/deliveries")).await, 200).await;
    assert_eq!(d["deliveries"], json!([]));
}

#[tokio::test]
async fn idempotency_key_makes_one_job() {
    let app = spawn_app().await;
    let u = new_user();
    let body = execute(&u, "print('once')");
    let first = app.submit_keyed("key-1", &body).await;
    let first = json_of(first, 202).await;
    let again = app.submit_keyed("key-1", &body).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again = json_of(again, 200).await;
    assert_eq!(again["job_id"], first["job_id"]);
    assert_eq!(again["seq"], first["seq"]);
    let keys: Vec<&String> = again.as_object().unwrap().keys().collect();
    let first_keys: Vec<&String> = first.as_object().unwrap().keys().collect();
    assert_eq!(keys, first_keys, "same body shape");

    // Same key, changed body.
    let changed = app
        .submit_keyed("key-1", &execute(&u, "print('twice')"))
        .await;
    error_of(changed, 422, "idempotency_conflict").await;
    // The same body under a new key is a new job.
    let other = json_of(app.submit_keyed("key-2", &body).await, 202).await;
    assert_ne!(other["job_id"], first["job_id"]);

    // Concurrent first requests with one key: one job.
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let client = app.client.clone();
            let url = app.url("/api/v1/jobs");
            let body = execute(&u, "print('race')");
            tokio::spawn(async move {
                let r = client
                    .post(url)
                    .header("X-Auth-Token", TOKEN)
                    .header("Idempotency-Key", "race")
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut ids = Vec::new();
    let mut created = 0;
    for r in racers {
        let (status, body) = r.await.unwrap();
        assert!(status == 202 || status == 200, "{status} {body}");
        created += usize::from(status == 202);
        ids.push(body["job_id"].clone());
    }
    assert_eq!(created, 1);
    assert!(ids.windows(2).all(|w| w[0] == w[1]));
    let listed = json_of(app.get(&format!("/api/v1/sessions/{u}/jobs")).await, 200).await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 3, "{listed}");

    let bad = app.submit_keyed(&"k".repeat(300), &body).await;
    let e = error_of(bad, 422, "invalid_request").await;
    assert_eq!(e["error"]["field"], "Idempotency-Key");
}

#[tokio::test]
async fn session_listing_pages_in_seq_order() {
    let app = spawn_app().await;
    let u = new_user();
    for i in 0..5 {
        json_of(app.submit(execute(&u, &format!("print({i})"))).await, 202).await;
    }
    let app = &app;
    let page = |q: &str| {
        let path = format!("/api/v1/sessions/{u}/jobs{q}");
        async move { app.get(&path).await }
    };
    let seqs = |v: &Value| -> Vec<u64> {
        v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["seq"].as_u64().unwrap())
            .collect()
    };
    let p1 = json_of(page("?limit=2").await, 200).await;
    assert_eq!(
        (seqs(&p1), p1["next_after_seq"].clone()),
        (vec![1, 2], json!(2))
    );
    let p2 = json_of(page("?limit=2&after_seq=2").await, 200).await;
    assert_eq!(
        (seqs(&p2), p2["next_after_seq"].clone()),
        (vec![3, 4], json!(4))
    );
    let p3 = json_of(page("?limit=2&after_seq=4").await, 200).await;
    assert_eq!(
        (seqs(&p3), p3["next_after_seq"].clone()),
        (vec![5], Value::Null)
    );
    let all = json_of(page("").await, 200).await;
    assert_eq!(seqs(&all), vec![1, 2, 3, 4, 5]);
    assert_eq!(all["user_uuid"], u);
    for (q, field) in [
        ("?limit=0", "limit"),
        ("?limit=201", "limit"),
        ("?after_seq=-1", "after_seq"),
    ] {
        let e = error_of(page(q).await, 422, "invalid_request").await;
        assert_eq!(e["error"]["field"], field);
    }
    let e = error_of(
        app.get("/api/v1/sessions/nope/jobs").await,
        422,
        "invalid_request",
    )
    .await;
    assert_eq!(e["error"]["field"], "user_uuid");
}

#[tokio::test]
async fn cancel_answers_by_state() {
    let app = spawn_app().await;
    let u = new_user();
    let delete = |id: String| {
        app.client
            .delete(app.url(&format!("/api/v1/jobs/{id}")))
            .header("X-Auth-Token", TOKEN)
            .send()
    };
    let done = json_of(app.submit(execute(&u, "print(1)")).await, 202).await;
    let done_id = done["job_id"].as_str().unwrap().to_owned();
    json_of(
        app.get(&format!("/api/v1/jobs/{done_id}?wait=10")).await,
        200,
    )
    .await;
    error_of(delete(done_id).await.unwrap(), 409, "job_finished").await;

    // The fake worker marks "hang" running and never ends it: the cancel is requested.
    let hang = json_of(app.submit(execute(&u, "hang")).await, 202).await;
    let hang_id = hang["job_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    while json_of(app.get(&format!("/api/v1/jobs/{hang_id}")).await, 200).await["status"]
        != "running"
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cancelling = json_of(delete(hang_id).await.unwrap(), 202).await;
    assert_eq!(cancelling["status"], "running");
    assert_eq!(cancelling["cancel_requested"], true);
    error_of(delete(new_user()).await.unwrap(), 404, "not_found").await;
}

/// The fake worker writes no events of its own; the store logs each status change, so
/// the stream replays them in order and ends with the terminal status and the result.
#[tokio::test]
async fn event_stream_of_a_finished_job_replays_its_statuses() {
    let app = spawn_app().await;
    let u = new_user();
    let job = json_of(app.submit(execute(&u, "print(1)")).await, 202).await;
    let id = job["job_id"].as_str().unwrap();
    json_of(app.get(&format!("/api/v1/jobs/{id}?wait=10")).await, 200).await;
    let r = app.get(&format!("/api/v1/jobs/{id}/events")).await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = tokio::time::timeout(Duration::from_secs(10), r.text())
        .await
        .unwrap()
        .unwrap();
    assert!(
        text.starts_with(
            "event: status\nid: 1\ndata: {\"status\":\"running\"}\n\n\
             event: status\nid: 2\ndata: {\"status\":\"succeeded\"}\n\n"
        ),
        "{text}"
    );
    let result = text.split("event: result\ndata: ").nth(1).unwrap();
    let view: Value = serde_json::from_str(result.trim()).unwrap();
    assert_eq!(view["job_id"], id);
    assert_eq!(view["status"], "succeeded");
    let bad = app
        .client
        .get(app.url(&format!("/api/v1/jobs/{id}/events")))
        .header("X-Auth-Token", TOKEN)
        .header("Last-Event-ID", "abc")
        .send()
        .await
        .unwrap();
    let e = error_of(bad, 422, "invalid_request").await;
    assert_eq!(e["error"]["field"], "Last-Event-ID");
}
