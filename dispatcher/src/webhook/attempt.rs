//! One delivery attempt: check the URL again (DNS rebinding), POST the signed body to the
//! checked addresses only, and classify the answer.

use super::signature::WebhookSecret;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use std::time::{Duration, Instant};
use tether_egress::{Egress, Url};
use tether_protocol::UnixMillis;

/// The headers of a Standard Webhooks request.
pub const WEBHOOK_ID: &str = "webhook-id";
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// What the receiver (or the way to it) said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: delivered.
    Accepted,
    /// Network error, timeout, 5xx or 429: worth trying again (after `retry_after` if the
    /// receiver said so).
    Retry { retry_after: Option<Duration> },
    /// Anything else (4xx, 3xx — redirects are not followed —, a refused address): final.
    Refused,
}

/// The result of one attempt, as recorded.
#[derive(Debug, Clone)]
pub struct AttemptReport {
    pub verdict: Verdict,
    pub status_code: Option<u16>,
    /// A short description of the failure (never the response body).
    pub error: Option<String>,
    pub duration: Duration,
}

/// What to send.
#[derive(Debug)]
pub struct Message<'a> {
    pub url: &'a str,
    pub webhook_id: &'a str,
    pub body: &'a [u8],
}

/// Send one attempt through `egress`, bounded by `timeout`.
pub async fn send(
    message: &Message<'_>,
    secret: &WebhookSecret,
    egress: &Egress,
    timeout: Duration,
) -> AttemptReport {
    let started = Instant::now();
    let failed = |verdict, error: String| AttemptReport {
        verdict,
        status_code: None,
        error: Some(error),
        duration: started.elapsed(),
    };
    let url = match Url::parse(message.url) {
        Ok(url) => url,
        Err(e) => return failed(Verdict::Refused, format!("invalid callback URL: {e}")),
    };
    let target = match egress.check(&url).await {
        Ok(target) => target,
        Err(e) if e.is_refusal() => return failed(Verdict::Refused, format!("refused: {e}")),
        // The name does not resolve right now: worth another try later.
        Err(e) => return failed(Verdict::Retry { retry_after: None }, e.to_string()),
    };
    let client = match egress.pinned_client(&target) {
        Ok(client) => client,
        Err(e) => return failed(Verdict::Retry { retry_after: None }, e.to_string()),
    };
    let timestamp = i64::try_from(UnixMillis::now().0 / 1000).unwrap_or(i64::MAX);
    let signature = secret.sign(message.webhook_id, timestamp, message.body);
    let sent = client
        .post(target.url)
        .timeout(timeout)
        .headers(headers(message.webhook_id, timestamp, &signature))
        .body(message.body.to_vec())
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            // The body is not read: beyond its status, what a receiver says is not recorded.
            drop(response);
            let verdict = if status.is_success() {
                Verdict::Accepted
            } else if status.is_server_error() || status.as_u16() == 429 {
                Verdict::Retry { retry_after }
            } else {
                Verdict::Refused
            };
            let error = (!status.is_success()).then(|| format!("the receiver answered {status}"));
            AttemptReport {
                verdict,
                status_code: Some(status.as_u16()),
                error,
                duration: started.elapsed(),
            }
        }
        Err(e) => {
            let what = if e.is_timeout() {
                format!("no answer within {timeout:?}")
            } else if e.is_connect() {
                "could not connect".to_owned()
            } else {
                "the request failed".to_owned()
            };
            failed(
                Verdict::Retry { retry_after: None },
                format!("{what}: {}", root_cause(&e)),
            )
        }
    }
}

fn headers(webhook_id: &str, timestamp: i64, signature: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let value =
        |s: &str| HeaderValue::from_str(s).expect("ids, digits and base64 are valid header values");
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(WEBHOOK_ID, value(webhook_id));
    headers.insert(WEBHOOK_TIMESTAMP, value(&timestamp.to_string()));
    headers.insert(WEBHOOK_SIGNATURE, value(signature));
    headers
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
