//! Live nodes and the session → node table (ARCHITECTURE decision 1).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use tether_protocol::{NodeId, UserUuid};

/// Why the registry failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The backing store is unreachable; transient.
    #[error("node registry unavailable: {0}")]
    Unavailable(String),
}

/// What a node reports about itself with every heartbeat. Serialisable because the
/// Redis registry stores it as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: NodeId,
    /// Sandboxes this node may run at once.
    pub capacity: u32,
    /// Sessions currently bound to this node.
    pub sessions: u32,
    /// A draining node takes no new sessions.
    pub draining: bool,
    /// Free-form figures shown by the status endpoint (idle containers, busy, …).
    #[serde(default)]
    pub detail: Value,
}

impl NodeInfo {
    /// Slots left for new sessions.
    pub fn free(&self) -> u32 {
        self.capacity.saturating_sub(self.sessions)
    }
}

/// A node placement may choose for a new session, with its figures from `live_nodes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub node: NodeId,
    /// Sandboxes the node may run at once.
    pub capacity: u32,
    /// Sessions on the node as `live_nodes` counted them.
    pub sessions: u32,
}

/// Node liveness and session placement, shared by every API replica.
///
/// Besides the session → node table the registry keeps its reverse (the sessions of each
/// node, so that [`NodeInfo::sessions`] from `live_nodes` counts bindings made since the
/// node's last heartbeat), a "lost" mark per session whose sandbox died, and the set of
/// nodes that have beaten and not yet been forgotten, from which dead ones are found.
#[async_trait]
pub trait SessionRegistry: Send + Sync + 'static {
    /// Record a heartbeat; the node is considered dead if none arrives within `ttl`.
    async fn heartbeat(&self, info: NodeInfo, ttl: Duration) -> Result<(), RegistryError>;

    /// Forget a node at once (clean shutdown).
    async fn deregister(&self, node: &NodeId) -> Result<(), RegistryError>;

    /// Nodes whose heartbeat has not expired. `sessions` is the larger of what the node
    /// reported and the number of sessions bound to it now.
    async fn live_nodes(&self) -> Result<Vec<NodeInfo>, RegistryError>;

    /// The node a session is bound to, if any.
    async fn session_node(&self, user: UserUuid) -> Result<Option<NodeId>, RegistryError>;

    /// The node a session is bound to, if any, and whether that node is live (listed by
    /// [`SessionRegistry::live_nodes`]).
    async fn session_binding(
        &self,
        user: UserUuid,
    ) -> Result<Option<(NodeId, bool)>, RegistryError> {
        let Some(node) = self.session_node(user).await? else {
            return Ok(None);
        };
        let live = self.live_nodes().await?.iter().any(|n| n.id == node);
        Ok(Some((node, live)))
    }

    /// Bind the session to `node` unless it is already bound; returns the binding that
    /// holds afterwards (atomic: two callers never see two different nodes).
    async fn bind_session(&self, user: UserUuid, node: &NodeId) -> Result<NodeId, RegistryError>;

    /// Bind an unbound session to the candidate with the most free slots, atomically with
    /// every other placement: a candidate's load is the larger of its `sessions` and the
    /// sessions bound to it at this instant, so a burst of new sessions spreads instead
    /// of piling onto the node that looked emptiest when each of them looked. Ties go to
    /// the earlier candidate. Returns the binding that holds afterwards (an existing one
    /// wins), or `None` when the session is unbound and every candidate is full.
    async fn place_session(
        &self,
        user: UserUuid,
        candidates: &[Candidate],
    ) -> Result<Option<NodeId>, RegistryError>;

    /// Remove the binding if it still points at `node`.
    async fn unbind_session(&self, user: UserUuid, node: &NodeId) -> Result<(), RegistryError>;

    /// Mark or unmark a node as draining.
    async fn set_draining(&self, node: &NodeId, draining: bool) -> Result<(), RegistryError>;

    // --- Distributed mode: node loss ---

    /// Nodes that have beaten at least once and whose heartbeat has since expired (or
    /// that deregistered), until [`SessionRegistry::forget_node`] drops them.
    async fn expired_nodes(&self) -> Result<Vec<NodeId>, RegistryError>;

    /// Stop watching a dead node. Does nothing, and returns `false`, if the node is live
    /// again (or was not watched).
    async fn forget_node(&self, node: &NodeId) -> Result<bool, RegistryError>;

    /// Atomically unbind every session bound to `node` and mark each one lost. Returns
    /// the sessions it unbound (empty when called again: idempotent).
    async fn lose_sessions_of(&self, node: &NodeId) -> Result<Vec<UserUuid>, RegistryError>;

    /// Atomically unbind the session if it is bound to `node` and then mark it lost.
    /// Returns whether it was bound there (nothing changes otherwise).
    async fn lose_session(&self, user: UserUuid, node: &NodeId) -> Result<bool, RegistryError>;

    /// Consume the session's lost mark: `true` exactly once after it was marked.
    async fn take_session_lost(&self, user: UserUuid) -> Result<bool, RegistryError>;
}
