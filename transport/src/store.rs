//! The result store: job records, their forward-only status, their event logs, the
//! per-session job index, idempotency keys and the webhook outbox.

use crate::outbox::{ClaimedDelivery, DeliveryClaim, DeliveryNext};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tether_protocol::{
    DeliveryAttempt, JobError, JobEvent, JobEventKind, JobId, JobRecord, JobResult, JobStatus,
    NodeId, UnixMillis, UserUuid, WebhookDelivery,
};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store is unreachable right now; transient, the API answers 503 + `Retry-After`.
    #[error("result store unavailable: {0}")]
    Unavailable(String),
    /// A record could not be encoded or decoded; a bug or a foreign writer.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// A record with this id already exists.
    #[error("job {0} already exists")]
    Duplicate(JobId),
}

/// A change to a record. Applied only if it moves the status forward.
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "short-lived values; boxing the result would only add an allocation"
)]
pub enum RecordUpdate {
    /// A worker began executing the job.
    Started { node: NodeId, at: UnixMillis },
    /// The job reached a terminal status.
    Finished {
        status: JobStatus,
        result: Option<JobResult>,
        error: Option<JobError>,
        at: UnixMillis,
    },
}

impl RecordUpdate {
    /// The status the update moves the record to.
    pub fn status(&self) -> JobStatus {
        match self {
            RecordUpdate::Started { .. } => JobStatus::Running,
            RecordUpdate::Finished { status, .. } => *status,
        }
    }

    /// Apply to a record if the transition is forward; returns whether it was applied.
    pub fn apply(self, record: &mut JobRecord) -> bool {
        if !record.status.can_become(self.status()) {
            return false;
        }
        match self {
            RecordUpdate::Started { node, at } => {
                record.status = JobStatus::Running;
                record.node_id = Some(node);
                record.started_at = Some(at);
            }
            RecordUpdate::Finished {
                status,
                result,
                error,
                at,
            } => {
                record.status = status;
                record.result = result;
                record.error = error;
                record.finished_at = Some(at);
            }
        }
        true
    }
}

/// What an update did.
#[derive(Debug, Clone)]
pub enum UpdateOutcome {
    /// The update moved the record forward; this is the new record.
    Applied(JobRecord),
    /// The record was already at or past that status; this is the unchanged record.
    Stale(JobRecord),
    /// No such job (never existed or expired).
    Missing,
}

/// What an idempotency key stands for: the job it created, and a fingerprint of the
/// request that created it (a retry must send the same request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyEntry {
    pub job_id: JobId,
    pub fingerprint: String,
}

/// Job records with forward-only transitions, per-job event logs and completion waits.
/// Waiters always re-read the record, so a lost wake-up costs latency, never a result.
///
/// Two duties happen inside other calls, so that no caller can forget them:
/// - `insert` adds the job to its session's index (read by [`JobStore::session_jobs`]);
/// - a record that becomes terminal (by `update`, or inserted terminal) and has a
///   `callback_url` gets a [`WebhookDelivery`] queued, due at once, atomically with the
///   change: a webhook is never lost between the two.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Store a new record. Fails with [`StoreError::Duplicate`] if the id exists.
    async fn insert(&self, record: &JobRecord) -> Result<(), StoreError>;

    /// Read a record.
    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError>;

    /// Move a record forward (see [`RecordUpdate::apply`]); wakes waiters when applied.
    async fn update(&self, id: JobId, update: RecordUpdate) -> Result<UpdateOutcome, StoreError>;

    /// Mark a job as cancel-requested. Returns the record as it is after the mark.
    async fn request_cancel(&self, id: JobId) -> Result<Option<JobRecord>, StoreError>;

    /// Wait until the job is terminal or `timeout` passes; returns the latest record.
    async fn wait_terminal(
        &self,
        id: JobId,
        timeout: Duration,
    ) -> Result<Option<JobRecord>, StoreError>;

    /// Allocate the next position in the session's ordered log (1, 2, 3, …).
    async fn next_seq(&self, user: UserUuid) -> Result<u64, StoreError>;

    /// Append an event to the job's log; returns its index (1-based, gap-free).
    async fn append_event(&self, id: JobId, kind: JobEventKind) -> Result<u64, StoreError>;

    /// Events with index greater than `after`, waiting up to `timeout` for at least one.
    /// Returns an empty list on timeout.
    async fn events_after(
        &self,
        id: JobId,
        after: u64,
        timeout: Duration,
    ) -> Result<Vec<JobEvent>, StoreError>;

    /// The session's jobs with `seq > after_seq`, in `seq` order, at most `limit`.
    /// Expired records are skipped.
    async fn session_jobs(
        &self,
        user: UserUuid,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<JobRecord>, StoreError>;

    /// Bind an idempotency key to `entry` for `ttl`, unless the key is bound already.
    /// Returns `None` when this call bound it, else the existing entry (atomic: of two
    /// concurrent callers exactly one gets `None`).
    async fn remember_idempotency_key(
        &self,
        key: &str,
        entry: &IdempotencyEntry,
        ttl: Duration,
    ) -> Result<Option<IdempotencyEntry>, StoreError>;

    /// Unbind the key if it is still bound to `entry` (the job it promised was refused).
    async fn forget_idempotency_key(
        &self,
        key: &str,
        entry: &IdempotencyEntry,
    ) -> Result<(), StoreError>;

    /// The webhook delivery of a job, if it has one.
    async fn delivery(&self, job: JobId) -> Result<Option<WebhookDelivery>, StoreError>;

    /// Claim up to `limit` pending deliveries due at `now`, oldest due first. Each is held
    /// for `lease`: no other claim gets it until the lease runs out or an attempt is
    /// recorded.
    async fn claim_due_deliveries(
        &self,
        now: UnixMillis,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>, StoreError>;

    /// Record an attempt made under `claim` and what comes next (see
    /// [`crate::outbox::apply_attempt`]); ends the claim. Returns the updated delivery, or
    /// `None` if the claim is no longer current (its lease ran out and another loop took
    /// the delivery), in which case nothing is written.
    async fn record_attempt(
        &self,
        claim: &DeliveryClaim,
        attempt: DeliveryAttempt,
        next: DeliveryNext,
    ) -> Result<Option<WebhookDelivery>, StoreError>;
}
