//! Issue 5, acceptance 3 and 7: signed webhooks with retries to a real receiver, and the
//! egress check on callback URLs.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on the first surprise"
)]

mod common;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{AppOptions, WEBHOOK_SECRET, new_user, spawn_app};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the receiver saw: arrival time, headers, body.
type Seen = Arc<Mutex<Vec<(Instant, HeaderMap, Bytes)>>>;

/// Fails the first three deliveries with 500, then accepts.
async fn receive(State(seen): State<Seen>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut seen = seen.lock().unwrap();
    seen.push((Instant::now(), headers, body));
    if seen.len() <= 3 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

/// Standard Webhooks verification, written independently of Tether's signer: the key is
/// the base64 after `whsec_`, the message `id.timestamp.body`.
fn verifies(secret: &str, id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    header.split(' ').any(|s| s == expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_retries_until_accepted_with_one_signed_id() {
    let seen: Seen = Arc::default();
    let app_router = Router::new()
        .route("/hook", post(receive))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app_router).await.unwrap() });
    let hook = format!("http://127.0.0.1:{port}/hook");

    let app = spawn_app(
        "jobs-webhook",
        AppOptions {
            egress_allow: format!("127.0.0.1:{port}"),
            webhook_retry_initial: Duration::from_millis(200),
            ..AppOptions::default()
        },
    )
    .await;
    let user = new_user();

    // Acceptance 7: only the allow-listed address is accepted.
    for refused in [
        format!("http://127.0.0.1:{}/hook", port.wrapping_add(1).max(1)),
        format!("http://[::1]:{port}/hook"),
        format!(
            "http://[::ffff:127.0.0.1]:{}/hook",
            port.wrapping_add(1).max(1)
        ),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.8/hook".to_owned(),
        "http://192.168.1.1/hook".to_owned(),
    ] {
        let (status, body) = app
            .submit_job(
                &json!({"user_uuid": user, "type": "execute", "code": "1", "callback_url": refused}),
                None,
            )
            .await;
        assert_eq!(status, 422, "{refused}: {body}");
        assert_eq!(body["error"]["field"], "callback_url");
    }

    // Acceptance 3.
    let (status, accepted) = app
        .submit_job(
            &json!({"user_uuid": user, "type": "execute", "code": "print('hooked')",
                    "callback_url": hook, "metadata": {"order": 17}}),
            None,
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["job_id"].as_str().unwrap().to_owned();
    let view = app.finished(&id).await;
    assert_eq!(view["status"], "succeeded");

    let deadline = Instant::now() + Duration::from_secs(60);
    let deliveries = loop {
        let r = app
            .get(&format!("/api/v1/jobs/{id}/deliveries"))
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        if body["deliveries"][0]["state"] != "pending" && !body["deliveries"][0].is_null() {
            break body;
        }
        assert!(Instant::now() < deadline, "not delivered: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let delivery = &deliveries["deliveries"][0];
    assert_eq!(delivery["state"], "delivered", "{delivery}");
    assert_eq!(delivery["url"], hook);
    let attempts = delivery["attempts"].as_array().unwrap();
    let codes: Vec<u64> = attempts
        .iter()
        .map(|a| a["status_code"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, vec![500, 500, 500, 200]);
    assert_eq!(
        attempts
            .iter()
            .map(|a| a["attempt"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "exactly four requests, one accepted");
    let webhook_id = delivery["webhook_id"].as_str().unwrap();
    let finished_at = view["finished_at"].as_u64().unwrap();
    let mut timeline = Vec::new();
    for (at, headers, body) in &seen {
        let header = |n: &str| headers.get(n).unwrap().to_str().unwrap().to_owned();
        assert_eq!(header("webhook-id"), webhook_id);
        assert_eq!(header("content-type"), "application/json");
        let (ts, sig) = (header("webhook-timestamp"), header("webhook-signature"));
        assert!(
            verifies(WEBHOOK_SECRET, webhook_id, &ts, body, &sig),
            "signature"
        );
        let wrong = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        assert!(!verifies(wrong, webhook_id, &ts, body, &sig));
        let record: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(record["job_id"], id.as_str());
        assert_eq!(record["status"], "succeeded");
        assert_eq!(record["result"]["stdout"], "hooked\n");
        assert_eq!(record["metadata"]["order"], 17);
        timeline.push(at.duration_since(seen[0].0).as_millis());
    }
    let first_delay = attempts[0]["at"]
        .as_u64()
        .unwrap()
        .saturating_sub(finished_at);
    eprintln!(
        "acceptance 3: first attempt {first_delay} ms after the job ended; attempts at +{timeline:?} ms"
    );
    app.stop().await;
}
