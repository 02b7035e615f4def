//! The node's internal file endpoint: direct uploads and downloads stream between an API
//! replica and this node over HTTP, so file bytes never travel over the job bus. Only
//! callers holding the deployment's [`InternalToken`] are served.
//!
//! - `PUT /internal/v1/files?user_uuid=U&path=/sandbox/…` (raw body) → 201 [`ImportedFile`];
//! - `GET /internal/v1/files?user_uuid=U&path=/sandbox/…` → the bytes, with `Content-Length`;
//! - `GET /internal/v1/dirs?user_uuid=U&path=/sandbox/…` → [`DirListing`].
//!
//! Failures answer a [`TransferRefusal`] (stable code + sentence). Every operation runs
//! through the session's queue, in order with its executions and file jobs.

use crate::engine::{Engine, EngineError};
use crate::files::BodyChunk;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use tether_protocol::files::{ImportedFile, TransferRefusal};
use tether_protocol::{DirListing, ErrorCode, SandboxPath, UserUuid};
use tether_transport::{INTERNAL_TOKEN_HEADER, InternalToken};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Chunks of an upload buffered between the connection and the disk writer.
const UPLOAD_CHANNEL: usize = 8;

#[derive(Clone, Debug)]
struct ServerState {
    engine: Engine,
    token: InternalToken,
}

/// Serve the internal file endpoint on `listener` until `shutdown` fires.
pub async fn run(
    engine: Engine,
    token: InternalToken,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "file endpoint listening");
    }
    axum::serve(listener, router(engine, token))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// The endpoint's routes (exposed for tests that mount it elsewhere).
pub fn router(engine: Engine, token: InternalToken) -> Router {
    let state = ServerState { engine, token };
    Router::new()
        .route("/internal/v1/files", get(download).put(upload))
        .route("/internal/v1/dirs", get(list))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

/// A refusal on the wire, with a status that roughly matches its code (the API decides
/// the status its clients see from the code alone).
#[derive(Debug)]
struct Refusal(TransferRefusal);

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self(TransferRefusal {
            code,
            message: message.into(),
        })
    }
}

impl From<EngineError> for Refusal {
    fn from(e: EngineError) -> Self {
        let code = match &e {
            EngineError::Files(failure) => failure.error.code(),
            EngineError::NoCapacity(_) => ErrorCode::NoCapacity,
            EngineError::SandboxUnavailable(_) => ErrorCode::SandboxUnavailable,
            EngineError::Skipped | EngineError::ShuttingDown => ErrorCode::Unavailable,
        };
        Self::new(code, e.to_string())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = match self.0.code {
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::FileNotFound => StatusCode::NOT_FOUND,
            ErrorCode::FileTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::DiskFull => StatusCode::INSUFFICIENT_STORAGE,
            ErrorCode::NoCapacity | ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::InvalidRequest | ErrorCode::UnsafePath => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(self.0)).into_response()
    }
}

async fn require_token(
    State(state): State<ServerState>,
    request: Request,
    next: Next,
) -> Result<Response, Refusal> {
    let presented = request.headers().get(INTERNAL_TOKEN_HEADER);
    match presented {
        Some(token) if state.token.matches(token.as_bytes()) => Ok(next.run(request).await),
        Some(_) | None => Err(Refusal::new(
            ErrorCode::Unauthorized,
            "the internal token is missing or wrong",
        )),
    }
}

/// `?user_uuid=…&path=…`, parsed into domain types by [`target`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetQuery {
    user_uuid: String,
    path: String,
}

type TargetParam = Result<Query<TargetQuery>, QueryRejection>;

fn target(query: TargetParam) -> Result<(UserUuid, SandboxPath), Refusal> {
    let Query(query) = query.map_err(|e| Refusal::new(ErrorCode::InvalidRequest, e.body_text()))?;
    let user = UserUuid::try_from(query.user_uuid.as_str())
        .map_err(|e| Refusal::new(ErrorCode::InvalidRequest, format!("user_uuid: {e}")))?;
    let path = SandboxPath::try_from(query.path.as_str())
        .map_err(|e| Refusal::new(ErrorCode::InvalidRequest, format!("path {e}")))?;
    Ok((user, path))
}

async fn upload(
    State(state): State<ServerState>,
    query: TargetParam,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<ImportedFile>), Refusal> {
    let (user, path) = target(query)?;
    let path = path
        .file()
        .map_err(|e| Refusal::new(ErrorCode::InvalidRequest, format!("path {e}")))?;
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (tx, rx) = mpsc::channel(UPLOAD_CHANNEL);
    let write = state.engine.write_file(user, path, announced, rx);
    let (written, ()) = tokio::join!(write, forward(body, tx));
    Ok((StatusCode::CREATED, Json(written?)))
}

/// Pass the request body to the disk writer chunk by chunk. Stops when the writer gives
/// up (its receiver is gone); a body that breaks off sends no `End`, so nothing is kept.
async fn forward(body: Body, tx: mpsc::Sender<BodyChunk>) {
    let mut stream = body.into_data_stream();
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            () = tx.closed() => return,
        };
        match next {
            Some(Ok(chunk)) => {
                if tx.send(BodyChunk::Data(chunk)).await.is_err() {
                    return;
                }
            }
            Some(Err(e)) => {
                tracing::info!(error = %e, "upload broke off; discarding it");
                return;
            }
            None => {
                let _ = tx.send(BodyChunk::End).await;
                return;
            }
        }
    }
}

async fn download(
    State(state): State<ServerState>,
    query: TargetParam,
) -> Result<Response, Refusal> {
    let (user, path) = target(query)?;
    let opened = state.engine.read_file(user, path).await?;
    let size = opened.size;
    let mut response = Body::from_stream(opened.into_stream()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, size.into());
    Ok(response)
}

async fn list(
    State(state): State<ServerState>,
    query: TargetParam,
) -> Result<Json<DirListing>, Refusal> {
    let (user, path) = target(query)?;
    Ok(Json(state.engine.list_dir(user, path).await?))
}
