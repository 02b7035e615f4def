//! `POST /api/v1/release?user_uuid=U` → 204: the session's sandbox and disk are gone.
//! Idempotent: releasing a session that has no sandbox is also 204.

use crate::error::ApiError;
use crate::extract::SessionParam;
use crate::state::AppState;
use crate::sync_call::submit_and_wait;
use crate::verdict::release_of;
use axum::extract::State;
use axum::http::StatusCode;
use tether_protocol::{JobKind, UserUuid};

pub async fn release(
    State(state): State<AppState>,
    SessionParam(user): SessionParam,
) -> Result<StatusCode, ApiError> {
    release_session(&state, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Release `user`'s session; whether a sandbox existed and was destroyed.
pub async fn release_session(state: &AppState, user: UserUuid) -> Result<bool, ApiError> {
    let record = submit_and_wait(state, user, JobKind::Release).await?;
    release_of(record)
}
