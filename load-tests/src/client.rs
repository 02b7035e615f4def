//! The HTTP side: Tether's seed-compatible sync API and the async job API, through one
//! pooled `reqwest` client. Targets must be loopback addresses: this tool generates load
//! and must never point at anything but a server on this machine.

use crate::driver::{Failure, Target};
use crate::workload::Answer;
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server has no such endpoint (yet).
    #[error("endpoint not available ({0})")]
    NotAvailable(StatusCode),
    #[error("HTTP {status}: {body}")]
    Status { status: StatusCode, body: String },
    #[error("request timed out")]
    Timeout,
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("unexpected response: {0}")]
    Decode(String),
    #[error("{0}")]
    Transport(String),
}

impl ClientError {
    /// Low-cardinality class for error counts.
    pub fn kind(&self) -> String {
        match self {
            ClientError::NotAvailable(s) | ClientError::Status { status: s, .. } => {
                format!("http_{}", s.as_u16())
            }
            ClientError::Timeout => "timeout".into(),
            ClientError::Connect(_) => "connect".into(),
            ClientError::Decode(_) => "decode".into(),
            ClientError::Transport(_) => "transport".into(),
        }
    }
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            ClientError::Timeout
        } else if e.is_connect() {
            ClientError::Connect(e.to_string())
        } else if e.is_decode() {
            ClientError::Decode(e.to_string())
        } else {
            ClientError::Transport(e.to_string())
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::new(e.kind(), e.to_string())
    }
}

/// The `POST /api/v1/execute` answer (seed-compatible). Unknown fields are ignored: the
/// server may add more.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ExecuteReply {
    pub worker_id: Option<Value>,
    pub result_text: Option<String>,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
    /// `ok`, `error`, `timeout_interrupted`, …
    pub outcome: Option<String>,
    pub duration_ms: Option<f64>,
    pub error: Option<Value>,
}

impl ExecuteReply {
    pub fn answer(self) -> Answer {
        let succeeded = self.outcome.as_deref().is_none_or(|o| o == "ok");
        let problem = (!succeeded).then(|| {
            let outcome = self.outcome.clone().unwrap_or_default();
            match &self.error {
                Some(e) => format!("{outcome}: {e}"),
                None => format!("{outcome}: {}", self.stderr.trim()),
            }
        });
        Answer {
            result_text: self.result_text,
            stdout: self.stdout,
            succeeded,
            problem,
        }
    }
}

/// A pooled client for one Tether server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TetherClient {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl TetherClient {
    /// A client for the server at `url` (loopback only), keeping up to `connections`
    /// idle connections, giving up on a request after `timeout`.
    pub fn new(
        url: &str,
        token: Option<String>,
        timeout: Duration,
        connections: usize,
    ) -> anyhow::Result<Self> {
        let base = Url::parse(url).map_err(|e| anyhow::anyhow!("--url {url}: {e}"))?;
        ensure_loopback(&base)?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(connections.max(1))
            .tcp_nodelay(true)
            .build()?;
        Ok(Self { http, base, token })
    }

    /// The server's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.base
            .join(path)
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    fn authed(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.header("X-Auth-Token", token),
            None => request,
        }
    }

    /// `POST /api/v1/execute?user_uuid=U` with `{"code"}`.
    pub async fn execute(&self, user: &str, code: &str) -> Result<ExecuteReply, ClientError> {
        let request = self
            .http
            .post(self.url("api/v1/execute")?)
            .query(&[("user_uuid", user)])
            .json(&json!({ "code": code }));
        let response = checked(self.authed(request).send().await?).await?;
        response.json::<ExecuteReply>().await.map_err(Into::into)
    }

    /// `POST /api/v1/release?user_uuid=U` (204).
    pub async fn release(&self, user: &str) -> Result<(), ClientError> {
        let request = self
            .http
            .post(self.url("api/v1/release")?)
            .query(&[("user_uuid", user)]);
        checked(self.authed(request).send().await?).await?;
        Ok(())
    }

    /// `GET /api/v1/status`.
    pub async fn status(&self) -> Result<Value, ClientError> {
        let request = self.http.get(self.url("api/v1/status")?);
        let response = checked(self.authed(request).send().await?).await?;
        response.json().await.map_err(Into::into)
    }

    /// `POST /api/v1/jobs` for an execute job; returns the job id (202).
    pub async fn submit(
        &self,
        user: &str,
        code: &str,
        callback_url: Option<&str>,
    ) -> Result<String, ClientError> {
        let mut body = json!({ "user_uuid": user, "type": "execute", "code": code });
        if let Some(url) = callback_url {
            body["callback_url"] = json!(url);
        }
        let request = self.http.post(self.url("api/v1/jobs")?).json(&body);
        let response = checked(self.authed(request).send().await?).await?;
        let record: Value = response.json().await?;
        job_id(&record).ok_or_else(|| ClientError::Decode(format!("no job_id in {record}")))
    }

    /// `GET /api/v1/jobs/{id}?wait=N`: the job record, once terminal or after `wait`.
    pub async fn job(&self, id: &str, wait: Duration) -> Result<Value, ClientError> {
        let request = self
            .http
            .get(self.url(&format!("api/v1/jobs/{id}"))?)
            .query(&[("wait", wait.as_secs())]);
        let response = checked(self.authed(request).send().await?).await?;
        response.json().await.map_err(Into::into)
    }

    /// `GET /api/v1/jobs/{id}/events`: the open event stream.
    pub async fn events(&self, id: &str) -> Result<reqwest::Response, ClientError> {
        let request = self
            .http
            .get(self.url(&format!("api/v1/jobs/{id}/events"))?)
            .header("Accept", "text/event-stream");
        checked(self.authed(request).send().await?).await
    }
}

