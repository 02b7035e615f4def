//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `"{webhook-id}.{webhook-timestamp}.{body}"`.
//!
//! The secret follows the Standard Webhooks convention when it has the `whsec_` prefix:
//! the rest is base64 and the decoded bytes are the HMAC key (that is what the official
//! verification libraries do with such a secret). Any other secret is used as-is, its
//! UTF-8 bytes being the key. A generated secret is always `whsec_` + 32 random bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// The prefix of a base64 secret in the Standard Webhooks convention.
pub const WHSEC_PREFIX: &str = "whsec_";

/// Why a secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the webhook secret is empty")]
    Empty,
    #[error("a webhook secret starting with `whsec_` must continue in base64: {0}")]
    NotBase64(String),
}

/// The key webhooks are signed with. Never printed.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// Read a secret as configured (see the module docs for the two forms).
    pub fn parse(secret: &str) -> Result<Self, SecretError> {
        let secret = secret.trim();
        let key = match secret.strip_prefix(WHSEC_PREFIX) {
            Some(encoded) => STANDARD
                .decode(encoded)
                .map_err(|e| SecretError::NotBase64(e.to_string()))?,
            None => secret.as_bytes().to_vec(),
        };
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self(key))
    }

    /// A fresh secret in the `whsec_` form, for first start-up.
    pub fn generate() -> String {
        let bytes: [u8; 32] = rand::random();
        format!("{WHSEC_PREFIX}{}", STANDARD.encode(bytes))
    }

    /// The `webhook-signature` value for one attempt.
    pub fn sign(&self, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
        format!(
            "v1,{}",
            STANDARD.encode(
                self.mac(webhook_id, timestamp, body)
                    .finalize()
                    .into_bytes()
            )
        )
    }

    /// Whether any of the space-separated signatures in a `webhook-signature` header is
    /// ours for this message (constant-time per candidate). Receivers do this; Tether's
    /// tests use it too.
    pub fn verify(&self, webhook_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        header.split(' ').any(|candidate| {
            let Some(encoded) = candidate.strip_prefix("v1,") else {
                return false;
            };
            let Ok(signature) = STANDARD.decode(encoded) else {
                return false;
            };
            self.mac(webhook_id, timestamp, body)
                .verify_slice(&signature)
                .is_ok()
        })
    }

    fn mac(&self, webhook_id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(webhook_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the Standard Webhooks reference libraries.
    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signature = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(secret.verify("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, &signature));
    }

    #[test]
    fn verification_fails_on_any_change() {
        let secret = WebhookSecret::parse("plain-secret").unwrap();
        let sig = secret.sign("msg_1", 100, b"{}");
        assert!(secret.verify("msg_1", 100, b"{}", &format!("v1,bogus {sig}")));
        assert!(!secret.verify("msg_2", 100, b"{}", &sig));
        assert!(!secret.verify("msg_1", 101, b"{}", &sig));
        assert!(!secret.verify("msg_1", 100, b"{ }", &sig));
        let other = WebhookSecret::parse("other-secret").unwrap();
        assert!(!other.verify("msg_1", 100, b"{}", &sig));
    }

    #[test]
    fn secret_forms() {
        let raw = WebhookSecret::parse("abc").unwrap();
        assert_eq!(raw.0, b"abc");
        let generated = WebhookSecret::generate();
        assert!(generated.starts_with(WHSEC_PREFIX));
        assert_eq!(WebhookSecret::parse(&generated).unwrap().0.len(), 32);
        assert!(matches!(
            WebhookSecret::parse("  "),
            Err(SecretError::Empty)
        ));
        assert!(matches!(
            WebhookSecret::parse("whsec_not base64!"),
            Err(SecretError::NotBase64(_))
        ));
        assert!(!format!("{raw:?}").contains("abc"));
    }
}
