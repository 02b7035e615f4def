//! [`RedisRegistry`]: node liveness and session bindings in Redis (ARCHITECTURE decision 1).
//!
//! | key | holds |
//! |---|---|
//! | `{prefix}node:{id}` | the node's last [`NodeInfo`] as JSON, expiring after the heartbeat TTL |
//! | `{prefix}nodes` | a set of node ids that have beaten; expired ones are pruned on listing |
//! | `{prefix}draining` | a set of draining node ids, apart so that a heartbeat never clears it |
//! | `{prefix}session:{user}` | the node the session is bound to (no TTL) |

use super::RedisPool;
use super::pool::{Failure, decode};
use super::scripts::{BIND_SESSION, LIVE_NODES, UNBIND_SESSION};
use crate::registry::{NodeInfo, RegistryError, SessionRegistry};
use async_trait::async_trait;
use deadpool_redis::redis;
use std::time::Duration;
use tether_protocol::{NodeId, UserUuid, names};

/// The session registry shared by every API replica and node, kept in Redis. Like the
/// store, every call is bounded and fails fast with `Unavailable` while Redis is down.
#[derive(Debug, Clone)]
pub struct RedisRegistry {
    pool: RedisPool,
}

impl RedisRegistry {
    /// A registry on `pool` (which a [`RedisStore`](super::RedisStore) may share).
    pub fn new(pool: RedisPool) -> Self {
        Self { pool }
    }

    fn node_id(value: String) -> Result<NodeId, Failure> {
        NodeId::try_from(value).map_err(|e| Failure::Corrupt(format!("session binding: {e}")))
    }
}

#[async_trait]
impl SessionRegistry for RedisRegistry {
    async fn heartbeat(&self, info: NodeInfo, ttl: Duration) -> Result<(), RegistryError> {
        let prefix = self.pool.prefix();
        let json = serde_json::to_string(&info).expect("NodeInfo always encodes as JSON");
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.pool.conn().await?;
        let mut beat = redis::pipe();
        beat.atomic()
            .cmd("SET")
            .arg(names::node_key(prefix, &info.id))
            .arg(&json)
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .cmd("SADD")
            .arg(names::nodes_key(prefix))
            .arg(info.id.as_str())
            .ignore();
        Ok(self.pool.bounded(beat.query_async(&mut conn)).await?)
    }

    async fn deregister(&self, node: &NodeId) -> Result<(), RegistryError> {
        let prefix = self.pool.prefix();
        let mut conn = self.pool.conn().await?;
        let mut forget = redis::pipe();
        forget
            .atomic()
            .cmd("DEL")
            .arg(names::node_key(prefix, node))
            .ignore()
            .cmd("SREM")
            .arg(names::nodes_key(prefix))
            .arg(node.as_str())
            .ignore();
        Ok(self.pool.bounded(forget.query_async(&mut conn)).await?)
    }

    async fn live_nodes(&self) -> Result<Vec<NodeInfo>, RegistryError> {
        let prefix = self.pool.prefix();
        let mut conn = self.pool.conn().await?;
        let mut invocation = LIVE_NODES.key(names::nodes_key(prefix));
        invocation
            .key(names::draining_key(prefix))
            .arg(node_key_prefix(prefix));
        let live: Vec<(String, bool)> = self
            .pool
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        let mut nodes = Vec::with_capacity(live.len());
        for (json, draining) in live {
            let mut info: NodeInfo = decode("node heartbeat", &json)?;
            info.draining |= draining;
            nodes.push(info);
        }
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }

    async fn session_node(&self, user: UserUuid) -> Result<Option<NodeId>, RegistryError> {
        let mut conn = self.pool.conn().await?;
        let mut get = redis::cmd("GET");
        get.arg(names::session_key(self.pool.prefix(), &user));
        match self.pool.bounded(get.query_async(&mut conn)).await? {
            Some(node) => Ok(Some(Self::node_id(node)?)),
            None => Ok(None),
        }
    }

    async fn bind_session(&self, user: UserUuid, node: &NodeId) -> Result<NodeId, RegistryError> {
        let mut conn = self.pool.conn().await?;
        let mut invocation = BIND_SESSION.key(names::session_key(self.pool.prefix(), &user));
        invocation.arg(node.as_str());
        let bound: String = self
            .pool
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        Ok(Self::node_id(bound)?)
    }

    async fn unbind_session(&self, user: UserUuid, node: &NodeId) -> Result<(), RegistryError> {
        let mut conn = self.pool.conn().await?;
        let mut invocation = UNBIND_SESSION.key(names::session_key(self.pool.prefix(), &user));
        invocation.arg(node.as_str());
        let _deleted: i64 = self
            .pool
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        Ok(())
    }

    async fn set_draining(&self, node: &NodeId, draining: bool) -> Result<(), RegistryError> {
        let mut conn = self.pool.conn().await?;
        let command = if draining { "SADD" } else { "SREM" };
        let mut mark = redis::cmd(command);
        mark.arg(names::draining_key(self.pool.prefix()))
            .arg(node.as_str());
        self.pool
            .bounded(mark.query_async::<i64>(&mut conn))
            .await?;
        Ok(())
    }
}

/// `{prefix}node:` — what [`names::node_key`] puts before the node id.
fn node_key_prefix(prefix: &str) -> String {
    format!("{prefix}node:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_key_prefix_matches_the_key_name() {
        let node = NodeId::try_from("n-1").expect("valid");
        assert_eq!(
            format!("{}{node}", node_key_prefix("p:")),
            names::node_key("p:", &node)
        );
    }
}
