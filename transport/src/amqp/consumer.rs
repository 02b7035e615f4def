//! Consuming a node queue: survives reconnects, decodes payloads, settles with ack/nack.

use super::AmqpConfig;
use super::bounded::bounded;
use super::link::Link;
use super::topology;
use crate::bus::{BusError, Delivery, Poison, Settle};
use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Acker, Channel};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tether_protocol::{Job, JobId, NodeId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A caller's wish to consume a node queue. Outlives links: after a reconnect the supervisor
/// starts it again, feeding the same `deliveries` channel the caller holds.
#[derive(Debug)]
pub(super) struct ConsumerSpec {
    pub(super) node: NodeId,
    prefetch: u16,
    /// Unique per consumer, so that several consumers of one queue can coexist.
    tag: String,
    deliveries: mpsc::Sender<Delivery>,
    /// Cancelled when the node queue is deleted through this bus: stop for good.
    pub(super) stop: CancellationToken,
}

impl ConsumerSpec {
    pub(super) fn new(
        node: NodeId,
        prefetch: u16,
        tag: String,
        deliveries: mpsc::Sender<Delivery>,
    ) -> Self {
        Self {
            node,
            prefetch: prefetch.max(1),
            tag,
            deliveries,
            stop: CancellationToken::new(),
        }
    }

    /// Whether anyone still wants these deliveries.
    pub(super) fn wanted(&self) -> bool {
        !self.stop.is_cancelled() && !self.deliveries.is_closed()
    }

    /// Open a channel on `link` with the prefetch bound, (re)declare the node queue and
    /// forward its deliveries to the caller.
    pub(super) async fn start(
        &self,
        link: &Arc<Link>,
        config: &AmqpConfig,
    ) -> Result<(), BusError> {
        let limit = config.op_timeout;
        let channel = bounded(limit, "open a channel", link.connection.create_channel()).await?;
        bounded(
            limit,
            "set prefetch",
            channel.basic_qos(self.prefetch, BasicQosOptions::default()),
        )
        .await?;
        topology::declare_node_queue(&channel, config, &self.node).await?;
        let consumer = bounded(
            limit,
            "start consuming",
            channel.basic_consume(
                config.node_queue(&self.node).as_str().into(),
                self.tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        tokio::spawn(forward(Forward {
            consumer,
            channel,
            deliveries: self.deliveries.clone(),
            stop: self.stop.clone(),
            link: Arc::downgrade(link),
            node: self.node.clone(),
            op_timeout: limit,
        }));
        Ok(())
    }
}

/// Everything one forwarding task owns.
struct Forward {
    consumer: lapin::Consumer,
    channel: Channel,
    deliveries: mpsc::Sender<Delivery>,
    stop: CancellationToken,
    link: Weak<Link>,
    node: NodeId,
    op_timeout: Duration,
}

/// Pass deliveries on until the caller stops listening, the queue is deleted through the
/// bus, or the link fails (then the supervisor is told and starts a new forwarder).
async fn forward(mut f: Forward) {
    loop {
        let next = tokio::select! {
            () = f.stop.cancelled() => break,
            () = f.deliveries.closed() => break,
            next = f.consumer.next() => next,
        };
        match next {
            Some(Ok(message)) => {
                let delivery = decode(message, &f.node, f.op_timeout);
                if f.deliveries.send(delivery).await.is_err() {
                    break;
                }
            }
            Some(Err(e)) => {
                tracing::warn!(node_id = %f.node, error = %e, "node queue consumer failed");
                signal_lost(&f.link);
                return;
            }
            None => {
                // The broker cancelled the consumer (queue deleted elsewhere) or the channel
                // closed. A reconnect re-declares the queue and starts consuming again.
                if !f.stop.is_cancelled() {
                    tracing::warn!(node_id = %f.node, "node queue consumer ended");
                    signal_lost(&f.link);
                }
                return;
            }
        }
    }
    // Stopping on purpose: closing the channel hands unsettled deliveries back to the queue.
    let closing = f.channel.close(200, "consumer stopped".into());
    let _ = bounded(f.op_timeout, "close consumer channel", closing).await;
}

fn signal_lost(link: &Weak<Link>) {
    if let Some(link) = link.upgrade() {
        link.lost.notify_one();
    }
}

/// A payload that is not a `Job` is still delivered, as `Err`, so that the worker can
/// reject it to the dead-letter queue instead of it blocking the node queue.
fn decode(message: lapin::message::Delivery, node: &NodeId, op_timeout: Duration) -> Delivery {
    let job = serde_json::from_slice::<Job>(&message.data).map_err(|e| {
        tracing::debug!(node_id = %node, error = %e, "undecodable message on node queue");
        Poison {
            reason: format!("the message is not a job: {e}"),
            job_id: carried_job_id(&message),
        }
    });
    Delivery {
        job,
        settle: Box::new(AmqpSettle {
            acker: message.acker,
            op_timeout,
        }),
    }
}

/// The job id a poison message still carries: the `id` field of a JSON object, else the
/// message id the bus sets on every job it publishes.
fn carried_job_id(message: &lapin::message::Delivery) -> Option<JobId> {
    let from_body = serde_json::from_slice::<serde_json::Value>(&message.data)
        .ok()
        .and_then(|v| v.get("id")?.as_str().and_then(|s| JobId::try_from(s).ok()));
    from_body.or_else(|| {
        let id = message.properties.message_id().as_ref()?;
        JobId::try_from(id.as_str()).ok()
    })
}

/// Settles one delivery on the channel it came from. If that channel died meanwhile the
/// broker has already put the message back, so a failed settle is logged, not reported.
#[derive(Debug)]
struct AmqpSettle {
    acker: Acker,
    op_timeout: Duration,
}

#[async_trait]
impl Settle for AmqpSettle {
    async fn ack(&self) {
        let acking = self.acker.ack(BasicAckOptions::default());
        if let Err(e) = bounded(self.op_timeout, "ack", acking).await {
            tracing::warn!(error = %e, "ack failed; the broker will deliver the job again");
        }
    }

    async fn reject(&self, requeue: bool) {
        let options = BasicNackOptions {
            requeue,
            multiple: false,
        };
        if let Err(e) = bounded(self.op_timeout, "nack", self.acker.nack(options)).await {
            tracing::warn!(error = %e, "reject failed; the broker will deliver the job again");
        }
    }
}
