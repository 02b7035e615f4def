//! A client for the job API: submit, wait, cancel, and a small Server-Sent Events reader.

use super::{TOKEN, TestApp};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

impl TestApp {
    /// `POST /api/v1/jobs`; returns the status and body.
    pub async fn submit_job(&self, body: &Value, key: Option<&str>) -> (u16, Value) {
        let mut request = self.post("/api/v1/jobs").json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let r = request.send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Submit an execute job, expecting 202; returns its id.
    pub async fn submit_code(&self, user: &str, code: &str) -> String {
        let (status, body) = self
            .submit_job(
                &json!({"user_uuid": user, "type": "execute", "code": code}),
                None,
            )
            .await;
        assert_eq!(status, 202, "{body}");
        body["job_id"].as_str().expect("job_id").to_owned()
    }

    /// `GET /api/v1/jobs/{id}?wait=N`.
    pub async fn job(&self, id: &str, wait_s: u64) -> Value {
        let r = self
            .get(&format!("/api/v1/jobs/{id}?wait={wait_s}"))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 200);
        r.json().await.expect("json")
    }

    /// Wait (up to 120 s) until the job is terminal.
    pub async fn finished(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let view = self.job(id, 30).await;
            if !matches!(view["status"].as_str(), Some("queued" | "running")) {
                return view;
            }
            assert!(Instant::now() < deadline, "job {id} never finished: {view}");
        }
    }

    /// `DELETE /api/v1/jobs/{id}`.
    pub async fn cancel(&self, id: &str) -> (u16, Value) {
        let r = self
            .client
            .delete(format!("{}/api/v1/jobs/{id}", self.url))
            .header("X-Auth-Token", TOKEN)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Open the job's event stream, resuming after `last_event_id` if given.
    pub async fn events(&self, id: &str, last_event_id: Option<u64>) -> SseStream {
        let mut request = self.get(&format!("/api/v1/jobs/{id}/events"));
        if let Some(last) = last_event_id {
            request = request.header("Last-Event-ID", last.to_string());
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status().as_u16(), 200);
        SseStream {
            response,
            buffer: String::new(),
        }
    }
}

/// One item of an event stream.
#[derive(Debug, Clone, PartialEq)]
pub enum SseItem {
    Event {
        id: Option<u64>,
        event: String,
        data: Value,
    },
    /// A comment line (keep-alive).
    Comment(String),
}

/// Reads `text/event-stream` chunk by chunk.
pub struct SseStream {
    response: reqwest::Response,
    buffer: String,
}

impl SseStream {
    /// The next event or comment; `None` when the server ends the stream.
    pub async fn next(&mut self) -> Option<SseItem> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                return Some(parse(block.trim_end_matches('\n')));
            }
            match tokio::time::timeout(Duration::from_secs(60), self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self
                    .buffer
                    .push_str(std::str::from_utf8(&bytes).expect("utf-8")),
                _ => return None,
            }
        }
    }
}

fn parse(block: &str) -> SseItem {
    if block.lines().all(|l| l.starts_with(':')) {
        return SseItem::Comment(block.trim_start_matches(':').trim().to_owned());
    }
    let (mut id, mut event, mut data) = (None, String::from("message"), String::new());
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("id:") {
            id = Some(v.trim().parse().expect("numeric id"));
        } else if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    SseItem::Event {
        id,
        event,
        data: serde_json::from_str(&data).expect("JSON data"),
    }
}
