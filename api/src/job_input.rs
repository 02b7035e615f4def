//! Turning what a client asked for into a [`JobKind`], with the limits applied: the code
//! size cap (413) and the time-limit range (422). The sync endpoints and the job API
//! (issue 5) share these rules.

use crate::config::ApiConfig;
use crate::error::ApiError;
use serde::Deserialize;
use std::time::Duration;
use tether_protocol::{ExecuteSpec, JobKind};

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
}
