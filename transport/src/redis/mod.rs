//! The result store and the session registry over Redis (deadpool-redis).
//!
//! - [`config`]: [`RedisConfig`], the URL, key prefix, TTL and time limits.
//! - `pool`: [`RedisPool`], bounded connection checkout and commands, shared by both.
//! - `scripts`: the Lua scripts behind every atomic multi-step change.
//! - `wakeup`: one pub/sub connection per store, fanned out to waiting tasks.
//! - `store`: [`RedisStore`], the [`JobStore`](crate::JobStore) implementation; its
//!   session index and idempotency keys in `session_index`, its webhook outbox in `outbox`.
//! - `registry`: [`RedisRegistry`], the [`SessionRegistry`](crate::SessionRegistry) one.
//!
//! Scripts touch several keys of one job or deployment, so this targets a single Redis
//! server (or a primary with replicas), not Redis Cluster.

pub mod config;
mod outbox;
mod pool;
mod registry;
mod scripts;
mod session_index;
mod store;
mod wakeup;

pub use config::RedisConfig;
pub use pool::RedisPool;
pub use registry::RedisRegistry;
pub use store::RedisStore;
