//! The result store: job records, their forward-only status, and their event logs.

use async_trait::async_trait;
use std::time::Duration;
use tether_protocol::{
    JobError, JobEvent, JobEventKind, JobId, JobRecord, JobResult, JobStatus, NodeId, UnixMillis,
    UserUuid,
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

/// Job records with forward-only transitions, per-job event logs and completion waits.
/// Waiters always re-read the record, so a lost wake-up costs latency, never a result.
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
}
