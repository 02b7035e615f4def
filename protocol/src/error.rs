//! Stable, machine-readable error codes. Clients branch on these strings, so a variant's
//! wire name never changes once released.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Every error Tether reports, API or job. The HTTP status each maps to lives in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Missing or wrong `X-Auth-Token`.
    Unauthorized,
    /// A field is missing, malformed or out of range; the message names it.
    InvalidRequest,
    /// The body is not valid JSON.
    InvalidJson,
    /// The request or the code is larger than allowed.
    PayloadTooLarge,
    /// Every sandbox slot is in use; retry later.
    NoCapacity,
    /// The service is starting or a dependency (store, bus) is unreachable; retry later.
    Unavailable,
    /// The code raised an exception (only reported as an error by the legacy endpoints;
    /// the current API answers 200 with the structured error).
    ExecutionError,
    /// The code ran past its time limit.
    ExecutionTimeout,
    /// The sandbox crashed or could not be reached.
    SandboxUnavailable,
    /// The node that owned the session was lost; its state must be rebuilt.
    SessionLost,
    /// The job was cancelled by the client.
    Cancelled,
    /// The job or resource does not exist (or has expired).
    NotFound,
    /// The same idempotency key was used with a different request.
    IdempotencyConflict,
    /// A request with the same idempotency key is still being processed; retry shortly.
    IdempotencyInProgress,
    /// The job already reached a terminal status other than `cancelled`: nothing to cancel.
    JobFinished,
    /// The job could not be decoded or processed at all.
    PoisonJob,
    /// A file to read, export or list does not exist in the session disk.
    FileNotFound,
    /// A file exceeds the per-file size limit; nothing was left behind.
    FileTooLarge,
    /// A path leads through or to a link, FIFO, socket, device or hard-linked file, which
    /// the host never follows or reads.
    UnsafePath,
    /// An outbound URL points at an address the egress policy refuses (internal, loopback,
    /// metadata, …).
    EgressDenied,
    /// The remote side of a transfer failed (HTTP error status, connection, S3 error).
    TransferFailed,
    /// The session disk is full.
    DiskFull,
    /// A bug or unexpected failure; details are in the server log.
    Internal,
}

impl ErrorCode {
    /// The stable wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::NoCapacity => "no_capacity",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::ExecutionError => "execution_error",
            ErrorCode::ExecutionTimeout => "execution_timeout",
            ErrorCode::SandboxUnavailable => "sandbox_unavailable",
            ErrorCode::SessionLost => "session_lost",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::NotFound => "not_found",
            ErrorCode::IdempotencyConflict => "idempotency_conflict",
            ErrorCode::IdempotencyInProgress => "idempotency_in_progress",
            ErrorCode::JobFinished => "job_finished",
            ErrorCode::PoisonJob => "poison_job",
            ErrorCode::FileNotFound => "file_not_found",
            ErrorCode::FileTooLarge => "file_too_large",
            ErrorCode::UnsafePath => "unsafe_path",
            ErrorCode::EgressDenied => "egress_denied",
            ErrorCode::TransferFailed => "transfer_failed",
            ErrorCode::DiskFull => "disk_full",
            ErrorCode::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_as_str() {
        for code in [
            ErrorCode::Unauthorized,
            ErrorCode::NoCapacity,
            ErrorCode::ExecutionError,
            ErrorCode::SessionLost,
            ErrorCode::IdempotencyConflict,
            ErrorCode::IdempotencyInProgress,
            ErrorCode::JobFinished,
            ErrorCode::FileNotFound,
            ErrorCode::FileTooLarge,
            ErrorCode::UnsafePath,
            ErrorCode::EgressDenied,
            ErrorCode::TransferFailed,
            ErrorCode::DiskFull,
        ] {
            let v = serde_json::to_value(code).unwrap();
            assert_eq!(v, code.as_str());
        }
    }
}
