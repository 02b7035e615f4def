//! The delivery loop: claim due deliveries from the store's outbox, attempt each, record
//! the attempt and what comes next. Any number of loops (dispatcher processes) may run:
//! claims are leased, so an attempt is made by one loop, and a loop that dies hands its
//! deliveries back when the lease runs out.

use super::WebhookConfig;
use super::attempt::{self, Message, Verdict};
use std::sync::Arc;
use std::time::Duration;
use tether_egress::{Egress, EgressConfig};
use tether_protocol::{DeliveryAttempt, JobView, UnixMillis, WebhookDelivery};
use tether_transport::{ClaimedDelivery, DeliveryNext, JobStore};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Delivers webhooks from a store until shut down. Cheap to clone.
#[derive(Clone)]
pub struct Courier {
    store: Arc<dyn JobStore>,
    config: Arc<WebhookConfig>,
    /// The SSRF guard every attempt goes through.
    egress: Egress,
}

impl std::fmt::Debug for Courier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Courier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Courier {
    pub fn new(store: Arc<dyn JobStore>, config: WebhookConfig) -> Self {
        let egress = Egress::new(EgressConfig {
            allow: config.allow.clone(),
            connect_timeout: config.attempt_timeout,
            read_timeout: config.attempt_timeout,
        });
        Self {
            store,
            config: Arc::new(config),
            egress,
        }
    }

    /// Claim and deliver until `shutdown`. In-flight attempts then get a short grace
    /// period; an attempt cut off is not recorded and its delivery comes due again when
    /// its lease runs out (receivers drop the repeat by `webhook-id`).
    pub async fn run(self, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.config.max_in_flight.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        tracing::info!("webhook delivery loop started");
        loop {
            while tasks.try_join_next().is_some() {}
            let free = slots.available_permits().min(self.config.batch);
            let claimed = if free == 0 {
                Vec::new()
            } else {
                match self
                    .store
                    .claim_due_deliveries(UnixMillis::now(), self.config.lease, free)
                    .await
                {
                    Ok(claimed) => claimed,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not claim webhook deliveries");
                        Vec::new()
                    }
                }
            };
            let full = claimed.len() == free && free > 0;
            for claimed in claimed {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    break;
                };
                let this = self.clone();
                let span = tracing::info_span!(
                    "webhook",
                    job_id = %claimed.claim.job_id,
                    webhook_id = %claimed.delivery.webhook_id,
                    attempt = claimed.delivery.attempts.len() + 1,
                );
                tasks.spawn(
                    async move {
                        this.deliver(claimed).await;
                        drop(slot);
                    }
                    .instrument(span),
                );
            }
            if full {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
        let grace = tokio::time::sleep(Duration::from_secs(5));
        tokio::pin!(grace);
        loop {
            tokio::select! {
                next = tasks.join_next() => if next.is_none() { break },
                () = &mut grace => {
                    tasks.abort_all();
                    break;
                }
            }
        }
        tracing::info!("webhook delivery loop stopped");
    }

    /// Make one attempt for a claimed delivery and record it.
    async fn deliver(&self, claimed: ClaimedDelivery) {
        let ClaimedDelivery { delivery, claim } = claimed;
        let number = u32::try_from(delivery.attempts.len() + 1).unwrap_or(u32::MAX);
        let at = UnixMillis::now();
        let (attempt, next) = match self.store.get(delivery.job_id).await {
            Ok(Some(record)) => {
                let body = serde_json::to_vec(&JobView::from(record))
                    .expect("a job view always encodes as JSON");
                let message = Message {
                    url: &delivery.url,
                    webhook_id: &delivery.webhook_id,
                    body: &body,
                };
                let report = attempt::send(
                    &message,
                    &self.config.secret,
                    &self.egress,
                    self.config.attempt_timeout,
                )
                .await;
                let next =
                    self.next_step(&delivery, number, &report.verdict, report.error.as_deref());
                let attempt = DeliveryAttempt {
                    attempt: number,
                    at,
                    duration_ms: u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
                    status_code: report.status_code,
                    error: report.error,
                };
                (attempt, next)
            }
            Ok(None) => {
                let reason = "the job's record expired before it could be delivered";
                let attempt = DeliveryAttempt {
                    attempt: number,
                    at,
                    duration_ms: 0,
                    status_code: None,
                    error: Some(reason.into()),
                };
                (attempt, DeliveryNext::Failed(reason.into()))
            }
            Err(e) => {
                // The store is down: nothing was sent; the lease runs out and the
                // delivery comes due again.
                tracing::warn!(error = %e, "could not read the job record; will retry");
                return;
            }
        };
        tracing::info!(
            status_code = attempt.status_code,
            duration_ms = attempt.duration_ms,
            next = ?next,
            "webhook attempt"
        );
        match self.store.record_attempt(&claim, attempt, next).await {
            Ok(Some(_)) => {}
            Ok(None) => tracing::warn!(
                "the delivery's lease ran out during the attempt; another loop took it over"
            ),
            Err(e) => tracing::warn!(error = %e, "could not record the webhook attempt"),
        }
    }

    /// What follows attempt `number` of `delivery`.
    fn next_step(
        &self,
        delivery: &WebhookDelivery,
        number: u32,
        verdict: &Verdict,
        error: Option<&str>,
    ) -> DeliveryNext {
        let error = error.unwrap_or("failed");
        match verdict {
            Verdict::Accepted => DeliveryNext::Delivered,
            Verdict::Refused => DeliveryNext::Failed(error.to_owned()),
            Verdict::Retry { retry_after } => {
                let schedule = &self.config.retry;
                match schedule.next_attempt(
                    delivery.created_at,
                    UnixMillis::now(),
                    number,
                    *retry_after,
                ) {
                    Some(at) => DeliveryNext::RetryAt(at),
                    None => DeliveryNext::Failed(format!(
                        "gave up after {number} attempts over {:?}: {error}",
                        schedule.max_period
                    )),
                }
            }
        }
    }
}
