//! What can stop a job from being dispatched, and what the caller should do about it.

use std::time::Duration;
use tether_protocol::{ErrorCode, JobId, NodeId};
use tether_transport::{BusError, RegistryError, StoreError};

/// Why `submit` did not queue the job. [`DispatchError::is_retryable`] says whether the
/// same request may succeed later; [`DispatchError::code`] is the stable wire code.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// No node is live or none has finished starting. Retry shortly; no record was created.
    #[error("no worker node is ready yet (the service is starting or every node is down)")]
    NotReady,
    /// Every live node is full or draining. Retry later; no record was created.
    #[error("every worker node is at capacity")]
    NoCapacity,
    /// The session's node vanished while the job was being routed, twice. The record is
    /// failed with `session_lost`; resubmitting starts the session afresh.
    #[error("job {job} could not be routed: node {node} is gone")]
    SessionLost { job: JobId, node: NodeId },
    /// The broker refused the publish. The record (if any) is failed; retry later.
    #[error(transparent)]
    Bus(BusError),
    /// The result store failed. Retry later if [`DispatchError::is_retryable`].
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node registry is unreachable. Retry later; no record was created.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl DispatchError {
    /// Whether the same submission may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            DispatchError::NotReady
            | DispatchError::NoCapacity
            | DispatchError::SessionLost { .. }
            | DispatchError::Bus(_)
            | DispatchError::Registry(_) => true,
            DispatchError::Store(e) => matches!(e, StoreError::Unavailable(_)),
        }
    }

    /// The stable error code clients see.
    pub fn code(&self) -> ErrorCode {
        match self {
            DispatchError::NotReady | DispatchError::Bus(_) | DispatchError::Registry(_) => {
                ErrorCode::Unavailable
            }
            DispatchError::NoCapacity => ErrorCode::NoCapacity,
            DispatchError::SessionLost { .. } => ErrorCode::SessionLost,
            DispatchError::Store(StoreError::Unavailable(_)) => ErrorCode::Unavailable,
            DispatchError::Store(StoreError::Corrupt(_) | StoreError::Duplicate(_)) => {
                ErrorCode::Internal
            }
        }
    }

    /// A suggested wait before retrying, for errors where waiting helps.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DispatchError::NotReady => Some(Duration::from_secs(2)),
            DispatchError::NoCapacity => Some(Duration::from_secs(5)),
            DispatchError::Bus(_) | DispatchError::Registry(_) => Some(Duration::from_secs(2)),
            DispatchError::Store(e) => {
                matches!(e, StoreError::Unavailable(_)).then(|| Duration::from_secs(2))
            }
            DispatchError::SessionLost { .. } => None,
        }
    }
}
