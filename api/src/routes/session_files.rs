//! Direct transfer of single files, streamed to and from the node that holds the session
//! (never through the job bus), in order with the session's jobs:
//!
//! - `PUT /api/v1/sessions/{user_uuid}/files/sandbox/…` (raw body; `Content-Length`
//!   optional) → 201 `{"full_path", "size"}`;
//! - `GET /api/v1/sessions/{user_uuid}/files/sandbox/…` → the bytes, with `Content-Length`
//!   and a `Content-Type` guessed from the extension;
//! - `GET /api/v1/sessions/{user_uuid}/files?path=/sandbox/dir` → `{"path", "entries":
//!   [{"name", "path", "kind", "size", "modified"}], "truncated"}`.
//!
//! The file's path in the URL is its absolute sandbox path without the leading slash, so
//! a listing entry's `path` appended to `…/files` names it. A path outside `/sandbox` or
//! with `..` is 422; a link, FIFO or hard-linked file 422 (`unsafe_path`); a missing file
//! 404; past the size limit 413; a full disk 507; an unreachable node 503 + Retry-After.

use crate::error::ApiError;
use crate::extract::parse_user_uuid;
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tether_protocol::files::ImportedFile;
use tether_protocol::{DirListing, SandboxPath, UserUuid};

/// `/api/v1/sessions/{user_uuid}/files/{*path}`.
#[derive(Debug, Deserialize)]
pub struct FileRoute {
    user_uuid: String,
    path: String,
}

/// `/api/v1/sessions/{user_uuid}/files`.
#[derive(Debug, Deserialize)]
pub struct DirRoute {
    user_uuid: String,
}

/// `?path=/sandbox/dir` (default `/sandbox`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirQuery {
    path: Option<String>,
}

fn file_target(
    route: Result<Path<FileRoute>, PathRejection>,
) -> Result<(UserUuid, SandboxPath), ApiError> {
    let Path(route) = route.map_err(|e| ApiError::invalid_field("path", e.body_text()))?;
    let user = parse_user_uuid(&route.user_uuid)?;
    let path = SandboxPath::try_from(format!("/{}", route.path))
        .and_then(SandboxPath::file)
        .map_err(|e| ApiError::invalid_field("path", e.to_string()))?;
    Ok((user, path))
}

pub async fn upload(
    State(state): State<AppState>,
    route: Result<Path<FileRoute>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<ImportedFile>), ApiError> {
    let (user, path) = file_target(route)?;
    let announced = match headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| ApiError::invalid_field("Content-Length", "not a number"))?,
        ),
    };
    let node = state.dispatcher().node_for(user).await?;
    let written = state
        .node_files()
        .upload(&node, user, &path, announced, body)
        .await?;
    Ok((StatusCode::CREATED, Json(written)))
}

pub async fn download(
    State(state): State<AppState>,
    route: Result<Path<FileRoute>, PathRejection>,
) -> Result<Response, ApiError> {
    let (user, path) = file_target(route)?;
    let node = state.dispatcher().node_for(user).await?;
    let opened = state.node_files().download(&node, user, &path).await?;
    let mut response = opened.body.into_response();
    let headers = response.headers_mut();
    if let Some(size) = opened.size {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    let name = path.components().last().map_or("", |n| n.as_str());
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    if let Ok(value) = HeaderValue::from_str(mime.essence_str()) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    Ok(response)
}

pub async fn list(
    State(state): State<AppState>,
    route: Result<Path<DirRoute>, PathRejection>,
    query: Result<Query<DirQuery>, QueryRejection>,
) -> Result<Json<DirListing>, ApiError> {
    let Path(route) = route.map_err(|e| ApiError::invalid_field("user_uuid", e.body_text()))?;
    let user = parse_user_uuid(&route.user_uuid)?;
    let Query(query) = query.map_err(|e| ApiError::invalid_field("path", e.body_text()))?;
    let path = match query.path.as_deref() {
        None => SandboxPath::root(),
        Some(raw) => SandboxPath::try_from(raw)
            .map_err(|e| ApiError::invalid_field("path", e.to_string()))?,
    };
    let node = state.dispatcher().node_for(user).await?;
    Ok(Json(state.node_files().list(&node, user, &path).await?))
}
