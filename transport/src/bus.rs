//! The job bus: per-node queues with explicit acknowledgement.

use async_trait::async_trait;
use std::fmt;
use tether_protocol::{Job, JobId, NodeId};
use tokio::sync::mpsc;

/// Why the bus refused or failed an operation.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// No queue exists for the node (the node is gone). The caller re-places the job or
    /// fails it with `session_lost`.
    #[error("no queue for node {0}: the node is gone")]
    Unroutable(NodeId),
    /// The broker is unreachable right now. Transient: the caller answers "retry later".
    #[error("job bus unavailable: {0}")]
    Unavailable(String),
}

/// Settles a delivery. Implemented per bus.
#[async_trait]
pub trait Settle: Send + Sync + std::fmt::Debug {
    /// The job's result is stored; forget the message.
    async fn ack(&self);
    /// The message cannot be processed. `requeue` puts it back (transient failure);
    /// otherwise it goes to the dead-letter queue.
    async fn reject(&self, requeue: bool);
}

/// A message on a node queue that is not a job (a poison message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poison {
    /// Why the payload could not be decoded.
    pub reason: String,
    /// The job id the message still carries (its `id` field or its AMQP message id), if
    /// any, so that the job's record can be failed rather than left queued.
    pub job_id: Option<JobId>,
}

impl fmt::Display for Poison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// One message taken from a node queue. It must be settled exactly once.
#[derive(Debug)]
pub struct Delivery {
    /// The decoded job, or why the payload could not be decoded (a poison message).
    pub job: Result<Job, Poison>,
    /// How to acknowledge or reject this message.
    pub settle: Box<dyn Settle>,
}

/// Per-node job queues. `publish` is confirmed: when it returns `Ok` the job is queued.
#[async_trait]
pub trait JobBus: Send + Sync + 'static {
    /// Queue `job` for `node`. Fails with [`BusError::Unroutable`] when the node has no queue.
    async fn publish(&self, node: &NodeId, job: &Job) -> Result<(), BusError>;

    /// Start consuming the node's queue (creating it if needed). At most `prefetch`
    /// deliveries are outstanding (unsettled) at once.
    async fn consume(
        &self,
        node: &NodeId,
        prefetch: u16,
    ) -> Result<mpsc::Receiver<Delivery>, BusError>;

    /// Remove the node's queue (a node shutting down cleanly). Later publishes are unroutable.
    async fn delete_queue(&self, node: &NodeId) -> Result<(), BusError>;
}
