//! The unversioned endpoints and their older contract, kept for the seed's first clients
//! (its `test.html` among them): `user_uuid` travels in the JSON body; code that raised
//! or timed out is a 400 whose `detail` starts "Python Execution Error: " or "Code
//! execution timed out"; release answers 200 with a sentence; status names idle workers
//! `idle_workers_in_pool`. Unknown body fields are ignored, as the seed did.

use crate::error::{ApiError, Contract};
use crate::extract::{JsonBody, parse_user_uuid};
use crate::job_input::execute_job;
use crate::routes::release::release_session;
use crate::routes::status::pool_status;
use crate::state::AppState;
use crate::sync_call::submit_and_wait;
use crate::verdict::execution_of;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use tether_protocol::{ErrorCode, ExecutionResult, JobId};

#[derive(Debug, Deserialize)]
pub struct LegacyExecuteRequest {
    pub user_uuid: String,
    pub code: String,
}

/// The seed worker's body: an image *or* text, never both; plus Tether's rich fields.
#[derive(Debug, Serialize)]
pub struct LegacyExecuteResponse {
    pub result_text: Option<String>,
    pub result_base64: Option<String>,
    pub job_id: JobId,
    pub seq: u64,
    #[serde(flatten)]
    pub execution: ExecutionResult,
}

pub async fn execute(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<LegacyExecuteRequest>,
) -> Result<Json<LegacyExecuteResponse>, ApiError> {
    run(&state, request)
        .await
        .map(Json)
        .map_err(|e| e.in_contract(Contract::Legacy))
}

async fn run(
    state: &AppState,
    request: LegacyExecuteRequest,
) -> Result<LegacyExecuteResponse, ApiError> {
    let user = parse_user_uuid(&request.user_uuid)?;
    let kind = execute_job(request.code, None, state.config())?;
    let execution = execution_of(submit_and_wait(state, user, kind).await?)?;
    if let Some(e) = execution.raised() {
        let detail = format!("Python Execution Error: {}: {}", e.ename, e.evalue);
        return Err(
            ApiError::new(ErrorCode::ExecutionError, detail).with_execution(Some(execution.result))
        );
    }
    let png = execution.result.last_png().map(str::to_owned);
    Ok(LegacyExecuteResponse {
        result_text: png.is_none().then(|| execution.result.text()),
        result_base64: png,
        job_id: execution.job_id,
        seq: execution.seq,
        execution: execution.result,
    })
}

#[derive(Debug, Deserialize)]
pub struct LegacyReleaseRequest {
    pub user_uuid: String,
}

#[derive(Debug, Serialize)]
pub struct LegacyReleaseResponse {
    pub status: &'static str,
    pub detail: String,
}

pub async fn release(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<LegacyReleaseRequest>,
) -> Result<Json<LegacyReleaseResponse>, ApiError> {
    let user = parse_user_uuid(&request.user_uuid)?;
    release_session(&state, user)
        .await
        .map_err(|e| e.in_contract(Contract::Legacy))?;
    Ok(Json(LegacyReleaseResponse {
        status: "ok",
        detail: format!("Worker for user {} has been released.", request.user_uuid),
    }))
}

/// The seed's `/status` body.
#[derive(Debug, Serialize)]
pub struct LegacyStatus {
    pub total_workers: u64,
    pub busy_workers: u64,
    pub idle_workers_in_pool: u64,
    pub is_initializing: bool,
}

pub async fn status(State(state): State<AppState>) -> Result<Json<LegacyStatus>, ApiError> {
    let pool = pool_status(&state)
        .await
        .map_err(|e| e.in_contract(Contract::Legacy))?;
    Ok(Json(LegacyStatus {
        total_workers: pool.total_workers,
        busy_workers: pool.busy_workers,
        idle_workers_in_pool: pool.idle_workers,
        is_initializing: pool.is_initializing,
    }))
}
