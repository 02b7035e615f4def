//! A synchronous endpoint is the job path plus a wait: submit the job, wait for its
//! record to become terminal, hand the record to the view. Issue 5's job API exposes the
//! same path without the wait, so every channel reports the same truth.

use crate::error::ApiError;
use crate::state::AppState;
use std::time::Duration;
use tether_protocol::{ErrorCode, JobKind, JobRecord, UserUuid};

/// How long a synchronous import or export may take before the caller gets 504.
pub const FILE_TRANSFER_WAIT: Duration = Duration::from_secs(600);

/// Submit `kind` for `user` and return its terminal record. The wait is bounded by the
/// job's time limit plus the configured margin; past it the job is abandoned (cancel is
/// requested) and the caller gets 504. Server shutdown ends the wait with 503.
pub async fn submit_and_wait(
    state: &AppState,
    user: UserUuid,
    kind: JobKind,
) -> Result<JobRecord, ApiError> {
    let limit = match &kind {
        JobKind::Execute(spec) => Duration::from_millis(spec.timeout_ms),
        JobKind::Release => Duration::ZERO,
        // Up to 100 files of up to 100 MiB each, fetched a few at a time.
        JobKind::FilesImport(_) | JobKind::FilesExport(_) => FILE_TRANSFER_WAIT,
        JobKind::FilesDelete(_) => Duration::ZERO,
    };
    let wait = limit + state.config().sync_wait_margin;
    let record = state.dispatcher().submit(user, kind, None, None).await?;
    if record.status.is_terminal() {
        return Ok(record);
    }
    let id = record.job.id;
    let waited = tokio::select! {
        waited = state.store().wait_terminal(id, wait) => waited?,
        () = state.shutdown().cancelled() => {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "The service is shutting down. Please try again shortly.",
            )
            .with_message(format!("job {id} was queued; it may still run"))
            .with_retry_after(Duration::from_secs(5)));
        }
    };
    match waited {
        Some(record) if record.status.is_terminal() => Ok(record),
        Some(_) => {
            if let Err(e) = state.store().request_cancel(id).await {
                tracing::warn!(job_id = %id, error = %e, "could not cancel an abandoned job");
            }
            Err(ApiError::new(
                ErrorCode::SandboxUnavailable,
                format!(
                    "Gateway Timeout: no result from the sandbox within {} seconds.",
                    wait.as_secs()
                ),
            )
            .with_message(format!(
                "job {id} was abandoned and its cancellation requested"
            )))
        }
        // Only a result store that lost its data (restarted without persistence) forgets
        // a job that is still being waited on: a transient failure of the backend.
        None => Err(ApiError::new(
            ErrorCode::Unavailable,
            "The result store lost this job while it ran (it may have run). Please try again.",
        )
        .with_message(format!(
            "job {id} disappeared from the store while waited on"
        ))
        .with_retry_after(Duration::from_secs(2))),
    }
}
