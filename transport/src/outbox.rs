//! The webhook outbox: deliveries the store queues itself when a job with a `callback_url`
//! becomes terminal, claimed by delivery loops under a lease so that two dispatchers
//! never send the same attempt, and surviving restarts because they live in the store.
//!
//! Lifecycle: queued due now → claimed (due moves to now + lease; a crashed claimer's
//! deliveries come due again when the lease runs out) → an attempt is recorded with what
//! comes next ([`DeliveryNext`]), accepted only from the current claim holder.

use tether_protocol::{DeliveryAttempt, DeliveryState, JobId, UnixMillis, WebhookDelivery};

/// Proof of a claim. Recording an attempt needs the token of the latest claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryClaim {
    pub job_id: JobId,
    /// Unique per claim; a later claim of the same delivery gets a different one.
    pub token: String,
}

/// A delivery handed to one delivery loop until its lease runs out.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub delivery: WebhookDelivery,
    pub claim: DeliveryClaim,
}

/// What follows an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryNext {
    /// The receiver accepted: the delivery is done.
    Delivered,
    /// Try again at this time.
    RetryAt(UnixMillis),
    /// Give up, for this reason.
    Failed(String),
}

impl DeliveryNext {
    /// When the delivery is due next, if ever.
    pub fn due(&self) -> Option<UnixMillis> {
        match self {
            DeliveryNext::RetryAt(at) => Some(*at),
            DeliveryNext::Delivered | DeliveryNext::Failed(_) => None,
        }
    }
}

/// Add `attempt` to `delivery` and move it on as `next` says. Both store implementations
/// use this, so the recorded shape is the same everywhere.
pub fn apply_attempt(
    delivery: &mut WebhookDelivery,
    attempt: DeliveryAttempt,
    next: &DeliveryNext,
) {
    delivery.attempts.push(attempt);
    delivery.next_attempt_at = next.due();
    match next {
        DeliveryNext::Delivered => delivery.state = DeliveryState::Delivered,
        DeliveryNext::RetryAt(_) => delivery.state = DeliveryState::Pending,
        DeliveryNext::Failed(reason) => {
            delivery.state = DeliveryState::Failed;
            delivery.failure = Some(reason.clone());
        }
    }
}

/// A fresh claim token.
pub(crate) fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
