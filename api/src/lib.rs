//! Tether's HTTP API. Stateless: every replica shares the bus, store and registry.
//!
//! - [`run`]: serve the API on a bound listener until a cancellation token fires (the
//!   binary's `main` only parses config and calls this; tests call it on port 0).
//! - [`config`]: [`ApiConfig`] and the secret [`AuthToken`].
//! - [`secret_file`]: the auth token and webhook secret, generated once and kept 0600 in
//!   the data directory.
//! - [`routes`]: the endpoints; [`health`]: the unauthenticated probes.
//! - [`auth`], [`cors`]: `X-Auth-Token` checking and cross-origin access.
//! - [`extract`]: body and query extractors whose failures are [`ApiError`]s.
//! - [`job_input`]: request fields → a validated `JobKind`.
//! - [`callback`]: `callback_url` (egress-checked) and `metadata` of a job request.
//! - [`idempotency`]: `Idempotency-Key` — one job per key, 422 for a changed request.
//! - [`sync_call`]: a synchronous endpoint = submit + wait on the job path.
//! - [`verdict`]: a terminal job record → what the synchronous caller is told.
//! - [`error`]: [`ApiError`], the one error shape and its status mapping.
//! - [`state`]: [`AppState`], shared by every handler.

pub mod auth;
pub mod callback;
pub mod config;
pub mod cors;
pub mod error;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod job_input;
pub mod routes;
pub mod secret_file;
pub mod state;
pub mod sync_call;
pub mod verdict;

pub use config::{ApiConfig, AuthToken, ConfigError, CorsOrigins};
pub use error::ApiError;
pub use routes::router;
pub use secret_file::{
    SecretSource, WEBHOOK_SECRET_FILE, load_or_create_secret, load_or_create_secret_with,
    load_or_create_token,
};
pub use state::AppState;

use tether_dispatcher::Dispatcher;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid API configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("HTTP server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Serve the API on `listener` until `shutdown` is cancelled, then stop accepting,
/// answer waiting synchronous calls with 503 and return once open requests are done.
pub async fn run(
    config: ApiConfig,
    dispatcher: Dispatcher,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    config.validate()?;
    let state = AppState::new(config, dispatcher, shutdown.clone());
    let app = router(state);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "API listening");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    tracing::info!("API stopped");
    Ok(())
}
