//! Noticing dead nodes (issue 4, "node failure").
//!
//! A node heartbeats every `ttl / 4`; its heartbeat expires `ttl` after the last one. The
//! watch lists, every `sweep_every`, the nodes whose heartbeat has expired and declares
//! each one lost: its sessions are unbound and marked lost (the next job of such a
//! session starts in a fresh sandbox elsewhere and reports `session_restarted: true`),
//! and every job still queued for it or running on it ends `session_lost`.
//!
//! **Bound.** A node killed at `t` beat last at or before `t`, so its heartbeat is gone by
//! `t + ttl`; the next sweep (at most `sweep_every` later) fails its jobs. Each job of a
//! dead node therefore reaches `session_lost` within `ttl + sweep_every` plus the sweep's
//! own Redis round trips (milliseconds per job). With the defaults (10 s, 1 s) that is
//! 11 s; the tests run with 3 s + 1 s.
//!
//! **Concurrency.** Any number of processes may run the watch at once (every `tether api`
//! does, and `tether dispatcher`): losing a node's sessions is one atomic registry step
//! that a second caller finds already done, and status transitions only move forward,
//! so a job is failed, and its status event appended, exactly once.
//!
//! **False alarms.** Right after the store was unreachable every heartbeat may have
//! lapsed at once while the nodes are fine; the watch declares nobody dead until it has
//! reached the store continuously for one `ttl`, time enough for live nodes to beat again.
//!
//! A dead node stays watched (and is swept again every round, catching a job that was
//! routed to it in the instant it died) until it has been dead for `forget_after`; then
//! the registry forgets it and its queue is deleted (its remaining messages are jobs that
//! already ended `session_lost`).

use crate::Dispatcher;
use crate::error::DispatchError;
use std::collections::HashMap;
use std::time::Duration;
use tether_protocol::{JobError, JobStatus, NodeId, UnixMillis};
use tether_transport::{RecordUpdate, UpdateOutcome};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How the watch runs.
#[derive(Debug, Clone)]
pub struct NodeWatchConfig {
    /// How often expired nodes are looked for.
    pub sweep_every: Duration,
    /// The nodes' heartbeat TTL: after a store outage, the watch waits this long before
    /// declaring anyone dead.
    pub heartbeat_ttl: Duration,
    /// How long a dead node stays watched before it is forgotten and its queue deleted.
    pub forget_after: Duration,
}

impl NodeWatchConfig {
    /// Sweep every second; forget a dead node after ten TTLs (at least a minute).
    pub fn new(heartbeat_ttl: Duration) -> Self {
        Self {
            sweep_every: Duration::from_secs(1),
            heartbeat_ttl,
            forget_after: (heartbeat_ttl * 10).max(Duration::from_secs(60)),
        }
    }

    /// The longest a job of a node killed now can stay non-terminal, Redis time aside.
    pub fn bound(&self) -> Duration {
        self.heartbeat_ttl + self.sweep_every
    }
}

/// What declaring one node lost did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NodeLoss {
    /// Sessions unbound and marked lost.
    pub sessions: usize,
    /// Jobs moved to `session_lost` by this call.
    pub jobs: usize,
}

impl Dispatcher {
    /// Run the dead-node watch until `shutdown`. Errors (the store is down) are logged
    /// and the watch carries on.
    pub async fn watch_nodes(self, config: NodeWatchConfig, shutdown: CancellationToken) {
        tracing::info!(
            sweep_every = ?config.sweep_every,
            bound = ?config.bound(),
            "watching for dead worker nodes"
        );
        // When this process last started reaching the store without errors.
        let mut reachable_since: Option<Instant> = None;
        // When this process first saw each dead node.
        let mut dead_since: HashMap<NodeId, Instant> = HashMap::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(config.sweep_every) => {}
            }
            let dead = match self.registry.expired_nodes().await {
                Ok(dead) => dead,
                Err(e) => {
                    tracing::warn!(error = %e, "node watch cannot reach the registry");
                    reachable_since = None;
                    continue;
                }
            };
            let now = Instant::now();
            if now.duration_since(*reachable_since.get_or_insert(now)) < config.heartbeat_ttl {
                continue;
            }
            dead_since.retain(|node, _| dead.contains(node));
            for node in dead {
                let first_seen = *dead_since.entry(node.clone()).or_insert(now);
                match self.declare_node_lost(&node).await {
                    Ok(loss) if loss == NodeLoss::default() => {
                        if now.duration_since(first_seen) >= config.forget_after {
                            self.forget(&node).await;
                            dead_since.remove(&node);
                        }
                    }
                    Ok(loss) => tracing::warn!(
                        node_id = %node,
                        sessions = loss.sessions,
                        jobs = loss.jobs,
                        "node is gone: its sessions are lost and its jobs ended session_lost"
                    ),
                    Err(e) => {
                        tracing::warn!(node_id = %node, error = %e, "could not sweep a dead node");
                        reachable_since = None;
                        break;
                    }
                }
            }
        }
    }

    /// Declare `node` lost: unbind its sessions and mark them lost, then end every job
    /// still queued for it or running on it with `session_lost`. Idempotent.
    pub async fn declare_node_lost(&self, node: &NodeId) -> Result<NodeLoss, DispatchError> {
        let sessions = self.registry.lose_sessions_of(node).await?;
        let mut loss = NodeLoss {
            sessions: sessions.len(),
            jobs: 0,
        };
        for id in self.store.active_jobs_on(node).await? {
            let update = RecordUpdate::Finished {
                status: JobStatus::SessionLost,
                result: None,
                error: Some(JobError::session_lost(node)),
                at: UnixMillis::now(),
            };
            if let UpdateOutcome::Applied(_) = self.store.update(id, update).await? {
                loss.jobs += 1;
            }
        }
        Ok(loss)
    }

    /// Stop watching a node that has been dead long enough, and delete its queue.
    async fn forget(&self, node: &NodeId) {
        match self.registry.forget_node(node).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(node_id = %node, error = %e, "could not forget a dead node");
                return;
            }
        }
        match self.bus.delete_queue(node).await {
            Ok(()) => tracing::info!(node_id = %node, "forgot a dead node and deleted its queue"),
            Err(e) => {
                tracing::warn!(node_id = %node, error = %e, "could not delete a dead node's queue")
            }
        }
    }
}
