//! [`RedisRegistry`]: node liveness and session bindings in Redis (ARCHITECTURE decision 1).
//!
//! | key | holds |
//! |---|---|
//! | `{prefix}node:{id}` | the node's last [`NodeInfo`] as JSON, expiring after the heartbeat TTL |
//! | `{prefix}nodes` | a set of node ids that have beaten; expired ones are pruned on listing |
//! | `{prefix}draining` | a set of draining node ids, apart so that a heartbeat never clears it |
//! | `{prefix}session:{user}` | the node the session is bound to (no TTL) |
//! | `{prefix}node-sessions:{id}` | the sessions bound to the node (the reverse of the above) |
//! | `{prefix}lost:{user}` | present while a session's loss is unreported (TTL = record TTL) |
//! | `{prefix}watched-nodes` | node ids that have beaten and were not forgotten after death |

use super::RedisPool;
use super::pool::{Failure, decode};
use super::scripts::{
    BIND_SESSION, EXPIRED_NODES, FORGET_NODE, LIVE_NODES, LOSE_SESSION, LOSE_SESSIONS_OF,
    PLACE_SESSION, SESSION_BINDING, UNBIND_SESSION,
};
use crate::registry::{Candidate, NodeInfo, RegistryError, SessionRegistry};
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

    fn user(value: &str) -> Result<UserUuid, Failure> {
        UserUuid::try_from(value).map_err(|e| Failure::Corrupt(format!("node session set: {e}")))
    }

    /// How long a lost mark waits for the session's next job.
    fn lost_ttl_ms(&self) -> u64 {
        u64::try_from(self.pool.config.record_ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
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
            .ignore()
            .cmd("SADD")
            .arg(names::watched_nodes_key(prefix))
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
            .arg(node_key_prefix(prefix))
            .arg(node_sessions_prefix(prefix));
        let live: Vec<(String, bool, u32)> = self
            .pool
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        let mut nodes = Vec::with_capacity(live.len());
        for (json, draining, bound) in live {
            let mut info: NodeInfo = decode("node heartbeat", &json)?;
            info.draining |= draining;
            info.sessions = info.sessions.max(bound);
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

    async fn session_binding(
        &self,
        user: UserUuid,
    ) -> Result<Option<(NodeId, bool)>, RegistryError> {
        let prefix = self.pool.prefix();
        let mut conn = self.pool.conn().await?;
        let mut invocation = SESSION_BINDING.key(names::session_key(prefix, &user));
        invocation.arg(node_key_prefix(prefix));
        let binding: Option<(String, bool)> = self
            .pool
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        match binding {
            Some((node, live)) => Ok(Some((Self::node_id(node)?, live))),
            None => Ok(None),
        }
    }

    async fn bind_session(&self, user: UserUuid, node: &NodeId) -> Result<NodeId, RegistryError> {
        let prefix = self.pool.prefix();
        let mut conn = self.pool.conn().await?;
        let mut invocation = BIND_SESSION.key(names::session_key(prefix, &user));
        invocation
            .key(names::node_sessions_key(prefix, node))
            .arg(node.as_str())
            .arg(user.to_string());
        let bound: String = self
            .pool
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        Ok(Self::node_id(bound)?)
    }

    async fn place_session(
        &self,
        user: UserUuid,
        candidates: &[Candidate],
    ) -> Result<Option<NodeId>, RegistryError> {
        let prefix = self.pool.prefix();
        let mut conn = self.pool.conn().await?;
        let mut invocation = PLACE_SESSION.key(names::session_key(prefix, &user));
        invocation
            .arg(user.to_string())
            .arg(node_sessions_prefix(prefix));
        for c in candidates {
            invocation
                .arg(c.node.as_str())
                .arg(c.capacity)
                .arg(c.sessions);
        }
        let placed: Option<String> = self
            .pool
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        Ok(placed.map(Self::node_id).transpose()?)
    }

    async fn unbind_session(&self, user: UserUuid, node: &NodeId) -> Result<(), RegistryError> {
        let prefix = self.pool.prefix();
        let mut conn = self.pool.conn().await?;
        let mut invocation = UNBIND_SESSION.key(names::session_key(prefix, &user));
        invocation
            .key(names::node_sessions_key(prefix, node))
            .arg(node.as_str())
            .arg(user.to_string());
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

    async fn expired_nodes(&self) -> Result<Vec<NodeId>, RegistryError> {
        let prefix = self.pool.prefix();
        let mut conn = self.pool.conn().await?;
        let mut invocation = EXPIRED_NODES.key(names::watched_nodes_key(prefix));
        invocation.arg(node_key_prefix(prefix));
        let dead: Vec<String> = self
            .pool
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        let mut dead = dead
            .into_iter()
            .map(Self::node_id)
            .collect::<Result<Vec<_>, _>>()?;
        dead.sort();
        Ok(dead)
    }

    async fn forget_node(&self, node: &NodeId) -> Result<bool, RegistryError> {
        let prefix = self.pool.prefix();
        let mut conn = self.pool.conn().await?;
        let mut invocation = FORGET_NODE.key(names::watched_nodes_key(prefix));
        invocation
            .key(names::node_key(prefix, node))
            .arg(node.as_str());
        let forgotten: i64 = self
            .pool
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        Ok(forgotten == 1)
    }

    async fn lose_sessions_of(&self, node: &NodeId) -> Result<Vec<UserUuid>, RegistryError> {
        let prefix = self.pool.prefix();
        let mut conn = self.pool.conn().await?;
        let mut invocation = LOSE_SESSIONS_OF.key(names::node_sessions_key(prefix, node));
        invocation
            .arg(node.as_str())
            .arg(session_key_prefix(prefix))
            .arg(lost_key_prefix(prefix))
            .arg(self.lost_ttl_ms());
        let lost: Vec<String> = self
            .pool
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        Ok(lost
            .iter()
            .map(|u| Self::user(u))
            .collect::<Result<Vec<_>, _>>()?)
    }

    async fn lose_session(&self, user: UserUuid, node: &NodeId) -> Result<bool, RegistryError> {
        let prefix = self.pool.prefix();
        let mut conn = self.pool.conn().await?;
        let mut invocation = LOSE_SESSION.key(names::session_key(prefix, &user));
        invocation
            .key(names::node_sessions_key(prefix, node))
            .key(names::lost_key(prefix, &user))
            .arg(node.as_str())
            .arg(user.to_string())
            .arg(self.lost_ttl_ms());
        let lost: i64 = self
            .pool
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        Ok(lost == 1)
    }

    async fn take_session_lost(&self, user: UserUuid) -> Result<bool, RegistryError> {
        let mut conn = self.pool.conn().await?;
        let mut del = redis::cmd("DEL");
        del.arg(names::lost_key(self.pool.prefix(), &user));
        let deleted: i64 = self.pool.bounded(del.query_async(&mut conn)).await?;
        Ok(deleted == 1)
    }
}

/// `{prefix}node:` — what [`names::node_key`] puts before the node id.
fn node_key_prefix(prefix: &str) -> String {
    format!("{prefix}node:")
}

/// `{prefix}node-sessions:` — what [`names::node_sessions_key`] puts before the node id.
fn node_sessions_prefix(prefix: &str) -> String {
    format!("{prefix}node-sessions:")
}

/// `{prefix}session:` — what [`names::session_key`] puts before the user.
fn session_key_prefix(prefix: &str) -> String {
    format!("{prefix}session:")
}

/// `{prefix}lost:` — what [`names::lost_key`] puts before the user.
fn lost_key_prefix(prefix: &str) -> String {
    format!("{prefix}lost:")
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
        assert_eq!(
            format!("{}{node}", node_sessions_prefix("p:")),
            names::node_sessions_key("p:", &node)
        );
        let user = UserUuid::random();
        assert_eq!(
            format!("{}{user}", session_key_prefix("p:")),
            names::session_key("p:", &user)
        );
        assert_eq!(
            format!("{}{user}", lost_key_prefix("p:")),
            names::lost_key("p:", &user)
        );
    }
}
