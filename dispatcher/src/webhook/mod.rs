//! Webhook delivery (issue 5): when a job with a `callback_url` ends, the store queues a
//! delivery in its outbox; a [`Courier`] loop — in `tether serve` and in `tether
//! dispatcher` — claims it, POSTs the job's record (the same `JobView` every channel
//! shows) signed the Standard Webhooks way, and retries network errors, 5xx and 429 with
//! exponential backoff and jitter until the receiver accepts or the retry period ends.
//! Every attempt uses the same `webhook-id` and is recorded in the store
//! (`GET /api/v1/jobs/{id}/deliveries`).
//!
//! - [`signature`]: the secret and the `v1,` HMAC-SHA256 signature.
//! - [`schedule`]: when to try again ([`RetrySchedule`]).
//! - [`attempt`]: one signed POST, classified. The URL goes through the shared SSRF guard
//!   (`tether-egress`) before every attempt — resolved, refused if internal and not
//!   allow-listed, sent only to the addresses just checked — as it did at submit time.
//! - [`courier`]: the loop.

pub mod attempt;
pub mod courier;
pub mod schedule;
pub mod signature;

pub use courier::Courier;
pub use schedule::RetrySchedule;
pub use signature::{SecretError, WebhookSecret};
pub use tether_egress::{AllowList, AllowListError, EgressError};

use std::time::Duration;

/// How webhooks are delivered.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Signs every request.
    pub secret: WebhookSecret,
    /// Internal addresses callback URLs may reach anyway (`TETHER_EGRESS_ALLOW`).
    pub allow: AllowList,
    pub retry: RetrySchedule,
    /// Bound on one attempt, connection included.
    pub attempt_timeout: Duration,
    /// How often the loop looks for due deliveries when there is nothing to do.
    pub poll_interval: Duration,
    /// How long a claimed delivery is held: longer than an attempt can take, so that two
    /// loops never send the same attempt.
    pub lease: Duration,
    /// Deliveries claimed at once.
    pub batch: usize,
    /// Attempts in flight at once.
    pub max_in_flight: usize,
}

impl WebhookConfig {
    /// Defaults: 10 s per attempt, a look every 500 ms, 60 s leases, up to 64 attempts in
    /// flight, the default retry schedule (24 h).
    pub fn new(secret: WebhookSecret, allow: AllowList) -> Self {
        Self {
            secret,
            allow,
            retry: RetrySchedule::default(),
            attempt_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(500),
            lease: Duration::from_secs(60),
            batch: 32,
            max_in_flight: 64,
        }
    }
}
