//! `POST /api/v1/nodes/{id}/drain` and `POST /api/v1/nodes/{id}/undrain`: an operator
//! takes a worker node out of placement (its sessions stay and keep running; no new
//! session lands on it) or puts it back. `GET /api/v1/status` shows each node's `draining`.
//!
//! Draining names a live node (404 otherwise, so a typo is not silently accepted);
//! undraining works for any node id, so a mark left on a node that died can be cleared.

use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use tether_protocol::NodeId;

/// What the node's draining mark is now.
#[derive(Debug, Serialize)]
pub struct DrainState {
    pub node_id: NodeId,
    pub draining: bool,
    /// Whether the node is heartbeating right now.
    pub live: bool,
}

pub async fn drain(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DrainState>, ApiError> {
    set(&state, &id, true).await.map(Json)
}

pub async fn undrain(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DrainState>, ApiError> {
    set(&state, &id, false).await.map(Json)
}

async fn set(state: &AppState, id: &str, draining: bool) -> Result<DrainState, ApiError> {
    let node = NodeId::try_from(id).map_err(|e| ApiError::invalid_field("id", e.to_string()))?;
    let registry = state.registry();
    let live = registry.live_nodes().await?.iter().any(|n| n.id == node);
    if draining && !live {
        return Err(ApiError::not_found(format!(
            "No live worker node is called {node}."
        )));
    }
    registry.set_draining(&node, draining).await?;
    tracing::info!(node_id = %node, draining, "node draining mark changed");
    Ok(DrainState {
        node_id: node,
        draining,
        live,
    })
}
