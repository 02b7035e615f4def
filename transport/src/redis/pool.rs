//! Bounded access to Redis: every connection checkout and command has a deadline, and
//! failures become the transient "unavailable" or the permanent "corrupt".

use super::RedisConfig;
use deadpool_redis::redis::{self, AsyncConnectionConfig, RedisError};
use deadpool_redis::{Manager, Pool, Runtime};
use std::future::Future;
use std::sync::Arc;

/// Why a Redis operation failed, before it is mapped into a store or registry error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// Redis is unreachable or too slow; transient.
    #[error("{0}")]
    Unavailable(String),
    /// A value is not what we wrote; a bug or a foreign writer.
    #[error("{0}")]
    Corrupt(String),
}

impl From<Failure> for crate::StoreError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Unavailable(m) => Self::Unavailable(m),
            Failure::Corrupt(m) => Self::Corrupt(m),
        }
    }
}

impl From<Failure> for crate::RegistryError {
    fn from(f: Failure) -> Self {
        Self::Unavailable(f.to_string())
    }
}

/// A connection pool plus the client for pub/sub, with the settings; cheap to clone and
/// shared by a store and a registry.
#[derive(Clone)]
pub struct RedisPool {
    pool: Pool,
    /// Opens the dedicated pub/sub connection (pools hold multiplexed connections only).
    pub(crate) client: redis::Client,
    pub(crate) config: Arc<RedisConfig>,
}

impl std::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPool")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RedisPool {
    /// Prepare a pool; no connection is made until the first command. Fails only on a
    /// malformed URL.
    pub fn new(config: RedisConfig) -> Result<Self, crate::StoreError> {
        let limit = Some(config.op_timeout);
        let connection = AsyncConnectionConfig::new()
            .set_connection_timeout(limit)
            .set_response_timeout(limit);
        let bad_url = |e: RedisError| crate::StoreError::Unavailable(format!("bad Redis URL: {e}"));
        let manager = Manager::new_with_config(config.url.as_str(), connection).map_err(bad_url)?;
        let client = redis::Client::open(config.url.as_str()).map_err(bad_url)?;
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .wait_timeout(limit)
            .create_timeout(limit)
            .recycle_timeout(limit)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| crate::StoreError::Unavailable(format!("Redis pool: {e}")))?;
        Ok(Self {
            pool,
            client,
            config: Arc::new(config),
        })
    }

    /// The settings.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// Round-trip a PING: for start-up checks and readiness probes.
    pub async fn ping(&self) -> Result<(), crate::StoreError> {
        let mut conn = self.conn().await?;
        let pong: String = self
            .bounded(redis::cmd("PING").query_async(&mut conn))
            .await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(crate::StoreError::Unavailable(format!(
                "PING answered {pong}"
            )))
        }
    }

    /// A pooled connection, or `Unavailable` within the time limit.
    pub(crate) async fn conn(&self) -> Result<deadpool_redis::Connection, Failure> {
        let limit = self.config.op_timeout;
        match tokio::time::timeout(limit, self.pool.get()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(Failure::Unavailable(format!("Redis: {e}"))),
            Err(_) => Err(Failure::Unavailable(format!(
                "Redis: no connection within {limit:?}"
            ))),
        }
    }

    /// Run one command (or script, or pipeline) with the time limit.
    pub(crate) async fn bounded<T>(
        &self,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Failure> {
        let limit = self.config.op_timeout;
        match tokio::time::timeout(limit, command).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if e.kind() == redis::ErrorKind::UnexpectedReturnType => {
                Err(Failure::Corrupt(format!("Redis: {e}")))
            }
            Ok(Err(e)) => Err(Failure::Unavailable(format!("Redis: {e}"))),
            Err(_) => Err(Failure::Unavailable(format!(
                "Redis: no answer within {limit:?}"
            ))),
        }
    }

    /// A key or channel name under this deployment's prefix.
    pub(crate) fn prefix(&self) -> &str {
        &self.config.prefix
    }
}

/// Decode a JSON value we stored.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T, Failure> {
    serde_json::from_str(json).map_err(|e| Failure::Corrupt(format!("{what}: {e}")))
}
