//! What a finished execute job means for a synchronous caller: an [`Execution`] to show
//! (the code ran, or raised), or the [`ApiError`] that tells the client what happened to
//! its environment (timeout → 503, sandbox crash → 504, pool full → 503 + Retry-After).

use crate::error::ApiError;
use std::time::Duration;
use tether_protocol::{
    ErrorCode, ExecError, ExecutionResult, JobError, JobId, JobKind, JobRecord, JobResult,
    JobStatus, NodeId, Outcome, UserUuid,
};

/// An execution that ran to its end, normally or by raising.
#[derive(Debug)]
pub struct Execution {
    pub job_id: JobId,
    pub seq: u64,
    /// Stable per session while it stays on its node: node id + short session id.
    pub worker_id: String,
    pub result: ExecutionResult,
}

impl Execution {
    /// The exception the code raised, if it raised.
    pub fn raised(&self) -> Option<&ExecError> {
        match self.result.outcome {
            Outcome::Error => self.result.error.as_ref(),
            _ => None,
        }
    }
}

/// The seed's name for the sandbox serving a session.
pub fn worker_id(node: Option<&NodeId>, user: UserUuid) -> String {
    let session = user.simple();
    let short = session.get(..12).unwrap_or(&session);
    match node {
        Some(node) => format!("{node}-{short}"),
        None => format!("unplaced-{short}"),
    }
}

/// Read a terminal execute record.
pub fn execution_of(record: JobRecord) -> Result<Execution, ApiError> {
    let JobKind::Execute(spec) = &record.job.kind else {
        return Err(ApiError::internal(
            "a release record where an execution was expected",
        ));
    };
    let limit = Duration::from_millis(spec.timeout_ms);
    let result = match record.result {
        Some(JobResult::Execute(result)) => Some(result),
        Some(
            JobResult::Release { .. }
            | JobResult::FilesImport { .. }
            | JobResult::FilesExport { .. }
            | JobResult::FilesDelete { .. },
        ) => {
            return Err(ApiError::internal(
                "an execute job ended with another job's result",
            ));
        }
        None => None,
    };
    let result = match record.status {
        JobStatus::Succeeded => match result {
            Some(result) => by_outcome(result, limit)?,
            None => {
                return Err(ApiError::internal(
                    "an execute job succeeded without a result",
                ));
            }
        },
        JobStatus::TimedOut => return Err(timed_out(limit, result)),
        JobStatus::Failed => return Err(failed(record.error, result, limit)),
        JobStatus::Cancelled => return Err(cancelled(result)),
        JobStatus::SessionLost => return Err(session_lost(record.error)),
        JobStatus::Queued | JobStatus::Running => {
            return Err(ApiError::internal("read a job that is not finished"));
        }
    };
    Ok(Execution {
        job_id: record.job.id,
        seq: record.job.seq,
        worker_id: worker_id(record.node_id.as_ref(), record.job.user_uuid),
        result,
    })
}

/// Read a terminal release record: whether a sandbox existed and was destroyed. A
/// session whose node was lost has nothing left to release, which is a success too.
pub fn release_of(record: JobRecord) -> Result<bool, ApiError> {
    let result = match record.result {
        Some(JobResult::Release { released }) => Some(released),
        Some(
            JobResult::Execute(_)
            | JobResult::FilesImport { .. }
            | JobResult::FilesExport { .. }
            | JobResult::FilesDelete { .. },
        )
        | None => None,
    };
    match (record.status, result) {
        (JobStatus::Succeeded, Some(released)) => Ok(released),
        (JobStatus::SessionLost, _) => Ok(false),
        (JobStatus::Succeeded, None) => Err(ApiError::internal(
            "a release job succeeded without a release result",
        )),
        (JobStatus::Failed | JobStatus::TimedOut, _) => {
            Err(failed(record.error, None, Duration::ZERO))
        }
        (JobStatus::Cancelled, _) => Err(cancelled(None)),
        (JobStatus::Queued | JobStatus::Running, _) => {
            Err(ApiError::internal("read a job that is not finished"))
        }
    }
}

/// Read a terminal file job record: its result, or the typed error it failed with
/// (`file_not_found` → 404, `file_too_large` → 413, `unsafe_path`/`egress_denied` → 422,
/// `transfer_failed` → 502, …).
pub fn files_of(record: JobRecord) -> Result<JobResult, ApiError> {
    match (record.status, record.result) {
        (
            JobStatus::Succeeded,
            Some(
                result @ (JobResult::FilesImport { .. }
                | JobResult::FilesExport { .. }
                | JobResult::FilesDelete { .. }),
            ),
        ) => Ok(result),
        (JobStatus::Succeeded, _) => Err(ApiError::internal(
            "a file job succeeded without a file result",
        )),
        (JobStatus::Failed | JobStatus::TimedOut, _) => {
            Err(failed(record.error, None, Duration::ZERO))
        }
        (JobStatus::Cancelled, _) => Err(cancelled(None)),
        (JobStatus::SessionLost, _) => Err(session_lost(record.error)),
        (JobStatus::Queued | JobStatus::Running, _) => {
            Err(ApiError::internal("read a job that is not finished"))
        }
    }
}

