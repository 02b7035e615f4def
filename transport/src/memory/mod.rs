//! In-process implementations of the bus, store and registry, for `tether serve` (one
//! process, no broker) and for unit tests. Same contracts as the RabbitMQ/Redis versions.

mod bus;
mod outbox;
mod registry;
mod store;

pub use bus::MemoryBus;
pub use registry::MemoryRegistry;
pub use store::MemoryStore;
