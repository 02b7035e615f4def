//! Placement and routing of jobs (ARCHITECTURE decisions 1 and 2).
//!
//! - [`Dispatcher`]: the one entry point roles call — `submit` a job for a session and get
//!   back its queued record; the worker-host that owns the session does the rest.
//! - [`cancel`]: stopping a queued or running job ([`Cancellation`]).
//! - `node_for`: the node holding a session, for direct file transfer.
//! - [`placement`]: choosing the node a new session lives on.
//! - [`node_report`]: the figures a node reports in its heartbeat, read in one place.
//! - [`node_watch`]: the background duty that finds dead nodes and fails their jobs.
//! - [`error`]: [`DispatchError`], which says whether the caller should retry.
//! - [`webhook`]: delivering finished jobs to their `callback_url` — signed, retried with
//!   backoff, driven from the store's outbox, refused for internal addresses.
//!
//! The dispatcher holds no state of its own: the session → node table lives in the
//! [`SessionRegistry`], records in the [`JobStore`], queues in the [`JobBus`]. Any number of
//! API replicas can therefore dispatch at once.

pub mod cancel;
pub mod error;
mod locate;
pub mod node_report;
pub mod node_watch;
pub mod placement;
mod submit;
pub mod webhook;

pub use cancel::Cancellation;
pub use error::DispatchError;
pub use node_report::NodeReport;
pub use node_watch::{NodeLoss, NodeWatchConfig};

use std::sync::Arc;
use tether_transport::{JobBus, JobStore, SessionRegistry};

/// Routes jobs to the node that owns their session. Cheap to clone (three `Arc`s).
#[derive(Clone)]
pub struct Dispatcher {
    bus: Arc<dyn JobBus>,
    store: Arc<dyn JobStore>,
    registry: Arc<dyn SessionRegistry>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// A dispatcher over the given bus, store and registry (in-memory or RabbitMQ/Redis).
    pub fn new(
        bus: Arc<dyn JobBus>,
        store: Arc<dyn JobStore>,
        registry: Arc<dyn SessionRegistry>,
    ) -> Self {
        Self {
            bus,
            store,
            registry,
        }
    }

    /// The result store the dispatcher writes records to (readers wait on it).
    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.store
    }

    /// The registry of live nodes and session bindings.
    pub fn registry(&self) -> &Arc<dyn SessionRegistry> {
        &self.registry
    }
}
