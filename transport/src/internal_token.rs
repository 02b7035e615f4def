//! The shared secret API replicas present to worker-hosts on the internal file-transfer
//! channel (direct upload and download stream node-to-API over HTTP, never over the bus).
//! Every API and worker-host of one deployment must hold the same secret.

use std::fmt;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The header the API puts the secret in when it calls a worker-host.
pub const INTERNAL_TOKEN_HEADER: &str = "x-tether-internal-token";

/// Why a secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the internal token must be 16-512 visible ASCII characters")]
pub struct BadInternalToken;

/// The internal secret. Never printed: `Debug` and `Display` show `[redacted]`.
#[derive(Clone)]
pub struct InternalToken(Arc<str>);

impl InternalToken {
    /// A token from its text; it must be usable as an HTTP header value and long enough
    /// not to be guessed.
    pub fn new(token: impl Into<String>) -> Result<Self, BadInternalToken> {
        let token = token.into();
        let visible = token.bytes().all(|b| b.is_ascii_graphic());
        if token.len() < 16 || token.len() > 512 || !visible {
            return Err(BadInternalToken);
        }
        Ok(Self(token.into()))
    }

    /// The secret itself, to put in [`INTERNAL_TOKEN_HEADER`].
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with what a caller presented (only the length leaks).
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(presented).into()
    }
}

impl fmt::Debug for InternalToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InternalToken([redacted])")
    }
}

impl fmt::Display for InternalToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_and_never_prints() {
        let token = InternalToken::new("0123456789abcdef-secret").expect("valid");
        assert!(token.matches(b"0123456789abcdef-secret"));
        assert!(!token.matches(b"0123456789abcdef-secreT"));
        assert!(!token.matches(b""));
        assert!(!format!("{token:?} {token}").contains("secret"));
        assert!(InternalToken::new("short").is_err());
        assert!(InternalToken::new("has space 0123456789").is_err());
    }
}
