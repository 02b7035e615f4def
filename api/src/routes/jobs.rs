//! The job API (issue 5), one job record behind every channel:
//!
//! - `POST /api/v1/jobs` → 202 `{"job_id", "status", "seq", "links"}` + `Location`; with
//!   an `Idempotency-Key`, a retry gets 200 and the same job.
//! - `GET /api/v1/jobs/{id}[?wait=N]` → the [`JobView`]; `wait` (≤ 60 s) holds the request
//!   until the job is terminal or N seconds pass.
//! - `DELETE /api/v1/jobs/{id}[?wait=N]` → cancel: 200 when the job is now `cancelled`
//!   (it was queued, or was cancelled already), 202 while a running job is being
//!   interrupted, 409 `job_finished` when it ended otherwise.
//! - `GET /api/v1/jobs/{id}/deliveries` → its webhook deliveries and their attempts.
//!
//! The event stream is in [`super::job_events`], the session listing in [`super::sessions`].

use crate::callback::{checked_callback, checked_metadata};
use crate::error::ApiError;
use crate::extract::{JsonBody, parse_user_uuid};
use crate::idempotency::{self, IdempotencyKey, Submitted};
use crate::job_input::{SubmitRequest, job_kind};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tether_dispatcher::Cancellation;
use tether_protocol::{ErrorCode, JobId, JobLinks, JobRecord, JobStatus, JobView, WebhookDelivery};

/// Longest `?wait=` a request may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// The answer to a submission.
#[derive(Debug, Serialize)]
pub struct SubmitResponse {
    pub job_id: JobId,
    /// `queued` for a new job; the current status on an idempotent replay.
    pub status: JobStatus,
    pub seq: u64,
    pub links: JobLinks,
}

pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(mut request): JsonBody<SubmitRequest>,
) -> Result<Response, ApiError> {
    let user = parse_user_uuid(&request.user_uuid)?;
    request.user_uuid = user.to_string();
    let kind = job_kind(&request, state.config())?;
    let callback_url = match &request.callback_url {
        Some(raw) => Some(checked_callback(raw, state.config()).await?),
        None => None,
    };
    let metadata = checked_metadata(request.metadata.clone())?;
    let key = IdempotencyKey::from_headers(&headers)?;
    let dispatcher = state.dispatcher().clone();
    let submit = move |id| async move {
        dispatcher
            .submit_as(id, user, kind, callback_url, metadata)
            .await
            .map_err(ApiError::from)
    };
    let submitted = match &key {
        None => Submitted::New(submit(JobId::new()).await?),
        Some(key) => {
            idempotency::submit_once(&state, key, idempotency::fingerprint(&request), submit)
                .await?
        }
    };
    let (status, replayed, record) = match submitted {
        Submitted::New(record) => (StatusCode::ACCEPTED, false, record),
        Submitted::Replayed(record) => (StatusCode::OK, true, record),
    };
    let links = JobLinks::of(record.job.id);
    let location = HeaderValue::from_str(&links.self_).expect("a path is a valid header value");
    let body = SubmitResponse {
        job_id: record.job.id,
        status: record.status,
        seq: record.job.seq,
        links,
    };
    let mut response = (status, [(header::LOCATION, location)], Json(body)).into_response();
    if replayed {
        response.headers_mut().insert(
            HeaderName::from_static("idempotent-replayed"),
            HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

pub async fn get_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Json<JobView>, ApiError> {
    let id = job_id(&id)?;
    let wait = wait_param(&uri)?;
    let record = current(&state, id, wait).await?;
    Ok(Json(record.into()))
}

pub async fn cancel_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    let wait = wait_param(&uri)?;
    let (status, record) = match state.dispatcher().cancel(id).await? {
        Cancellation::Cancelled(record) => (StatusCode::OK, record),
        Cancellation::Interrupting(record) => (StatusCode::ACCEPTED, record),
        Cancellation::AlreadyFinished(record) if record.status == JobStatus::Cancelled => {
            (StatusCode::OK, record)
        }
        Cancellation::AlreadyFinished(record) => {
            return Err(ApiError::new(
                ErrorCode::JobFinished,
                format!(
                    "Job {id} already finished ({}); there is nothing to cancel.",
                    record.status.as_str()
                ),
            ));
        }
        Cancellation::NotFound => return Err(no_job(id)),
    };
    if status == StatusCode::ACCEPTED && !wait.is_zero() {
        let record = current(&state, id, wait).await?;
        let status = if record.status.is_terminal() {
            StatusCode::OK
        } else {
            StatusCode::ACCEPTED
        };
        return Ok((status, Json(JobView::from(record))).into_response());
    }
    Ok((status, Json(JobView::from(record))).into_response())
}

/// `GET /api/v1/jobs/{id}/deliveries`.
#[derive(Debug, Serialize)]
pub struct DeliveriesResponse {
    pub job_id: JobId,
    /// One per callback URL (today at most one), with every attempt.
    pub deliveries: Vec<WebhookDelivery>,
}

pub async fn deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeliveriesResponse>, ApiError> {
    let id = job_id(&id)?;
    let delivery = state.store().delivery(id).await?;
    if delivery.is_none() && state.store().get(id).await?.is_none() {
        return Err(no_job(id));
    }
    Ok(Json(DeliveriesResponse {
        job_id: id,
        deliveries: delivery.into_iter().collect(),
    }))
}

/// The record, after waiting up to `wait` for it to become terminal. Shutdown ends the
/// wait early with the record as it is.
pub async fn current(state: &AppState, id: JobId, wait: Duration) -> Result<JobRecord, ApiError> {
    let store = state.store();
    let record = if wait.is_zero() {
        store.get(id).await?
    } else {
        tokio::select! {
            waited = store.wait_terminal(id, wait) => waited?,
            () = state.shutdown().cancelled() => store.get(id).await?,
        }
    };
    record.ok_or_else(|| no_job(id))
}

/// A job id from the path; anything that is not one names no job (404).
pub fn job_id(raw: &str) -> Result<JobId, ApiError> {
    JobId::try_from(raw).map_err(|_| {
        ApiError::not_found(format!("No job {raw:?}.")).with_message("job ids are UUIDs")
    })
}

pub fn no_job(id: JobId) -> ApiError {
    ApiError::not_found(format!("No job {id}."))
        .with_message("the job does not exist, belongs to another deployment, or has expired")
}

#[derive(Deserialize)]
struct WaitQuery {
    wait: Option<f64>,
}

/// `?wait=N`: seconds, 0 to 60.
fn wait_param(uri: &Uri) -> Result<Duration, ApiError> {
    let bad = || {
        ApiError::invalid_field(
            "wait",
            format!(
                "must be a number of seconds from 0 to {}",
                MAX_WAIT.as_secs()
            ),
        )
    };
    let Query(query) = Query::<WaitQuery>::try_from_uri(uri).map_err(|_| bad())?;
    match query.wait {
        None => Ok(Duration::ZERO),
        Some(secs) => Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|d| *d <= MAX_WAIT)
            .ok_or_else(bad),
    }
}