/// Map non-2xx responses to errors; 404/405 mean the endpoint does not exist.
async fn checked(response: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
        return Err(ClientError::NotAvailable(status));
    }
    let mut body = response.text().await.unwrap_or_default();
    body.truncate(300);
    Err(ClientError::Status { status, body })
}

/// The job id in a submit answer or a job record (`job_id`, `id`, or `job.id`).
pub fn job_id(record: &Value) -> Option<String> {
    ["job_id", "id"]
        .iter()
        .find_map(|k| record.get(k))
        .or_else(|| record.get("job").and_then(|j| j.get("id")))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Refuse anything but 127.0.0.0/8, ::1 and `localhost`.
pub fn ensure_loopback(url: &Url) -> anyhow::Result<()> {
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ok = host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    anyhow::ensure!(
        ok && matches!(url.scheme(), "http" | "https"),
        "refusing target {url}: tether-bench only sends load to a server on this machine (a loopback address)"
    );
    Ok(())
}

/// A user's session reached through the sync API.
#[derive(Debug, Clone)]
pub struct HttpSession {
    pub client: TetherClient,
    pub user: String,
}

impl HttpSession {
    /// A brand-new session (a fresh `user_uuid`).
    pub fn fresh(client: &TetherClient) -> Self {
        Self {
            client: client.clone(),
            user: uuid::Uuid::new_v4().to_string(),
        }
    }
}

impl Target for HttpSession {
    async fn execute(&mut self, code: &str) -> Result<Answer, Failure> {
        Ok(self.client.execute(&self.user, code).await?.answer())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        for ok in [
            "http://127.0.0.1:3874",
            "http://localhost:1",
            "http://[::1]:80",
            "http://127.1.2.3",
        ] {
            assert!(
                ensure_loopback(&Url::parse(ok).expect("url")).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "http://10.0.0.1:3874",
            "http://example.com",
            "http://192.168.1.2",
            "file:///etc/passwd",
        ] {
            assert!(
                ensure_loopback(&Url::parse(bad).expect("url")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn seed_replies_become_answers() {
        let reply: ExecuteReply = serde_json::from_value(json!({
            "worker_id": "n1", "result_text": "10", "result_base64": null,
            "stdout": "", "stderr": "", "outcome": "ok", "duration_ms": 4, "extra": 1
        }))
        .expect("reply");
        assert!(reply.answer().is("10"));
        let failed: ExecuteReply = serde_json::from_value(json!({
            "result_text": null, "stdout": "", "stderr": "NameError", "outcome": "error"
        }))
        .expect("reply");
        let a = failed.answer();
        assert!(!a.succeeded);
        assert_eq!(a.problem.as_deref(), Some("error: NameError"));
    }

    #[test]
    fn job_ids_are_found_in_any_record_shape() {
        assert_eq!(job_id(&json!({"job_id": "a"})).as_deref(), Some("a"));
        assert_eq!(job_id(&json!({"job": {"id": "b"}})).as_deref(), Some("b"));
        assert_eq!(job_id(&json!({})), None);
    }
}
