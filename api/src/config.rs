//! The API's settings, validated once at start-up. The binary fills [`ApiConfig`] from
//! flags and environment; tests build it with [`ApiConfig::new`] and adjust fields.

use axum::http::HeaderValue;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tether_dispatcher::webhook::AllowList;

/// Why a setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("the auth token must be 1-512 visible ASCII characters")]
    BadToken,
    #[error("max code size must be at least 1 byte")]
    NoCodeAllowed,
    #[error(
        "execution timeouts must be positive and the default ({default:?}) at most the maximum ({max:?})"
    )]
    BadTimeouts { default: Duration, max: Duration },
    #[error("CORS origin {0:?} is not `*`, `null` or scheme://host[:port]")]
    BadOrigin(String),
}

/// The shared secret clients send in `X-Auth-Token`. Never printed: `Debug` and
/// `Display` show `[redacted]`; [`AuthToken::expose_secret`] is the one way to read it.
#[derive(Clone)]
pub struct AuthToken(Arc<str>);

impl AuthToken {
    /// A token from its text; it must be usable as an HTTP header value.
    pub fn new(token: impl Into<String>) -> Result<Self, ConfigError> {
        let token = token.into();
        let visible = token.bytes().all(|b| b.is_ascii_graphic());
        if token.is_empty() || token.len() > 512 || !visible {
            return Err(ConfigError::BadToken);
        }
        Ok(Self(token.into()))
    }

    /// The token itself, for printing once at start-up or writing to its file.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with what a client presented (only the length leaks).
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(presented).into()
    }
}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthToken([redacted])")
    }
}

impl fmt::Display for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Which browser origins may call the API (CORS). Default: none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No cross-origin browser access (no CORS headers at all).
    #[default]
    None,
    /// Any origin (`*`); fine because auth is a header, never a cookie.
    Any,
    /// Exactly these origins, e.g. `https://app.example.com` or `null` for `file://` pages.
    List(Vec<HeaderValue>),
}

impl FromStr for CorsOrigins {
    type Err = ConfigError;

    /// Comma-separated origins; empty means none, `*` means any.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let items: Vec<&str> = s
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .collect();
        if items.is_empty() {
            return Ok(CorsOrigins::None);
        }
        if items.contains(&"*") {
            return Ok(CorsOrigins::Any);
        }
        items
            .into_iter()
            .map(parse_origin)
            .collect::<Result<_, _>>()
            .map(CorsOrigins::List)
    }
}

fn parse_origin(origin: &str) -> Result<HeaderValue, ConfigError> {
    let bad = || ConfigError::BadOrigin(origin.to_owned());
    if origin != "null" {
        let (scheme, host) = origin.split_once("://").ok_or_else(bad)?;
        let plain = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        };
        if !plain(scheme) || !plain(host) {
            return Err(bad());
        }
    }
    HeaderValue::from_str(origin).map_err(|_| bad())
}

/// Everything the API needs to know besides its backends.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Token every protected request must carry in `X-Auth-Token`.
    pub auth_token: AuthToken,
    /// Largest accepted `code`, in UTF-8 bytes; larger requests get 413.
    pub max_code_bytes: usize,
    /// Time limit of an execution whose request names none.
    pub default_timeout: Duration,
    /// Largest time limit a request may ask for (`timeout_s`).
    pub max_timeout: Duration,
    /// How long a synchronous call waits past the time limit for the worker's verdict:
    /// covers queueing behind the session's earlier jobs and the timeout ladder.
    pub sync_wait_margin: Duration,
    /// Browser origins allowed by CORS.
    pub cors_origins: CorsOrigins,
    /// Internal addresses a `callback_url` may reach anyway (`TETHER_EGRESS_ALLOW`);
    /// callback URLs resolving to any other non-public address are refused with 422.
    pub egress_allow: AllowList,
    /// How long an `Idempotency-Key` is remembered (at least 24 h by default).
    pub idempotency_ttl: Duration,
    /// How often an idle event stream sends a keep-alive comment.
    pub sse_keep_alive: Duration,
}

impl ApiConfig {
    /// Defaults: 1 MiB of code, 30 s default and 300 s maximum time limit, 30 s margin,
    /// no CORS, no internal callback targets, idempotency keys kept 24 h, an SSE
    /// keep-alive every 15 s.
    pub fn new(auth_token: AuthToken) -> Self {
        Self {
            auth_token,
            max_code_bytes: 1024 * 1024,
            default_timeout: Duration::from_secs(30),
            max_timeout: Duration::from_secs(300),
            sync_wait_margin: Duration::from_secs(30),
            cors_origins: CorsOrigins::None,
            egress_allow: AllowList::default(),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            sse_keep_alive: Duration::from_secs(15),
        }
    }

    /// Check the settings hang together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_code_bytes == 0 {
            return Err(ConfigError::NoCodeAllowed);
        }
        if self.default_timeout.is_zero() || self.default_timeout > self.max_timeout {
            return Err(ConfigError::BadTimeouts {
                default: self.default_timeout,
                max: self.max_timeout,
            });
        }
        Ok(())
    }

    /// The largest request body read: room for `max_code_bytes` of code after JSON
    /// escaping (a newline or quote takes two bytes) plus the other fields. A larger body
    /// is refused with 413 before it is read.
    pub fn body_limit(&self) -> usize {
        self.max_code_bytes
            .saturating_mul(2)
            .saturating_add(64 * 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_never_prints() {
        let token = AuthToken::new("s3cret-value").expect("valid");
        let config = ApiConfig::new(token.clone());
        assert!(!format!("{config:?}").contains("s3cret"));
        assert!(!token.to_string().contains("s3cret"));
        assert!(token.matches(b"s3cret-value"));
        assert!(!token.matches(b"s3cret-valuf"));
        assert!(!token.matches(b"s3cret"));
        assert!(AuthToken::new("has space").is_err());
        assert!(AuthToken::new("").is_err());
    }

    #[test]
    fn cors_origins_parse() {
        assert_eq!("".parse(), Ok(CorsOrigins::None));
        assert_eq!(" * ".parse(), Ok(CorsOrigins::Any));
        let Ok(CorsOrigins::List(list)) = "http://localhost:8080, null".parse() else {
            panic!("list expected");
        };
        assert_eq!(list.len(), 2);
        assert!("localhost".parse::<CorsOrigins>().is_err());
        assert!("http://a b".parse::<CorsOrigins>().is_err());
    }

    #[test]
    fn defaults_validate() {
        let mut config = ApiConfig::new(AuthToken::new("t").expect("valid"));
        assert_eq!(config.validate(), Ok(()));
        config.default_timeout = Duration::from_secs(301);
        assert!(config.validate().is_err());
    }
}
