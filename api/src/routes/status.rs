//! `GET /api/v1/status`: the seed's `{"total_workers", "busy_workers", "is_initializing"}`
//! summed over live nodes, plus idle workers, sessions, capacity and per-node figures.

use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use tether_dispatcher::NodeReport;

/// Pool figures across every live node.
#[derive(Debug, Serialize)]
pub struct PoolStatus {
    pub total_workers: u64,
    pub busy_workers: u64,
    /// True until some live node reports its pool ready.
    pub is_initializing: bool,
    pub idle_workers: u64,
    pub sessions: u64,
    /// Sandboxes the live nodes may run at once.
    pub capacity: u64,
    pub nodes: Vec<NodeReport>,
}

impl PoolStatus {
    /// Sum the reports of the live nodes.
    pub fn of(nodes: Vec<NodeReport>) -> Self {
        Self {
            total_workers: nodes.iter().map(|n| n.total_workers).sum(),
            busy_workers: nodes.iter().map(|n| n.busy_workers).sum(),
            is_initializing: !nodes.iter().any(|n| n.ready),
            idle_workers: nodes.iter().map(|n| n.idle_workers).sum(),
            sessions: nodes.iter().map(|n| n.sessions).sum(),
            capacity: nodes.iter().map(|n| u64::from(n.capacity)).sum(),
            nodes,
        }
    }
}

/// The current figures, from the registry's live nodes.
pub async fn pool_status(state: &AppState) -> Result<PoolStatus, ApiError> {
    let nodes = state.registry().live_nodes().await?;
    Ok(PoolStatus::of(nodes.iter().map(NodeReport::from).collect()))
}

pub async fn status(State(state): State<AppState>) -> Result<Json<PoolStatus>, ApiError> {
    pool_status(&state).await.map(Json)
}
