//! Tether's wire contract: the plain data every role exchanges.
//!
//! - [`ids`]: validated identifiers (`UserUuid`, `JobId`, `NodeId`).
//! - [`job`]: what a client asks for (`Job`, `JobKind`) and its life (`JobStatus`, `JobRecord`).
//! - [`execution`]: what running code produced (`ExecutionResult`, `Output`, `Outcome`).
//! - [`files`]: file jobs and direct transfer: `SandboxPath`, `FileName`, import/export/delete specs.
//! - [`event`]: the ordered stream of things a job emits while it runs.
//! - [`view`]: a job as clients see it on every channel (`JobView`).
//! - [`webhook`]: the delivery of a finished job's record to its `callback_url`.
//! - [`error`]: stable machine-readable error codes shared by API, dispatcher and workers.
//! - [`names`]: AMQP queue/exchange names and store key names, in one place.
//! - [`time`]: wall-clock timestamps as carried on the wire.
//!
//! Nothing here performs I/O; every role depends on this crate and on no other role.

pub mod error;
pub mod event;
pub mod execution;
pub mod files;
pub mod ids;
pub mod job;
pub mod names;
pub mod time;
pub mod view;
pub mod webhook;

pub use error::ErrorCode;
pub use event::{JobEvent, JobEventKind};
pub use execution::{ExecError, ExecutionResult, FileChange, Outcome, Output, StreamName};
pub use files::{
    DeleteSpec, DirEntry, DirListing, EntryKind, ExportSpec, FileName, ImportSpec, RemoteLocation,
    SandboxPath,
};
pub use ids::{IdError, JobId, NodeId, UserUuid};
pub use job::{ExecuteSpec, Job, JobError, JobKind, JobRecord, JobResult, JobStatus};
pub use time::UnixMillis;
pub use view::{JobLinks, JobView};
pub use webhook::{DeliveryAttempt, DeliveryState, WebhookDelivery};
