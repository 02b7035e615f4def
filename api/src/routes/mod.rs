//! The HTTP surface, one file per resource:
//!
//! - [`execute`]: `POST /api/v1/execute?user_uuid=` — run code, wait, show the result.
//! - [`release`]: `POST /api/v1/release?user_uuid=` — destroy the session's sandbox (204).
//! - [`files`]: `POST /api/v1/files`, `POST /api/v1/files/export`, `DELETE /api/v1/files`
//!   — the seed's file jobs (import by URL or `s3://`, export by presigned PUT/POST or
//!   `s3://`, delete).
//! - [`session_files`]: `PUT`/`GET /api/v1/sessions/{user_uuid}/files/sandbox/…` and
//!   `GET /api/v1/sessions/{user_uuid}/files?path=` — direct upload, download, listing.
//! - [`status`]: `GET /api/v1/status` — pool figures across live nodes.
//! - [`nodes`]: `POST /api/v1/nodes/{id}/drain` and `/undrain` — take a node out of
//!   placement or put it back (operators).
//! - [`jobs`]: the async job API — submit, poll (`?wait=`), cancel, webhook deliveries.
//! - [`job_events`]: `GET /api/v1/jobs/{id}/events` — the job's events as SSE.
//! - [`sessions`]: `GET /api/v1/sessions/{user_uuid}/jobs` — a session's jobs by seq.
//! - [`legacy`]: the unversioned `POST /execute`, `POST /release`, `GET /status` with
//!   the seed's older contract.
//!
//! `/healthz` and `/readyz` are public; everything else needs `X-Auth-Token`.

pub mod execute;
pub mod files;
pub mod job_events;
pub mod jobs;
pub mod legacy;
pub mod nodes;
pub mod release;
pub mod session_files;
pub mod sessions;
pub mod status;

use crate::error::ApiError;
use crate::extract::BodyLimit;
use crate::state::AppState;
use crate::{auth, cors, health};
use axum::extract::DefaultBodyLimit;
use axum::http::Uri;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Router, middleware};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

/// The whole API as one router, ready to serve.
pub fn router(state: AppState) -> Router {
    let limit = state.config().body_limit();
    let protected = Router::new()
        .route("/api/v1/execute", post(execute::execute))
        .route("/api/v1/release", post(release::release))
        .route("/api/v1/files", post(files::import).delete(files::delete))
        .route("/api/v1/files/export", post(files::export))
        .route(
            "/api/v1/sessions/{user_uuid}/files",
            get(session_files::list),
        )
        .route(
            "/api/v1/sessions/{user_uuid}/files/{*path}",
            get(session_files::download).put(session_files::upload),
        )
        .route("/api/v1/status", get(status::status))
        .route("/api/v1/nodes/{id}/drain", post(nodes::drain))
        .route("/api/v1/nodes/{id}/undrain", post(nodes::undrain))
        .route("/api/v1/jobs", post(jobs::submit))
        .route(
            "/api/v1/jobs/{id}",
            get(jobs::get_job).delete(jobs::cancel_job),
        )
        .route("/api/v1/jobs/{id}/events", get(job_events::job_events))
        .route("/api/v1/jobs/{id}/deliveries", get(jobs::deliveries))
        .route(
            "/api/v1/sessions/{user_uuid}/jobs",
            get(sessions::session_jobs),
        )
        .route("/execute", post(legacy::execute))
        .route("/release", post(legacy::release))
        .route("/status", get(legacy::status))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(protected)
        .fallback(not_found)
        .layer(Extension(BodyLimit(limit)))
        .layer(DefaultBodyLimit::max(limit))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("a request handler panicked").into_response()
        }))
        .layer(TraceLayer::new_for_http());
    let router = match cors::layer(&state.config().cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("No route for {}", uri.path()))
}
