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

/// Node liveness and session placement, shared by every API replica.
#[async_trait]
pub trait SessionRegistry: Send + Sync + 'static {
    /// Record a heartbeat; the node is considered dead if none arrives within `ttl`.
    async fn heartbeat(&self, info: NodeInfo, ttl: Duration) -> Result<(), RegistryError>;

    /// Forget a node at once (clean shutdown).
    async fn deregister(&self, node: &NodeId) -> Result<(), RegistryError>;

    /// Nodes whose heartbeat has not expired.
    async fn live_nodes(&self) -> Result<Vec<NodeInfo>, RegistryError>;

    /// The node a session is bound to, if any.
    async fn session_node(&self, user: UserUuid) -> Result<Option<NodeId>, RegistryError>;

    /// Bind the session to `node` unless it is already bound; returns the binding that
    /// holds afterwards (atomic: two callers never see two different nodes).
    async fn bind_session(&self, user: UserUuid, node: &NodeId) -> Result<NodeId, RegistryError>;

    /// Remove the binding if it still points at `node`.
    async fn unbind_session(&self, user: UserUuid, node: &NodeId) -> Result<(), RegistryError>;

    /// Mark or unmark a node as draining.
    async fn set_draining(&self, node: &NodeId, draining: bool) -> Result<(), RegistryError>;
}
