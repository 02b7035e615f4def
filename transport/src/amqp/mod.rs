//! The job bus over RabbitMQ (lapin).
//!
//! - [`config`]: [`AmqpConfig`], the URL, name prefix, expiry and time limits.
//! - `topology`: the exchanges and queues, declared on every (re)connect.
//! - `link`: one live connection and its confirm-mode publishing channel.
//! - `supervisor`: reconnects with backoff and restarts consumers.
//! - `consumer`: forwards a node queue's messages as [`Delivery`](crate::Delivery)s.
//! - `bus`: [`AmqpBus`], the [`JobBus`](crate::JobBus) implementation.

mod bounded;
mod bus;
pub mod config;
mod consumer;
mod link;
mod supervisor;
mod topology;

pub use bus::AmqpBus;
pub use config::AmqpConfig;
