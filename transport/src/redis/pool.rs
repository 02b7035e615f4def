//! Bounded access to Redis: every connection checkout and command has a deadline, and
//! failures become the transient "unavailable" or the permanent "corrupt".
//!
//! Calls share one connection taken from the pool. Its connections are multiplexed
//! (redis-rs pipelines concurrent commands on one socket), so sharing costs nothing, while
//! a checkout per call costs a round trip: deadpool-redis health-checks every checkout
//! with `UNWATCH` + `PING`, which was more than half of the Redis round trips of a job.
//! The shared connection goes back to the pool after any transport failure, so the next
//! call takes a health-checked (or new) one.

use super::RedisConfig;
use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::{self, AsyncConnectionConfig, RedisError};
use deadpool_redis::{Connection, Manager, Pool, Runtime};
use std::future::Future;
use std::sync::{Arc, Mutex};

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
    /// The checked-out connection every call shares until a failure hands it back.
    shared: Arc<Mutex<Option<Arc<Connection>>>>,
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
            shared: Arc::default(),
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

    /// A handle on the shared connection (taken from the pool if there is none), or
    /// `Unavailable` within the time limit.
    pub(crate) async fn conn(&self) -> Result<MultiplexedConnection, Failure> {
        if let Some(shared) = self.shared_slot().as_ref() {
            return Ok(MultiplexedConnection::clone(shared));
        }
        let limit = self.config.op_timeout;
        let pooled = match tokio::time::timeout(limit, self.pool.get()).await {
            Ok(Ok(conn)) => Arc::new(conn),
            Ok(Err(e)) => return Err(Failure::Unavailable(format!("Redis: {e}"))),
            Err(_) => {
                return Err(Failure::Unavailable(format!(
                    "Redis: no connection within {limit:?}"
                )));
            }
        };
        let conn = MultiplexedConnection::clone(&pooled);
        // Two callers may race here; the loser's connection simply goes back to the pool.
        *self.shared_slot() = Some(pooled);
        Ok(conn)
    }

    /// Hand the shared connection back to the pool (which health-checks it before its
    /// next use): after a failure it may be broken.
    fn release_shared(&self) {
        self.shared_slot().take();
    }

    fn shared_slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<Connection>>> {
        // Holds no invariant a panic could break: a poisoned slot is still usable.
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
            Ok(Err(e)) => {
                self.release_shared();
                Err(Failure::Unavailable(format!("Redis: {e}")))
            }
            Err(_) => {
                self.release_shared();
                Err(Failure::Unavailable(format!(
                    "Redis: no answer within {limit:?}"
                )))
            }
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
