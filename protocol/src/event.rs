//! The ordered events a job emits while it runs, for streaming clients.

use crate::execution::StreamName;
use crate::job::JobStatus;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What happened. The final event of every job is `Result`-free `Status` with a terminal
/// status; clients then read the record for the full result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum JobEventKind {
    Status { status: JobStatus },
    Stream { name: StreamName, text: String },
    Display { data: Map<String, Value> },
}

/// One event with its position in the job's event log (1-based, gap-free), which
/// SSE uses as the event id so reconnecting clients resume exactly where they left off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    pub index: u64,
    #[serde(flatten)]
    pub kind: JobEventKind,
}
