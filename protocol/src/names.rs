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

/// Prefix of every store key and channel unless configured otherwise.
pub const DEFAULT_KEY_PREFIX: &str = "tether:";

/// Store key of a job's event log (a list; position + 1 = event index).
pub fn events_key(prefix: &str, id: &JobId) -> String {
    format!("{prefix}events:{id}")
}

/// Store key of a session's sequence counter.
pub fn seq_key(prefix: &str, user: &UserUuid) -> String {
    format!("{prefix}seq:{user}")
}

/// Store key of a node's last heartbeat; it expires when the node stops beating.
pub fn node_key(prefix: &str, node: &NodeId) -> String {
    format!("{prefix}node:{node}")
}

/// Store key of the set of node ids that have ever beaten (pruned as they expire).
pub fn nodes_key(prefix: &str) -> String {
    format!("{prefix}nodes")
}

/// Store key of the set of node ids marked draining (kept apart from heartbeats).
pub fn draining_key(prefix: &str) -> String {
    format!("{prefix}draining")
}

/// Pub/sub channel announcing "job {id} changed" (payload: the job id).
pub fn wake_channel(prefix: &str) -> String {
    format!("{prefix}wake")
}

/// Store key of the set of non-terminal job ids whose record names this node, so that a
/// dead node's jobs can be found and failed.
pub fn node_jobs_key(prefix: &str, node: &NodeId) -> String {
    format!("{prefix}node-jobs:{node}")
}

/// Store key of the set of sessions bound to this node (the reverse of [`session_key`]).
pub fn node_sessions_key(prefix: &str, node: &NodeId) -> String {
    format!("{prefix}node-sessions:{node}")
}

/// Store key marking a session whose sandbox was lost: the next job that runs in a fresh
/// sandbox for it reports `session_restarted`.
pub fn lost_key(prefix: &str, user: &UserUuid) -> String {
    format!("{prefix}lost:{user}")
}

/// Store key of the set of node ids that have beaten and not yet been swept after death.
pub fn watched_nodes_key(prefix: &str) -> String {
    format!("{prefix}watched-nodes")
}

/// Store key of the highest seq of a session whose publish attempt is over.
pub fn published_key(prefix: &str, user: &UserUuid) -> String {
    format!("{prefix}published:{user}")
}

/// Store key of a session's job index (a sorted set: score = seq, member = job id).
pub fn session_jobs_key(prefix: &str, user: &UserUuid) -> String {
    format!("{prefix}session_jobs:{user}")
}

/// Store key of an idempotency key (the client's key, already scoped and hashed).
pub fn idempotency_key(prefix: &str, key: &str) -> String {
    format!("{prefix}idem:{key}")
}

/// Store key of a job's webhook delivery.
pub fn delivery_key(prefix: &str, id: &JobId) -> String {
    format!("{prefix}delivery:{id}")
}

/// Store key prefix of delivery claim tokens (`{prefix}delivery_claim:{job id}`).
pub fn delivery_claim_prefix(prefix: &str) -> String {
    format!("{prefix}delivery_claim:")
}

/// Store key of the pending deliveries by due time (a sorted set: score = due ms).
pub fn deliveries_due_key(prefix: &str) -> String {
    format!("{prefix}deliveries_due")
}
