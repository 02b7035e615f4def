//! Jobs: what a client asked for, and the record of what became of it.

use crate::error::ErrorCode;
use crate::execution::ExecutionResult;
use crate::files::{DeleteSpec, DeletedFile, ExportSpec, ExportedFile, ImportSpec, ImportedFile};
use crate::ids::{JobId, NodeId, UserUuid};
use crate::time::UnixMillis;
use serde::{Deserialize, Serialize};

/// Run code in the session's kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecuteSpec {
    pub code: String,
    /// Wall-clock limit for this execution, enforced by the worker-host's timeout ladder.
    pub timeout_ms: u64,
}

/// The work a job asks for. Every kind travels the same path (bus → owner node → store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum JobKind {
    #[serde(rename = "execute")]
    Execute(ExecuteSpec),
    /// Destroy the session's sandbox and disk.
    #[serde(rename = "release")]
    Release,
    /// Fetch files (URL or `s3://`) into the session disk.
    #[serde(rename = "files.import")]
    FilesImport(ImportSpec),
    /// Upload files from the session disk (presigned PUT/POST or `s3://`).
    #[serde(rename = "files.export")]
    FilesExport(ExportSpec),
    /// Delete files from the session disk.
    #[serde(rename = "files.delete")]
    FilesDelete(DeleteSpec),
}

impl JobKind {
    /// The wire name of the kind (`execute`, `release`, …).
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::Execute(_) => "execute",
            JobKind::Release => "release",
            JobKind::FilesImport(_) => "files.import",
            JobKind::FilesExport(_) => "files.export",
            JobKind::FilesDelete(_) => "files.delete",
        }
    }
}

/// One unit of work for one session, as it travels over the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub user_uuid: UserUuid,
    /// Position in the session's ordered log; jobs of a session run in `seq` order.
    pub seq: u64,
    pub kind: JobKind,
    pub submitted_at: UnixMillis,
    /// Where to POST the record when the job ends (validated by the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// Opaque client data echoed back in the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

/// A job's life. Transitions only move forward: `queued → running → terminal`, or
/// `queued → terminal`; a terminal status never changes again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
    SessionLost,
}

impl JobStatus {
    /// Whether the job is finished and its record final.
    pub fn is_terminal(self) -> bool {
        self.rank() == 2
    }

    /// 0 = queued, 1 = running, 2 = terminal. A transition must strictly increase it.
    pub fn rank(self) -> u8 {
        match self {
            JobStatus::Queued => 0,
            JobStatus::Running => 1,
            JobStatus::Succeeded
            | JobStatus::Failed
            | JobStatus::Cancelled
            | JobStatus::TimedOut
            | JobStatus::SessionLost => 2,
        }
    }

    /// Whether moving from `self` to `next` goes forward.
    pub fn can_become(self, next: JobStatus) -> bool {
        next.rank() > self.rank()
    }

    /// The wire name (`queued`, `succeeded`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::TimedOut => "timed_out",
            JobStatus::SessionLost => "session_lost",
        }
    }
}

/// Why a job failed, for statuses other than `succeeded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub code: ErrorCode,
    pub message: String,
}

impl JobError {
    /// The error of a job whose node was lost (died, or restarted) before the job ended.
    /// Every role that fails such a job says the same thing.
    pub fn session_lost(node: &NodeId) -> Self {
        Self {
            code: ErrorCode::SessionLost,
            message: format!(
                "The sandbox of this session was lost with node {node} (the node stopped \
                 answering or restarted). Variables, imports and files are gone: rebuild the \
                 session's state. The next job starts in a fresh sandbox and reports \
                 session_restarted: true."
            ),
        }
    }

    /// The error of a job whose message could not be processed at all.
    pub fn poison(reason: &str) -> Self {
        Self {
            code: ErrorCode::PoisonJob,
            message: format!("The job's message could not be processed: {reason}"),
        }
    }
}

/// What a finished job produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum JobResult {
    #[serde(rename = "execute")]
    Execute(ExecutionResult),
    #[serde(rename = "release")]
    Release {
        /// Whether a sandbox existed and was destroyed (false: nothing to release).
        released: bool,
    },
    #[serde(rename = "files.import")]
    FilesImport { results: Vec<ImportedFile> },
    #[serde(rename = "files.export")]
    FilesExport { results: Vec<ExportedFile> },
    #[serde(rename = "files.delete")]
    FilesDelete { results: Vec<DeletedFile> },
}

/// The single source of truth about a job, kept by the result store and read by every
/// channel (sync call, poll, SSE, webhook).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job: Job,
    pub status: JobStatus,
    /// The worker-host node the job was routed to.
    #[serde(default)]
    pub node_id: Option<NodeId>,
    pub queued_at: UnixMillis,
    #[serde(default)]
    pub started_at: Option<UnixMillis>,
    #[serde(default)]
    pub finished_at: Option<UnixMillis>,
    #[serde(default)]
    pub result: Option<JobResult>,
    #[serde(default)]
    pub error: Option<JobError>,
    /// Set when a client asked to cancel; a worker that sees it before starting skips the job.
    #[serde(default)]
    pub cancel_requested: bool,
}

impl JobRecord {
    /// A freshly accepted job.
    pub fn queued(job: Job, node_id: Option<NodeId>) -> Self {
        Self {
            queued_at: job.submitted_at,
            job,
            status: JobStatus::Queued,
            node_id,
            started_at: None,
            finished_at: None,
            result: None,
            error: None,
            cancel_requested: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_only_move_forward() {
        assert!(JobStatus::Queued.can_become(JobStatus::Running));
        assert!(JobStatus::Queued.can_become(JobStatus::Cancelled));
        assert!(JobStatus::Running.can_become(JobStatus::Succeeded));
        assert!(!JobStatus::Running.can_become(JobStatus::Queued));
        assert!(!JobStatus::Succeeded.can_become(JobStatus::Failed));
        assert!(!JobStatus::Running.can_become(JobStatus::Running));
    }

    #[test]
    fn job_kind_wire_shape() {
        let kind = JobKind::Execute(ExecuteSpec {
            code: "1".into(),
            timeout_ms: 5,
        });
        let v = serde_json::to_value(&kind).unwrap();
        assert_eq!(v["type"], "execute");
        assert_eq!(v["code"], "1");
        let back: JobKind = serde_json::from_value(v).unwrap();
        assert_eq!(back, kind);
    }

    #[test]
    fn file_job_wire_shape() {
        let wire = serde_json::json!({
            "type": "files.import",
            "files": [{"download_url": "s3://bucket/a.csv", "path": "/sandbox/data", "name": "a.csv"}]
        });
        let kind: JobKind = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(kind.name(), "files.import");
        assert_eq!(serde_json::to_value(&kind).unwrap(), wire);
        let bad = serde_json::json!({
            "type": "files.delete",
            "files": [{"path": "/sandbox/../etc", "name": "passwd"}]
        });
        assert!(serde_json::from_value::<JobKind>(bad).is_err());

        let result = JobResult::FilesImport {
            results: vec![ImportedFile {
                full_path: "/sandbox/data/a.csv".into(),
                size: 3,
            }],
        };
        let v = serde_json::to_value(&result).unwrap();
        assert_eq!(v["type"], "files.import");
        assert_eq!(v["results"][0]["full_path"], "/sandbox/data/a.csv");
    }
}
