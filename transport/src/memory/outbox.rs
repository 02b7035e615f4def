//! The in-process webhook outbox: deliveries by job, and the pending ones ordered by due
//! time. Leases are the due time moved forward, as in Redis.

use crate::outbox::{ClaimedDelivery, DeliveryClaim, DeliveryNext, apply_attempt, new_token};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use tether_protocol::{DeliveryAttempt, JobId, UnixMillis, WebhookDelivery};

#[derive(Debug, Default)]
pub(super) struct Outbox {
    deliveries: HashMap<JobId, Held>,
    /// Pending deliveries by due time (ms); claimed ones sit at the end of their lease.
    due: BTreeSet<(u64, JobId)>,
}

#[derive(Debug)]
struct Held {
    delivery: WebhookDelivery,
    /// Due time in the `due` set, if pending.
    due: Option<u64>,
    /// Token of the current claim.
    token: Option<String>,
}

impl Outbox {
    /// Queue a delivery due now, unless the job has one already.
    pub(super) fn enqueue(&mut self, job: JobId, url: &str, now: UnixMillis) {
        if self.deliveries.contains_key(&job) {
            return;
        }
        let delivery = WebhookDelivery::new(job, url.to_owned(), now);
        self.due.insert((now.0, job));
        self.deliveries.insert(
            job,
            Held {
                delivery,
                due: Some(now.0),
                token: None,
            },
        );
    }

    pub(super) fn get(&self, job: JobId) -> Option<WebhookDelivery> {
        self.deliveries.get(&job).map(|h| h.delivery.clone())
    }

    pub(super) fn forget(&mut self, job: JobId) {
        if let Some(held) = self.deliveries.remove(&job)
            && let Some(due) = held.due
        {
            self.due.remove(&(due, job));
        }
    }

    pub(super) fn claim(
        &mut self,
        now: UnixMillis,
        lease: Duration,
        limit: usize,
    ) -> Vec<ClaimedDelivery> {
        let until = now
            .0
            .saturating_add(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX));
        let ready: Vec<(u64, JobId)> = self
            .due
            .iter()
            .take_while(|(due, _)| *due <= now.0)
            .take(limit)
            .copied()
            .collect();
        let mut claimed = Vec::with_capacity(ready.len());
        for (due, job) in ready {
            self.due.remove(&(due, job));
            let Some(held) = self.deliveries.get_mut(&job) else {
                continue;
            };
            let token = new_token();
            held.due = Some(until);
            held.token = Some(token.clone());
            self.due.insert((until, job));
            claimed.push(ClaimedDelivery {
                delivery: held.delivery.clone(),
                claim: DeliveryClaim { job_id: job, token },
            });
        }
        claimed
    }

    pub(super) fn record(
        &mut self,
        claim: &DeliveryClaim,
        attempt: DeliveryAttempt,
        next: &DeliveryNext,
    ) -> Option<WebhookDelivery> {
        let held = self.deliveries.get_mut(&claim.job_id)?;
        if held.token.as_deref() != Some(claim.token.as_str()) {
            return None;
        }
        apply_attempt(&mut held.delivery, attempt, next);
        if let Some(due) = held.due.take() {
            self.due.remove(&(due, claim.job_id));
        }
        held.token = None;
        if let Some(at) = next.due() {
            held.due = Some(at.0);
            self.due.insert((at.0, claim.job_id));
        }
        Some(held.delivery.clone())
    }
}