/// A `succeeded` job is shown only if the code ran to its end; a worker that reports
/// another outcome as success is believed on the outcome.
fn by_outcome(result: ExecutionResult, limit: Duration) -> Result<ExecutionResult, ApiError> {
    match result.outcome {
        Outcome::Ok | Outcome::Error => Ok(result),
        Outcome::TimeoutInterrupted | Outcome::KernelRestarted | Outcome::SandboxRecycled => {
            Err(timed_out(limit, Some(result)))
        }
        Outcome::OomKilled => Err(sandbox_lost(Some(result), None)),
        Outcome::Cancelled => Err(cancelled(Some(result))),
    }
}

fn state_sentence(preserved: bool) -> &'static str {
    if preserved {
        "The environment's state was kept."
    } else {
        "The environment has been reset: variables and imports are lost."
    }
}

fn seconds(limit: Duration) -> String {
    let secs = limit.as_secs_f64();
    if secs.fract() == 0.0 {
        format!("{}", limit.as_secs())
    } else {
        format!("{secs:.1}")
    }
}

fn timed_out(limit: Duration, result: Option<ExecutionResult>) -> ApiError {
    let (what, state) = match &result {
        Some(r) => {
            let what = match r.outcome {
                Outcome::TimeoutInterrupted => "was interrupted",
                Outcome::KernelRestarted => "the kernel had to be restarted",
                Outcome::SandboxRecycled => "the sandbox had to be replaced",
                Outcome::Ok | Outcome::Error | Outcome::OomKilled | Outcome::Cancelled => {
                    "was stopped"
                }
            };
            (what, state_sentence(r.state_preserved))
        }
        None => ("was stopped", "The environment may have been reset."),
    };
    let detail = format!(
        "Code execution timed out after {} seconds and {what}. {state}",
        seconds(limit)
    );
    let message = result
        .as_ref()
        .and_then(|r| r.message.clone())
        .unwrap_or_else(|| detail.clone());
    ApiError::new(ErrorCode::ExecutionTimeout, detail)
        .with_message(message)
        .with_execution(result)
}

fn sandbox_lost(result: Option<ExecutionResult>, message: Option<String>) -> ApiError {
    let detail = match &result {
        Some(r) => {
            let what = match r.outcome {
                Outcome::OomKilled => "The code ran out of memory and the kernel was killed.",
                Outcome::KernelRestarted => "The kernel died and was restarted.",
                Outcome::SandboxRecycled => "The sandbox crashed and was replaced.",
                Outcome::Ok | Outcome::Error | Outcome::TimeoutInterrupted | Outcome::Cancelled => {
                    "Gateway Timeout: the sandbox crashed or could not be reached."
                }
            };
            format!("{what} {}", state_sentence(r.state_preserved))
        }
        None => "Gateway Timeout: the sandbox crashed or could not be reached.".to_owned(),
    };
    let message = message
        .or_else(|| result.as_ref().and_then(|r| r.message.clone()))
        .unwrap_or_else(|| detail.clone());
    ApiError::new(ErrorCode::SandboxUnavailable, detail)
        .with_message(message)
        .with_execution(result)
}

fn cancelled(result: Option<ExecutionResult>) -> ApiError {
    ApiError::new(
        ErrorCode::Cancelled,
        "The execution was cancelled before it finished.",
    )
    .with_execution(result)
}

fn session_lost(error: Option<JobError>) -> ApiError {
    let e = ApiError::new(
        ErrorCode::SessionLost,
        "The node holding this session was lost with its state. Retrying starts a fresh session.",
    );
    match error {
        Some(error) => e.with_message(error.message),
        None => e,
    }
}

fn failed(error: Option<JobError>, result: Option<ExecutionResult>, limit: Duration) -> ApiError {
    let Some(JobError { code, message }) = error else {
        return ApiError::internal("a job failed without saying why").with_execution(result);
    };
    match code {
        ErrorCode::NoCapacity => ApiError::new(
            ErrorCode::NoCapacity,
            "No available workers at the moment, please try again later.",
        )
        .with_message(message)
        .with_retry_after(Duration::from_secs(5)),
        ErrorCode::SandboxUnavailable => sandbox_lost(result, Some(message)),
        ErrorCode::ExecutionTimeout => timed_out(limit, result),
        ErrorCode::Cancelled => cancelled(result),
        ErrorCode::SessionLost => session_lost(Some(JobError { code, message })),
        ErrorCode::Unavailable => ApiError::new(
            ErrorCode::Unavailable,
            "The execution backend is unavailable right now. Please try again shortly.",
        )
        .with_message(message)
        .with_retry_after(Duration::from_secs(2)),
        ErrorCode::Internal | ErrorCode::PoisonJob => {
            ApiError::internal(format!("job failed with {code}: {message}")).with_execution(result)
        }
        ErrorCode::Unauthorized
        | ErrorCode::InvalidRequest
        | ErrorCode::InvalidJson
        | ErrorCode::PayloadTooLarge
        | ErrorCode::ExecutionError
        | ErrorCode::NotFound
        | ErrorCode::IdempotencyConflict
        | ErrorCode::IdempotencyInProgress
        | ErrorCode::JobFinished
        | ErrorCode::FileNotFound
        | ErrorCode::FileTooLarge
        | ErrorCode::UnsafePath
        | ErrorCode::EgressDenied
        | ErrorCode::TransferFailed
        | ErrorCode::DiskFull => ApiError::new(code, message).with_execution(result),
    }
}
