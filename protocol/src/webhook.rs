//! Webhook deliveries: when a job that named a `callback_url` ends, its record is POSTed
//! there, signed, and retried until the receiver accepts or the retry period runs out.
//! The store keeps one [`WebhookDelivery`] per such job; clients read it at
//! `GET /api/v1/jobs/{id}/deliveries`.

use crate::ids::JobId;
use crate::time::UnixMillis;
use serde::{Deserialize, Serialize};

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not yet accepted; another attempt is due at `next_attempt_at`.
    Pending,
    /// The receiver answered 2xx. Final.
    Delivered,
    /// Given up: a permanent refusal, or the retry period ran out. Final.
    Failed,
}

/// One POST to the receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    /// 1 for the first attempt, counting up.
    pub attempt: u32,
    pub at: UnixMillis,
    /// From sending the request to the end of the response (or the failure).
    pub duration_ms: u64,
    /// The receiver's HTTP status, when it answered at all.
    #[serde(default)]
    pub status_code: Option<u16>,
    /// What went wrong when it did not answer (refused address, connect error, timeout).
    #[serde(default)]
    pub error: Option<String>,
}

/// The delivery of one job's terminal record to its `callback_url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    /// The `webhook-id` header, the same on every attempt, so receivers can drop repeats.
    pub webhook_id: String,
    pub job_id: JobId,
    pub url: String,
    pub state: DeliveryState,
    /// When the job ended and the delivery was queued; the retry period counts from here.
    pub created_at: UnixMillis,
    /// When the next attempt is due (pending deliveries only).
    #[serde(default)]
    pub next_attempt_at: Option<UnixMillis>,
    /// Every attempt so far, oldest first.
    #[serde(default)]
    pub attempts: Vec<DeliveryAttempt>,
    /// Why the delivery was given up (failed deliveries only).
    #[serde(default)]
    pub failure: Option<String>,
}

impl WebhookDelivery {
    /// A delivery queued now, due at once.
    pub fn new(job_id: JobId, url: String, now: UnixMillis) -> Self {
        Self {
            webhook_id: webhook_id(job_id),
            job_id,
            url,
            state: DeliveryState::Pending,
            created_at: now,
            next_attempt_at: Some(now),
            attempts: Vec::new(),
            failure: None,
        }
    }
}

/// The webhook id of a job's delivery: `msg_` and the job id's 32 hex digits, following
/// the Standard Webhooks convention. Derived from the job so that it never changes.
pub fn webhook_id(job_id: JobId) -> String {
    format!("msg_{}", job_id.to_string().replace('-', ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_id_is_stable_per_job() {
        let job = JobId::new();
        let a = WebhookDelivery::new(job, "https://example.com/hook".into(), UnixMillis(1));
        assert_eq!(a.webhook_id, webhook_id(job));
        assert!(a.webhook_id.starts_with("msg_") && a.webhook_id.len() == 36);
        assert_eq!(a.next_attempt_at, Some(UnixMillis(1)));
    }
}
