//! Names of queues, exchanges and store keys, so that every role agrees on them.

use crate::ids::{JobId, NodeId, UserUuid};

/// Direct exchange that routes jobs to node queues by node id.
pub const JOBS_EXCHANGE: &str = "tether.jobs";
/// Dead-letter exchange for rejected and expired jobs.
pub const DEAD_LETTER_EXCHANGE: &str = "tether.dlx";
/// The queue the dead-letter exchange feeds.
pub const DEAD_LETTER_QUEUE: &str = "tether.dead";

/// The queue a node consumes: `tether.node.{id}`.
pub fn node_queue(node: &NodeId) -> String {
    format!("tether.node.{node}")
}

/// Store key of a job record.
pub fn job_key(prefix: &str, id: &JobId) -> String {
    format!("{prefix}job:{id}")
}

/// Store key binding a session to its node.
pub fn session_key(prefix: &str, user: &UserUuid) -> String {
    format!("{prefix}session:{user}")
}
