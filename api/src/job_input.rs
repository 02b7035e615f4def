//! Turning what a client asked for into a [`JobKind`], with the limits applied: the code
//! size cap (413) and the time-limit range (422). The sync endpoints and the job API
//! (issue 5) share these rules; [`job_kind`] is the job API's one dispatch on `type`.

use crate::config::ApiConfig;
use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use tether_protocol::{ExecuteSpec, JobKind};

/// The job types `POST /api/v1/jobs` accepts, as listed in errors.
pub const JOB_TYPES: &[&str] = &["execute", "release"];

/// Body of `POST /api/v1/jobs`. Fields that only some types use are optional here and
/// checked per type by [`job_kind`]; unknown fields are refused.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    pub user_uuid: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// The work a job request asks for. New job types add an arm here (and their fields to
/// [`SubmitRequest`]).
pub fn job_kind(request: &SubmitRequest, config: &ApiConfig) -> Result<JobKind, ApiError> {
    match request.kind.as_str() {
        "execute" => {
            let code = request
                .code
                .clone()
                .ok_or_else(|| ApiError::invalid_field("code", "is required for execute jobs"))?;
            execute_job(code, request.timeout_s, config)
        }
        "release" => {
            unused_by("release", "code", request.code.is_some())?;
            unused_by("release", "timeout_s", request.timeout_s.is_some())?;
            Ok(JobKind::Release)
        }
        other => Err(ApiError::invalid_field(
            "type",
            format!(
                "unknown job type {other:?}; expected one of: {}",
                JOB_TYPES.join(", ")
            ),
        )),
    }
}

/// Refuse a field the job type does not use, rather than silently ignore it.
fn unused_by(kind: &str, field: &str, present: bool) -> Result<(), ApiError> {
    if present {
        return Err(ApiError::invalid_field(
            field,
            format!("is not used by {kind} jobs"),
        ));
    }
    Ok(())
}

/// Body of `POST /api/v1/execute`. Unknown fields are refused so that a misspelt
/// `timeout_s` is not silently ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    pub code: String,
    /// Time limit in seconds; the configured default when absent.
    #[serde(default)]
    pub timeout_s: Option<f64>,
}

/// An execute job for `code`, checked against the configured limits.
pub fn execute_job(
    code: String,
    timeout_s: Option<f64>,
    config: &ApiConfig,
) -> Result<JobKind, ApiError> {
    if code.len() > config.max_code_bytes {
        return Err(ApiError::payload_too_large("code", config.max_code_bytes));
    }
    let timeout = match timeout_s {
        None => config.default_timeout,
        Some(secs) => timeout_within(secs, config.max_timeout)?,
    };
    Ok(JobKind::Execute(ExecuteSpec {
        code,
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
    }))
}

fn timeout_within(secs: f64, max: Duration) -> Result<Duration, ApiError> {
    let out_of_range = || {
        ApiError::invalid_field(
            "timeout_s",
            format!(
                "must be a number of seconds above 0 and at most {}",
                max.as_secs_f64()
            ),
        )
    };
    let timeout = Duration::try_from_secs_f64(secs).map_err(|_| out_of_range())?;
    if timeout.is_zero() || timeout > max {
        return Err(out_of_range());
    }
    Ok(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthToken;
    use tether_protocol::ErrorCode;

    fn config() -> ApiConfig {
        let mut c = ApiConfig::new(AuthToken::new("t").expect("valid"));
        c.max_code_bytes = 10;
        c
    }

    #[test]
    fn applies_limits() {
        let kind = execute_job("1+1".into(), None, &config()).expect("fits");
        assert_eq!(
            kind,
            JobKind::Execute(ExecuteSpec {
                code: "1+1".into(),
                timeout_ms: 30_000
            })
        );
        let err = execute_job("x".repeat(11), None, &config()).expect_err("too big");
        assert_eq!(err.code(), ErrorCode::PayloadTooLarge);
        for bad in [0.0, -1.0, 301.0, f64::NAN] {
            let err = execute_job("1".into(), Some(bad), &config()).expect_err("out of range");
            assert_eq!(err.code(), ErrorCode::InvalidRequest);
        }
        assert!(execute_job("1".into(), Some(0.5), &config()).is_ok());
    }

    fn request(kind: &str, code: Option<&str>) -> SubmitRequest {
        SubmitRequest {
            user_uuid: "u".into(),
            kind: kind.into(),
            code: code.map(str::to_owned),
            timeout_s: None,
            callback_url: None,
            metadata: None,
        }
    }

    #[test]
    fn dispatches_on_type() {
        assert!(matches!(
            job_kind(&request("execute", Some("1")), &config()),
            Ok(JobKind::Execute(_))
        ));
        assert_eq!(
            job_kind(&request("release", None), &config()).ok(),
            Some(JobKind::Release)
        );
        let field = |r: SubmitRequest| {
            let e = job_kind(&r, &config()).expect_err("refused");
            assert_eq!(e.code(), ErrorCode::InvalidRequest);
            e.detail().to_owned()
        };
        assert!(field(request("execute", None)).contains("`code`"));
        assert!(field(request("release", Some("1"))).contains("`code`"));
        assert!(field(request("compile", Some("1"))).contains("`type`"));
    }
}
