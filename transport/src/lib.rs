//! How jobs travel and where their records live.
//!
//! - [`bus`]: the [`JobBus`] contract — publish a job to a node's queue, consume a node's queue
//!   with explicit acknowledgement.
//! - [`store`]: the [`JobStore`] contract — job records with forward-only status transitions,
//!   per-job event logs, waiting for completion.
//! - [`outbox`]: the webhook deliveries the store queues and delivery loops claim.
//! - [`registry`]: the [`SessionRegistry`] contract — live nodes and the session → node table.
//! - [`memory`]: in-process implementations used by `tether serve` and unit tests.
//! - [`amqp`]: the bus over RabbitMQ; [`redis`]: the store and registry over Redis.
//! - [`internal_token`]: the secret API replicas present to worker-hosts' file endpoints.
//! - [`contract`]: the behaviour every implementation must show, as reusable async checks
//!   that the test suites of each implementation call.

pub mod amqp;
pub mod bus;
#[expect(
    clippy::unwrap_used,
    reason = "contract checks are test assertions: a broken promise must panic"
)]
pub mod contract;
pub mod internal_token;
pub mod memory;
pub mod outbox;
pub mod redis;
pub mod registry;
mod secret_url;
pub mod store;
pub mod testing;

pub use bus::{BusError, Delivery, JobBus, Poison};
pub use internal_token::{BadInternalToken, INTERNAL_TOKEN_HEADER, InternalToken};
pub use outbox::{ClaimedDelivery, DeliveryClaim, DeliveryNext};
pub use registry::{Candidate, NodeInfo, RegistryError, SessionRegistry};
pub use store::{IdempotencyEntry, JobStore, RecordUpdate, StoreError, UpdateOutcome};
