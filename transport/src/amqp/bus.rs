//! [`AmqpBus`]: the [`JobBus`] over RabbitMQ (ARCHITECTURE decision 2).

use super::AmqpConfig;
use super::bounded::bounded;
use super::consumer::ConsumerSpec;
use super::link::Link;
use super::supervisor::supervise;
use crate::bus::{BusError, Delivery, JobBus};
use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, QueueDeleteOptions};
use lapin::{BasicProperties, Confirmation};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tether_protocol::{Job, NodeId};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::{CancellationToken, DropGuard};

/// Per-node job queues on RabbitMQ.
///
/// - Publishing is persistent, `mandatory` and confirmed: `Ok` means the broker has the job
///   in the node's queue; a node without a queue gives [`BusError::Unroutable`].
/// - Each job expires after [`AmqpConfig::job_expiry`] in the queue and is then
///   dead-lettered, like a job rejected without requeue.
/// - A supervisor task reconnects with exponential backoff and resumes every consumer into
///   the receiver its caller already holds. While disconnected, calls fail at once with
///   [`BusError::Unavailable`]; every broker call is bounded by [`AmqpConfig::op_timeout`].
/// - Delivery is at least once: a job being processed when the connection drops is
///   delivered again after the reconnect (its old settle then fails harmlessly), so the
///   consumer must recognise a job it has already run.
///
/// Cloning shares the connection; dropping the last clone closes it.
#[derive(Debug, Clone)]
pub struct AmqpBus {
    shared: Arc<Shared>,
    /// Stops the supervisor when the last clone goes.
    _stop_on_drop: Arc<DropGuard>,
}

/// State shared by the bus handles, the supervisor and the consumers.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) config: AmqpConfig,
    /// The current healthy link, if any.
    pub(super) link: watch::Sender<Option<Arc<Link>>>,
    /// Every consumer a caller asked for, restarted after each reconnect.
    pub(super) consumers: tokio::sync::Mutex<Vec<ConsumerSpec>>,
    /// Why the last connection attempt failed, for the `Unavailable` message.
    last_error: Mutex<String>,
    /// Counts failed connection attempts, so that `connect` can give up after the first.
    failed_attempts: watch::Sender<u64>,
    pub(super) shutdown: CancellationToken,
    /// Numbers consumer tags.
    consumer_count: AtomicU64,
}

impl Shared {
    pub(super) fn set_last_error(&self, e: &BusError) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = match e {
            BusError::Unavailable(why) => why.clone(),
            other => other.to_string(),
        };
    }

    /// A connection attempt failed with `e`.
    pub(super) fn attempt_failed(&self, e: &BusError) {
        self.set_last_error(e);
        self.failed_attempts.send_modify(|n| *n += 1);
    }

    /// The link to use now, or `Unavailable` without waiting.
    fn current_link(&self) -> Result<Arc<Link>, BusError> {
        match self.link.borrow().as_ref() {
            Some(link) if link.is_up() => Ok(link.clone()),
            _ => {
                let why = self
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                Err(BusError::Unavailable(format!(
                    "not connected to the broker ({why})"
                )))
            }
        }
    }
}

impl AmqpBus {
    /// Start connecting in the background and return at once; calls fail with
    /// `Unavailable` until the first connection is up. Must run inside a Tokio runtime.
    pub fn start(config: AmqpConfig) -> Self {
        let shutdown = CancellationToken::new();
        let shared = Arc::new(Shared {
            config,
            link: watch::Sender::new(None),
            consumers: tokio::sync::Mutex::new(Vec::new()),
            last_error: Mutex::new("connecting".to_owned()),
            failed_attempts: watch::Sender::new(0),
            shutdown: shutdown.clone(),
            consumer_count: AtomicU64::new(0),
        });
        tokio::spawn(supervise(shared.clone()));
        Self {
            shared,
            _stop_on_drop: Arc::new(shutdown.drop_guard()),
        }
    }

