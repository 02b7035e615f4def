//! The seed's file endpoints, each a file job on the session's job path (so it runs in
//! order with the session's executions, on the node that holds its disk):
//!
//! - `POST /api/v1/files?user_uuid=U` `{"files": [{"download_url", "path", "name"}]}` →
//!   201 `{"success": true, "results": [{"full_path", "size"}]}`;
//! - `POST /api/v1/files/export?user_uuid=U` `{"files": [{"path", "name", "upload_url",
//!   "method"?, "fields"?}]}` → 200 `{"success": true, "results": [{"path", "name", "size"}]}`;
//! - `DELETE /api/v1/files?user_uuid=U` `{"files": [{"path", "name"}]}` → 204.
//!
//! Malformed entries are 422 naming the entry (`files[3].path`); a missing file to export
//! 404; a source over the size limit 413; an internal URL 422 (`egress_denied`); a link,
//! FIFO or hard-linked file 422 (`unsafe_path`); a failing remote 502.

use crate::error::ApiError;
use crate::extract::{JsonBody, SessionParam};
use crate::state::AppState;
use crate::sync_call::submit_and_wait;
use crate::verdict::files_of;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tether_protocol::files::{DeleteItem, ExportItem, FilesRequestError, ImportItem};
use tether_protocol::{DeleteSpec, ExportSpec, ImportSpec, JobKind, JobResult};

/// `{"files": [...]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesBody<T> {
    pub files: Vec<T>,
}

/// `{"success": true, "results": [...]}`.
#[derive(Debug, Serialize)]
pub struct FilesResponse {
    pub success: bool,
    pub results: serde_json::Value,
}

fn invalid(e: FilesRequestError) -> ApiError {
    let field = match e.index {
        Some(i) => format!("files[{i}].{}", e.field),
        None => e.field.to_owned(),
    };
    ApiError::invalid_field(field, e.reason)
}

async fn run(
    state: &AppState,
    user: tether_protocol::UserUuid,
    kind: JobKind,
) -> Result<FilesResponse, ApiError> {
    let record = submit_and_wait(state, user, kind).await?;
    let results = match files_of(record)? {
        JobResult::FilesImport { results } => serde_json::to_value(results),
        JobResult::FilesExport { results } => serde_json::to_value(results),
        JobResult::FilesDelete { results } => serde_json::to_value(results),
        JobResult::Execute(_) | JobResult::Release { .. } => {
            return Err(ApiError::internal(
                "a file job ended with another job's result",
            ));
        }
    }
    .map_err(ApiError::internal)?;
    Ok(FilesResponse {
        success: true,
        results,
    })
}

pub async fn import(
    State(state): State<AppState>,
    SessionParam(user): SessionParam,
    JsonBody(body): JsonBody<FilesBody<ImportItem>>,
) -> Result<(StatusCode, Json<FilesResponse>), ApiError> {
    let spec = ImportSpec::try_from(body.files).map_err(invalid)?;
    let response = run(&state, user, JobKind::FilesImport(spec)).await?;
    Ok((StatusCode::CREATED, Json(response)))
}

pub async fn export(
    State(state): State<AppState>,
    SessionParam(user): SessionParam,
    JsonBody(body): JsonBody<FilesBody<ExportItem>>,
) -> Result<Json<FilesResponse>, ApiError> {
    let spec = ExportSpec::try_from(body.files).map_err(invalid)?;
    Ok(Json(run(&state, user, JobKind::FilesExport(spec)).await?))
}

pub async fn delete(
    State(state): State<AppState>,
    SessionParam(user): SessionParam,
    JsonBody(body): JsonBody<FilesBody<DeleteItem>>,
) -> Result<StatusCode, ApiError> {
    let spec = DeleteSpec::try_from(body.files).map_err(invalid)?;
    run(&state, user, JobKind::FilesDelete(spec)).await?;
    Ok(StatusCode::NO_CONTENT)
}
