//! `Idempotency-Key` on `POST /api/v1/jobs`: a retry with the same key and the same
//! request gets the job the first request created (200 instead of 202); the same key
//! with a different request is a 422 `idempotency_conflict`.
//!
//! The key is bound in the store *before* the job is submitted, to the job id the
//! submission will use, so two concurrent requests with one key create one job. If the
//! submission is refused, the key is released and a retry starts afresh. Keys are scoped
//! to the deployment (the store's prefix) and to the auth token, and stored hashed.

use crate::error::ApiError;
use crate::state::AppState;
use axum::http::HeaderMap;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::time::{Duration, Instant};
use tether_protocol::{ErrorCode, JobId, JobRecord};
use tether_transport::IdempotencyEntry;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Longest key accepted.
const MAX_KEY_LEN: usize = 255;
/// How long a retry waits for the record of a first request still being submitted.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(5);

/// A client's key, validated.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key in the request headers, if any: 1–255 visible ASCII characters.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, ApiError> {
        let Some(value) = headers.get(HEADER) else {
            return Ok(None);
        };
        let key = value.to_str().ok().map(str::trim).filter(|k| {
            !k.is_empty() && k.len() <= MAX_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic())
        });
        match key {
            Some(key) => Ok(Some(Self(key.to_owned()))),
            None => Err(ApiError::invalid_field(
                "Idempotency-Key",
                format!("must be 1-{MAX_KEY_LEN} visible ASCII characters"),
            )),
        }
    }

    /// The name the key is stored under: a hash of the auth token and the key, so that
    /// keys of different tokens never meet and no client text becomes a store key.
    fn scoped(&self, state: &AppState) -> String {
        let mut hash = Sha256::new();
        hash.update(Sha256::digest(
            state.config().auth_token.expose_secret().as_bytes(),
        ));
        hash.update(b":");
        hash.update(self.0.as_bytes());
        hex(&hash.finalize())
    }
}

/// A fingerprint of a request, to tell a retry from a different request.
pub fn fingerprint(request: &impl Serialize) -> String {
    let json = serde_json::to_vec(request).expect("a request always encodes as JSON");
    hex(&Sha256::digest(json))
}

/// Whether the job is new or the one an earlier request with the key created.
#[derive(Debug)]
pub enum Submitted {
    New(JobRecord),
    Replayed(JobRecord),
}

/// Run `submit` once per key: the first request submits with a fresh job id bound to the
/// key; later ones with the same fingerprint get that job's record.
pub async fn submit_once<F, Fut>(
    state: &AppState,
    key: &IdempotencyKey,
    fingerprint: String,
    submit: F,
) -> Result<Submitted, ApiError>
where
    F: FnOnce(JobId) -> Fut,
    Fut: Future<Output = Result<JobRecord, ApiError>>,
{
    let scoped = key.scoped(state);
    let entry = IdempotencyEntry {
        job_id: JobId::new(),
        fingerprint,
    };
    let store = state.store();
    let ttl = state.config().idempotency_ttl;
    let existing = store.remember_idempotency_key(&scoped, &entry, ttl).await?;
    let Some(existing) = existing else {
        return match submit(entry.job_id).await {
            Ok(record) => Ok(Submitted::New(record)),
            Err(e) => {
                if let Err(forget) = store.forget_idempotency_key(&scoped, &entry).await {
                    tracing::warn!(error = %forget, "could not release an idempotency key");
                }
                Err(e)
            }
        };
    };
    if existing.fingerprint != entry.fingerprint {
        return Err(ApiError::new(
            ErrorCode::IdempotencyConflict,
            "This Idempotency-Key was already used with a different request.",
        )
        .with_message(format!(
            "the key created job {}; send the same request to get it, or use a new key",
            existing.job_id
        )));
    }
    // The first request may still be submitting: give it a moment to record the job.
    let deadline = Instant::now() + IN_FLIGHT_WAIT;
    loop {
        if let Some(record) = store.get(existing.job_id).await? {
            return Ok(Submitted::Replayed(record));
        }
        if Instant::now() >= deadline {
            return Err(ApiError::new(
                ErrorCode::IdempotencyInProgress,
                "A request with this Idempotency-Key is still being processed; retry shortly.",
            )
            .with_retry_after(Duration::from_secs(1)));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
