//! Node liveness and session bindings in process memory.

use crate::registry::{Candidate, NodeInfo, RegistryError, SessionRegistry};
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tether_protocol::{NodeId, UserUuid};

/// A registry for one process (embedded mode and tests).
#[derive(Debug, Clone, Default)]
pub struct MemoryRegistry {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    nodes: HashMap<NodeId, (NodeInfo, Instant)>,
    sessions: HashMap<UserUuid, NodeId>,
    draining: HashMap<NodeId, bool>,
    /// Sessions whose sandbox was lost and not yet reported.
    lost: HashSet<UserUuid>,
    /// Nodes that have beaten and not been forgotten.
    watched: HashSet<NodeId>,
}

impl State {
    fn is_live(&self, node: &NodeId) -> bool {
        self.nodes
            .get(node)
            .is_some_and(|(_, expires)| *expires > Instant::now())
    }

    fn bound_to(&self, node: &NodeId) -> u32 {
        let n = self.sessions.values().filter(|n| *n == node).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

impl MemoryRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl SessionRegistry for MemoryRegistry {
    async fn heartbeat(&self, mut info: NodeInfo, ttl: Duration) -> Result<(), RegistryError> {
        let mut state = self.state();
        if let Some(draining) = state.draining.get(&info.id) {
            info.draining |= *draining;
        }
        let id = info.id.clone();
        state.watched.insert(id.clone());
        state.nodes.insert(id, (info, Instant::now() + ttl));
        Ok(())
    }

    async fn deregister(&self, node: &NodeId) -> Result<(), RegistryError> {
        self.state().nodes.remove(node);
        Ok(())
    }

    async fn live_nodes(&self) -> Result<Vec<NodeInfo>, RegistryError> {
        let now = Instant::now();
        let state = self.state();
        let mut nodes: Vec<NodeInfo> = state
            .nodes
            .values()
            .filter(|(_, expires)| *expires > now)
            .map(|(info, _)| {
                let mut info = info.clone();
                info.draining |= state.draining.get(&info.id).copied().unwrap_or(false);
                info.sessions = info.sessions.max(state.bound_to(&info.id));
                info
            })
            .collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }

    async fn session_node(&self, user: UserUuid) -> Result<Option<NodeId>, RegistryError> {
        Ok(self.state().sessions.get(&user).cloned())
    }

    async fn bind_session(&self, user: UserUuid, node: &NodeId) -> Result<NodeId, RegistryError> {
        Ok(self
            .state()
            .sessions
            .entry(user)
            .or_insert_with(|| node.clone())
            .clone())
    }

    async fn place_session(
        &self,
        user: UserUuid,
        candidates: &[Candidate],
    ) -> Result<Option<NodeId>, RegistryError> {
        let mut state = self.state();
        if let Some(node) = state.sessions.get(&user) {
            return Ok(Some(node.clone()));
        }
        let mut best: Option<(&Candidate, u32)> = None;
        for c in candidates {
            let free = c
                .capacity
                .saturating_sub(c.sessions.max(state.bound_to(&c.node)));
            if free > 0 && best.is_none_or(|(_, most)| free > most) {
                best = Some((c, free));
            }
        }
        let Some((chosen, _)) = best else {
            return Ok(None);
        };
        state.sessions.insert(user, chosen.node.clone());
        Ok(Some(chosen.node.clone()))
    }

    async fn unbind_session(&self, user: UserUuid, node: &NodeId) -> Result<(), RegistryError> {
        let mut state = self.state();
        if state.sessions.get(&user) == Some(node) {
            state.sessions.remove(&user);
        }
        Ok(())
    }

    async fn set_draining(&self, node: &NodeId, draining: bool) -> Result<(), RegistryError> {
        self.state().draining.insert(node.clone(), draining);
        Ok(())
    }

    async fn expired_nodes(&self) -> Result<Vec<NodeId>, RegistryError> {
        let state = self.state();
        let mut dead: Vec<NodeId> = state
            .watched
            .iter()
            .filter(|n| !state.is_live(n))
            .cloned()
            .collect();
        dead.sort();
        Ok(dead)
    }

    async fn forget_node(&self, node: &NodeId) -> Result<bool, RegistryError> {
        let mut state = self.state();
        Ok(!state.is_live(node) && state.watched.remove(node))
    }

    async fn lose_sessions_of(&self, node: &NodeId) -> Result<Vec<UserUuid>, RegistryError> {
        let mut state = self.state();
        let lost: Vec<UserUuid> = state
            .sessions
            .iter()
            .filter(|(_, n)| *n == node)
            .map(|(u, _)| *u)
            .collect();
        for user in &lost {
            state.sessions.remove(user);
            state.lost.insert(*user);
        }
        Ok(lost)
    }

    async fn lose_session(&self, user: UserUuid, node: &NodeId) -> Result<bool, RegistryError> {
        let mut state = self.state();
        if state.sessions.get(&user) != Some(node) {
            return Ok(false);
        }
        state.sessions.remove(&user);
        state.lost.insert(user);
        Ok(true)
    }

    async fn take_session_lost(&self, user: UserUuid) -> Result<bool, RegistryError> {
        Ok(self.state().lost.remove(&user))
    }
}