    /// Start, then wait for the first connection attempt: `Ok` once connected, the
    /// attempt's error if it failed. Afterwards the bus behaves as one from [`Self::start`].
    pub async fn connect(config: AmqpConfig) -> Result<Self, BusError> {
        let bus = Self::start(config);
        let mut link = bus.shared.link.subscribe();
        let mut failures = bus.shared.failed_attempts.subscribe();
        tokio::select! {
            _ = link.wait_for(Option::is_some) => {}
            _ = failures.wait_for(|n| *n > 0) => {}
        }
        bus.shared.current_link().map(|_| bus)
    }

    /// Whether the bus is connected right now.
    pub fn is_connected(&self) -> bool {
        self.shared.current_link().is_ok()
    }

    /// The settings this bus runs with.
    pub fn config(&self) -> &AmqpConfig {
        &self.shared.config
    }

    /// Stop reconnecting and close the connection; unsettled deliveries go back to their
    /// queues.
    pub async fn close(&self) {
        self.shared.shutdown.cancel();
        let link = self.shared.link.send_replace(None);
        if let Some(link) = link {
            link.close(&self.shared.config).await;
        }
    }
}

#[async_trait]
impl JobBus for AmqpBus {
    async fn publish(&self, node: &NodeId, job: &Job) -> Result<(), BusError> {
        let config = &self.shared.config;
        let link = self.shared.current_link()?;
        let payload = serde_json::to_vec(job).expect("a Job always encodes as JSON");
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_expiration(config.job_expiry.as_millis().to_string().as_str().into())
            .with_message_id(job.id.to_string().as_str().into());
        let mandatory = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let exchange = config.jobs_exchange();
        let confirmed = bounded(config.op_timeout, "publish", async {
            link.publisher
                .basic_publish(
                    exchange.as_str().into(),
                    node.as_str().into(),
                    mandatory,
                    &payload,
                    properties,
                )
                .await?
                .await
        })
        .await;
        match confirmed {
            Ok(Confirmation::Ack(None)) => Ok(()),
            Ok(Confirmation::Ack(Some(_returned))) => Err(BusError::Unroutable(node.clone())),
            Ok(Confirmation::Nack(_)) => Err(BusError::Unavailable(
                "the broker refused the job (negative confirm)".into(),
            )),
            Ok(Confirmation::NotRequested) => Err(BusError::Unavailable(
                "publisher confirms are off on this channel".into(),
            )),
            Err(e) => {
                if !link.is_up() {
                    link.lost.notify_one();
                }
                Err(e)
            }
        }
    }

    async fn consume(
        &self,
        node: &NodeId,
        prefetch: u16,
    ) -> Result<mpsc::Receiver<Delivery>, BusError> {
        let prefetch = prefetch.max(1);
        let (tx, rx) = mpsc::channel(usize::from(prefetch));
        let n = self.shared.consumer_count.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}.{node}.{n}", self.shared.config.connection_name);
        let spec = ConsumerSpec::new(node.clone(), prefetch, tag, tx);
        let mut consumers = self.shared.consumers.lock().await;
        let link = self.shared.current_link()?;
        spec.start(&link, &self.shared.config).await?;
        consumers.push(spec);
        Ok(rx)
    }

    async fn delete_queue(&self, node: &NodeId) -> Result<(), BusError> {
        let config = &self.shared.config;
        {
            let mut consumers = self.shared.consumers.lock().await;
            for consumer in consumers.iter().filter(|c| &c.node == node) {
                consumer.stop.cancel();
            }
            consumers.retain(|c| &c.node != node);
        }
        let link = self.shared.current_link()?;
        let limit = config.op_timeout;
        let channel = bounded(limit, "open a channel", link.connection.create_channel()).await?;
        let queue = config.node_queue(node);
        let deleted = bounded(
            limit,
            "delete node queue",
            channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()),
        )
        .await;
        let _ = bounded(limit, "close channel", channel.close(200, "done".into())).await;
        deleted.map(|_| ())
    }
}
