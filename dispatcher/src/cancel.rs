//! `cancel`: stop a job. A queued job is marked `cancelled` at once and its node skips it
//! when its turn comes (the start gate sees the record); a running job is flagged and its
//! node interrupts the kernel, so it ends `cancelled` with the session's state kept.

use crate::Dispatcher;
use crate::error::DispatchError;
use tether_protocol::{ErrorCode, JobError, JobId, JobRecord, JobStatus, UnixMillis};
use tether_transport::{RecordUpdate, UpdateOutcome};

/// What a cancel request did. Each variant carries the record as it is now.
#[derive(Debug, Clone)]
pub enum Cancellation {
    /// The job was still queued: it is `cancelled` now and never runs.
    Cancelled(JobRecord),
    /// The job is running: its node interrupts it and it ends `cancelled` shortly.
    Interrupting(JobRecord),
    /// The job had already ended; nothing changed.
    AlreadyFinished(JobRecord),
    /// No such job (never existed, or expired).
    NotFound,
}

impl Dispatcher {
    /// Cancel job `id` (see [`Cancellation`]). Safe to repeat and to race with the node
    /// starting the job: the store's forward-only transitions let exactly one side win.
    pub async fn cancel(&self, id: JobId) -> Result<Cancellation, DispatchError> {
        let Some(record) = self.store.request_cancel(id).await? else {
            return Ok(Cancellation::NotFound);
        };
        match record.status {
            JobStatus::Queued => {}
            JobStatus::Running => return Ok(Cancellation::Interrupting(record)),
            _ => return Ok(Cancellation::AlreadyFinished(record)),
        }
        let update = RecordUpdate::Finished {
            status: JobStatus::Cancelled,
            result: None,
            error: Some(JobError {
                code: ErrorCode::Cancelled,
                message: "The job was cancelled before it started.".into(),
            }),
            at: UnixMillis::now(),
        };
        Ok(match self.store.update(id, update).await? {
            UpdateOutcome::Applied(record) => {
                tracing::info!(job_id = %id, "queued job cancelled");
                Cancellation::Cancelled(record)
            }
            // The node started it meanwhile; the flag set above makes it interrupt.
            UpdateOutcome::Stale(record) if record.status == JobStatus::Running => {
                Cancellation::Interrupting(record)
            }
            UpdateOutcome::Stale(record) => Cancellation::AlreadyFinished(record),
            UpdateOutcome::Missing => Cancellation::NotFound,
        })
    }
}
