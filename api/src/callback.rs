//! `callback_url` and `metadata` of a job request, checked at submit time: a URL that is
//! malformed, too long, or resolves to an internal address the egress allow-list does not
//! admit is refused with 422 naming the field. The webhook courier checks the URL again
//! before every attempt (the name may resolve differently by then).

use crate::config::ApiConfig;
use crate::error::ApiError;
use serde_json::Value;
use tether_egress::{SystemResolver, Url, policy};

/// Longest callback URL accepted.
pub const MAX_CALLBACK_URL_LEN: usize = 2048;
/// Largest `metadata`, as JSON.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// The callback URL to store, normalised, or the 422 that refuses it.
pub async fn checked_callback(raw: &str, config: &ApiConfig) -> Result<String, ApiError> {
    let refuse = |problem: String| ApiError::invalid_field("callback_url", problem);
    if raw.len() > MAX_CALLBACK_URL_LEN {
        return Err(refuse(format!(
            "is longer than {MAX_CALLBACK_URL_LEN} characters"
        )));
    }
    let url = Url::parse(raw).map_err(|e| refuse(format!("is not a valid absolute URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse(
            "must not carry credentials (user:password@); verify the signature instead".into(),
        ));
    }
    policy::check(&url, &config.egress_allow, &SystemResolver)
        .await
        .map_err(|e| refuse(e.to_string()))?;
    Ok(url.to_string())
}

/// Refuse metadata too large to carry on every record, view and webhook.
pub fn checked_metadata(metadata: Option<Value>) -> Result<Option<Value>, ApiError> {
    if let Some(value) = &metadata {
        let size = serde_json::to_vec(value).map_or(usize::MAX, |v| v.len());
        if size > MAX_METADATA_BYTES {
            return Err(ApiError::invalid_field(
                "metadata",
                format!("is {size} bytes as JSON; at most {MAX_METADATA_BYTES} are kept"),
            ));
        }
    }
    Ok(metadata)
}
