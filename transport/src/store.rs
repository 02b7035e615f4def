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

/// The event a store appends when a change moves `record` to a new status (from
/// `before`; `None` for an insert): every status a job reaches, its event log says so.
pub(crate) fn status_event(before: Option<JobStatus>, record: &JobRecord) -> Option<JobEventKind> {
    let changed = match before {
        Some(before) => before != record.status,
        // A record inserted queued needs no event; one inserted finished does.
        None => record.status.is_terminal(),
    };
    changed.then_some(JobEventKind::Status {
        status: record.status,
    })
}

/// Where the store's node index files a record: the node of a non-terminal record.
pub(crate) fn indexed_node(record: &JobRecord) -> Option<&NodeId> {
    if record.status.is_terminal() {
        None
    } else {
        record.node_id.as_ref()
    }
}

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

/// A change to a record. Applied only if it moves the status forward (a reroute or an
/// undelivered job: only while the job is still queued; a start: only if no cancel was
/// requested, so a job cancelled while queued never starts).
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "short-lived values; boxing the result would only add an allocation"
)]
pub enum RecordUpdate {
    /// A worker begins executing the job. Not applied once a cancel was requested: the
    /// worker then ends the job `cancelled` instead of running it.
    Started { node: NodeId, at: UnixMillis },
    /// The job was moved to another node's queue before any worker started it (its node
    /// vanished while it was being routed). Applies only to a `queued` record.
    Rerouted { node: NodeId },
    /// The dispatcher gave up delivering the job (the publish failed, or its confirm never
    /// came, so the job may or may not be on a queue): it ends with `status` if still
    /// queued. A worker that already started it carries on, and no worker starts it later.
    Undelivered {
        status: JobStatus,
        error: JobError,
        at: UnixMillis,
    },
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
            RecordUpdate::Rerouted { .. } => JobStatus::Queued,
            RecordUpdate::Started { .. } => JobStatus::Running,
            RecordUpdate::Undelivered { status, .. } | RecordUpdate::Finished { status, .. } => {
                *status
            }
        }
    }

    /// Apply to a record if the transition is forward (a reroute: if the record is still
    /// queued); returns whether it was applied.
    pub fn apply(self, record: &mut JobRecord) -> bool {
        let forward = match &self {
            RecordUpdate::Rerouted { node } => {
                record.status == JobStatus::Queued && record.node_id.as_ref() != Some(node)
            }
            RecordUpdate::Undelivered { status, .. } => {
                record.status == JobStatus::Queued && status.is_terminal()
            }
            RecordUpdate::Started { .. } => {
                record.status.can_become(JobStatus::Running) && !record.cancel_requested
            }
            RecordUpdate::Finished { .. } => record.status.can_become(self.status()),
        };
        if !forward {
            return false;
        }
        match self {
            RecordUpdate::Rerouted { node } => record.node_id = Some(node),
            RecordUpdate::Started { node, at } => {
                record.status = JobStatus::Running;
                record.node_id = Some(node);
                record.started_at = Some(at);
            }
            RecordUpdate::Undelivered { status, error, at } => {
                record.status = status;
                record.error = Some(error);
                record.finished_at = Some(at);
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
/// Duties that happen inside other calls, so that no caller can forget them:
/// - `insert` adds the job to its session's index (read by [`JobStore::session_jobs`]);
/// - a record that becomes terminal (by `update`, or inserted terminal) and has a
///   `callback_url` gets a [`WebhookDelivery`] queued, due at once, atomically with the
///   change: a webhook is never lost between the two;
/// - `insert` and `update` file every non-terminal record under the node it names
///   (`node_id`), read by [`JobStore::active_jobs_on`], so that the jobs of a dead node
///   can be found and failed;
/// - an `update` that changes the status (and an `insert` of a record that is already
///   terminal) appends a [`JobEventKind::Status`] event with the new status to the job's
///   log in the same step, so every event stream ends the same way whoever ended the job,
///   without an extra round trip.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Store a new record. Fails with [`StoreError::Duplicate`] if the id exists.
    async fn insert(&self, record: &JobRecord) -> Result<(), StoreError>;

    /// Read a record.
    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError>;

    /// Move a record forward (see [`RecordUpdate::apply`]); wakes waiters when applied.
    async fn update(&self, id: JobId, update: RecordUpdate) -> Result<UpdateOutcome, StoreError>;

    /// [`JobStore::update`] for a caller that believes `expected` is the stored record
    /// (it wrote or read it last): a store may then skip reading the record first. A
    /// wrong belief costs only that read; the outcome is the same.
    async fn update_expecting(
        &self,
        expected: &JobRecord,
        update: RecordUpdate,
    ) -> Result<UpdateOutcome, StoreError> {
        self.update(expected.job.id, update).await
    }

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

    /// [`JobStore::next_seq`], also saying whether the new seq's publish turn has already
    /// come (every earlier seq's publish is over), in which case the caller may skip
    /// [`JobStore::wait_publish_turn`]. `false` says nothing: wait for the turn.
    async fn next_seq_and_turn(&self, user: UserUuid) -> Result<(u64, bool), StoreError> {
        Ok((self.next_seq(user).await?, false))
    }

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

    // --- Distributed mode: node loss and cross-replica ordering ---

    /// Ids of the non-terminal jobs whose record names `node` (queued for it or running
    /// on it), in no particular order.
    async fn active_jobs_on(&self, node: &NodeId) -> Result<Vec<JobId>, StoreError>;

    /// Wait until the publish attempts of every earlier `seq` of the session are over
    /// (see [`JobStore::finish_publish_turn`]), at most `within`. Returns `true` when it is
    /// this seq's turn, `false` when the wait gave up (a predecessor's dispatcher died
    /// between taking its seq and finishing its turn). Jobs of one session submitted
    /// through different dispatchers thereby reach their node's queue in seq order.
    async fn wait_publish_turn(
        &self,
        user: UserUuid,
        seq: u64,
        within: Duration,
    ) -> Result<bool, StoreError>;

    /// Say that the publish attempt of `seq` is over (published, refused or abandoned), so
    /// the session's next seq may publish. Never moves the mark backwards.
    async fn finish_publish_turn(&self, user: UserUuid, seq: u64) -> Result<(), StoreError>;
}
