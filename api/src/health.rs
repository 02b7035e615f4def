//! Probes for orchestrators, without authentication: `/healthz` says the process serves
//! HTTP; `/readyz` says a live worker node reports its pool ready.

use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use tether_dispatcher::NodeReport;
use tether_protocol::ErrorCode;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let nodes = state.registry().live_nodes().await?;
    let ready = nodes.iter().filter(|n| NodeReport::from(*n).ready).count();
    if ready == 0 {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "Worker pool is initializing. Please try again shortly.",
        )
        .with_message(format!("{} live node(s), none ready", nodes.len())));
    }
    Ok(Json(json!({ "status": "ready", "ready_nodes": ready })))
}
