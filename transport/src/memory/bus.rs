//! Tokio channels standing in for per-node queues.

use crate::bus::{BusError, Delivery, JobBus, Settle};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tether_protocol::{Job, NodeId};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

type Queue = mpsc::UnboundedSender<Job>;

/// A bus whose queues live in this process. Jobs survive nothing but are never dropped
/// while the process lives: rejected-with-requeue jobs go back to their queue, rejected
/// ones to [`MemoryBus::dead_letters`].
#[derive(Debug, Clone, Default)]
pub struct MemoryBus {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    queues: Mutex<HashMap<NodeId, Queue>>,
    dead: Mutex<Vec<Job>>,
}

impl MemoryBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Jobs rejected without requeue, oldest first.
    pub fn dead_letters(&self) -> Vec<Job> {
        self.inner
            .dead
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl JobBus for MemoryBus {
    async fn publish(&self, node: &NodeId, job: &Job) -> Result<(), BusError> {
        let queues = self
            .inner
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let queue = queues
            .get(node)
            .ok_or_else(|| BusError::Unroutable(node.clone()))?;
        queue
            .send(job.clone())
            .map_err(|_| BusError::Unroutable(node.clone()))
    }

    async fn consume(
        &self,
        node: &NodeId,
        prefetch: u16,
    ) -> Result<mpsc::Receiver<Delivery>, BusError> {
        let (queue_tx, mut queue_rx) = mpsc::unbounded_channel::<Job>();
        self.inner
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(node.clone(), queue_tx.clone());
        let permits = Arc::new(Semaphore::new(usize::from(prefetch.max(1))));
        let (tx, rx) = mpsc::channel(usize::from(prefetch.max(1)));
        let inner = self.inner.clone();
        tokio::spawn(async move {
            while let Some(job) = queue_rx.recv().await {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let settle = MemorySettle {
                    job: job.clone(),
                    requeue_to: queue_tx.downgrade(),
                    inner: inner.clone(),
                    _permit: permit,
                };
                let delivery = Delivery {
                    job: Ok(job),
                    settle: Box::new(settle),
                };
                if tx.send(delivery).await.is_err() {
                    break;
                }
            }
        });
        Ok(rx)
    }

    async fn delete_queue(&self, node: &NodeId) -> Result<(), BusError> {
        self.inner
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(node);
        Ok(())
    }
}

#[derive(Debug)]
struct MemorySettle {
    job: Job,
    requeue_to: mpsc::WeakUnboundedSender<Job>,
    inner: Arc<Inner>,
    /// Held until the delivery is settled, bounding unsettled deliveries to `prefetch`.
    _permit: OwnedSemaphorePermit,
}

#[async_trait]
impl Settle for MemorySettle {
    async fn ack(&self) {}

    async fn reject(&self, requeue: bool) {
        if requeue
            && let Some(queue) = self.requeue_to.upgrade()
            && queue.send(self.job.clone()).is_ok()
        {
            return;
        }
        self.inner
            .dead
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(self.job.clone());
    }
}
