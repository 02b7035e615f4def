//! `X-Auth-Token` on every route except the health probes, compared in constant time.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// The header clients put the token in (the seed's name).
pub const AUTH_HEADER: &str = "x-auth-token";

/// Middleware: pass the request on if it carries the right token, else 401.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request.headers().get(AUTH_HEADER).map(|v| v.as_bytes());
    match presented {
        Some(token) if state.config().auth_token.matches(token) => Ok(next.run(request).await),
        Some(_) | None => Err(ApiError::unauthorized()),
    }
}
