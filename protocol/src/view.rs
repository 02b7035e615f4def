//! A job as clients see it. Every channel shows this one shape: `GET /api/v1/jobs/{id}`,
//! the SSE `result` event, the session listing and the webhook body.

use crate::ids::{JobId, NodeId, UserUuid};
use crate::job::{JobError, JobRecord, JobResult, JobStatus};
use crate::time::UnixMillis;
use serde::Serialize;
use serde_json::Value;

/// Where a job's resources live (paths relative to the API's root).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobLinks {
    #[serde(rename = "self")]
    pub self_: String,
    pub events: String,
    pub deliveries: String,
}

impl JobLinks {
    pub fn of(id: JobId) -> Self {
        let self_ = format!("/api/v1/jobs/{id}");
        Self {
            events: format!("{self_}/events"),
            deliveries: format!("{self_}/deliveries"),
            self_,
        }
    }
}

/// The public face of a [`JobRecord`]: the job's identity, its status and timestamps, and
/// once terminal its full result (or error). The code itself is not repeated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobView {
    pub job_id: JobId,
    pub user_uuid: UserUuid,
    /// Position in the session's ordered log.
    pub seq: u64,
    /// `execute`, `release`, …
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub status: JobStatus,
    /// The worker-host node the job was routed to (and ran on, once started).
    pub node_id: Option<NodeId>,
    /// Unix milliseconds.
    pub queued_at: UnixMillis,
    pub started_at: Option<UnixMillis>,
    pub finished_at: Option<UnixMillis>,
    /// A client asked to cancel; a running job ends `cancelled` shortly.
    pub cancel_requested: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// What the job produced (terminal jobs; `timed_out` and `cancelled` executions keep
    /// what ran before the stop).
    pub result: Option<JobResult>,
    /// Why the job did not succeed.
    pub error: Option<JobError>,
    pub links: JobLinks,
}

impl From<JobRecord> for JobView {
    fn from(record: JobRecord) -> Self {
        let JobRecord {
            job,
            status,
            node_id,
            queued_at,
            started_at,
            finished_at,
            result,
            error,
            cancel_requested,
        } = record;
        Self {
            job_id: job.id,
            user_uuid: job.user_uuid,
            seq: job.seq,
            kind: job.kind.name(),
            status,
            node_id,
            queued_at,
            started_at,
            finished_at,
            cancel_requested,
            callback_url: job.callback_url,
            metadata: job.metadata,
            result,
            error,
            links: JobLinks::of(job.id),
        }
    }
}
