//! How to reach Redis and how long things live there.

use crate::secret_url::redact_password;
use std::fmt;
use std::time::Duration;
use tether_protocol::names;

/// Settings shared by [`RedisStore`](super::RedisStore) and
/// [`RedisRegistry`](super::RedisRegistry).
#[derive(Clone)]
pub struct RedisConfig {
    /// e.g. `redis://127.0.0.1:6379`. May hold a password, so `Debug` masks it.
    pub url: String,
    /// Prepended to every key and channel, so that deployments (or parallel tests) can
    /// share one Redis. Default `tether:`.
    pub prefix: String,
    /// How long job records and event logs live after their last change.
    pub record_ttl: Duration,
    /// Bound on getting a connection and on every command: past it the caller gets
    /// `Unavailable` instead of waiting.
    pub op_timeout: Duration,
    /// Waiters re-read at least this often, in case a wake-up was lost.
    pub poll_interval: Duration,
    /// Connections in the pool (pub/sub uses one more, shared by all waiters).
    pub pool_size: usize,
    /// How often the wake-up listener checks that its pub/sub connection still answers.
    pub pubsub_ping: Duration,
}

impl RedisConfig {
    /// Defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: names::DEFAULT_KEY_PREFIX.to_owned(),
            record_ttl: Duration::from_secs(24 * 3600),
            op_timeout: Duration::from_secs(2),
            poll_interval: Duration::from_secs(1),
            pool_size: 16,
            pubsub_ping: Duration::from_secs(10),
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_password(&self.url))
            .field("prefix", &self.prefix)
            .field("record_ttl", &self.record_ttl)
            .field("op_timeout", &self.op_timeout)
            .field("poll_interval", &self.poll_interval)
            .field("pool_size", &self.pool_size)
            .field("pubsub_ping", &self.pubsub_ping)
            .finish()
    }
}
