//! `GET /api/v1/sessions/{user_uuid}/jobs?after_seq=&limit=` → the session's jobs in `seq`
//! order (the order they run in), a page at a time:
//! `{"user_uuid", "jobs": [JobView…], "next_after_seq": n | null}`. Pass
//! `next_after_seq` back as `after_seq` for the next page; `null` means the last page.

use crate::error::ApiError;
use crate::extract::parse_user_uuid;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use serde::{Deserialize, Serialize};
use tether_protocol::{JobView, UserUuid};

/// Jobs per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page (views carry full results).
pub const MAX_LIMIT: usize = 200;

#[derive(Debug, Serialize)]
pub struct SessionJobs {
    pub user_uuid: UserUuid,
    pub jobs: Vec<JobView>,
    /// The `after_seq` of the next page, or `null` if this is the last.
    pub next_after_seq: Option<u64>,
}

#[derive(Deserialize)]
struct PageQuery {
    after_seq: Option<String>,
    limit: Option<String>,
}

pub async fn session_jobs(
    State(state): State<AppState>,
    Path(user): Path<String>,
    uri: Uri,
) -> Result<Json<SessionJobs>, ApiError> {
    let user = parse_user_uuid(&user)?;
    let Query(page) = Query::<PageQuery>::try_from_uri(&uri)
        .map_err(|e| ApiError::invalid_field("query", e.body_text()))?;
    let after_seq = match page.after_seq {
        None => 0,
        Some(raw) => raw.parse::<u64>().map_err(|_| {
            ApiError::invalid_field("after_seq", "must be a whole number (a job's seq)")
        })?,
    };
    let limit = match page.limit {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::invalid_field("limit", format!("must be from 1 to {MAX_LIMIT}"))
            })?,
    };
    // One more than asked says whether another page follows.
    let mut records = state
        .store()
        .session_jobs(user, after_seq, limit + 1)
        .await?;
    let more = records.len() > limit;
    records.truncate(limit);
    let next_after_seq = more.then(|| records.last().map(|r| r.job.seq)).flatten();
    Ok(Json(SessionJobs {
        user_uuid: user,
        jobs: records.into_iter().map(JobView::from).collect(),
        next_after_seq,
    }))
}
