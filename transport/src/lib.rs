//! How jobs travel and where their records live.
//!
//! - [`bus`]: the [`JobBus`] contract — publish a job to a node's queue, consume a node's queue
//!   with explicit acknowledgement.
//! - [`store`]: the [`JobStore`] contract — job records with forward-only status transitions,
//!   per-job event logs, waiting for completion.
//! - [`registry`]: the [`SessionRegistry`] contract — live nodes and the session → node table.
//! - [`memory`]: in-process implementations used by `tether serve` and unit tests.
//! - [`contract`]: the behaviour every implementation must show, as reusable async checks
//!   that the test suites of each implementation call.

pub mod bus;
pub mod contract;
pub mod memory;
pub mod registry;
pub mod store;

pub use bus::{BusError, Delivery, JobBus};
pub use registry::{NodeInfo, RegistryError, SessionRegistry};
pub use store::{JobStore, RecordUpdate, StoreError, UpdateOutcome};
