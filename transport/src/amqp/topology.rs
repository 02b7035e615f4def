//! The exchanges and queues the bus relies on, declared idempotently on every (re)connect.
//!
//! ```text
//! {prefix}tether.jobs  (direct) ──routing key = node id──▶ {prefix}tether.node.{id}
//!                                                              │ rejected / expired
//! {prefix}tether.dlx   (fanout) ◀──────────────────────────────┘
//!        └──▶ {prefix}tether.dead
//! ```

use super::AmqpConfig;
use super::bounded::bounded;
use crate::bus::BusError;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};
use tether_protocol::NodeId;

/// Declare the jobs exchange and the dead-letter exchange and queue.
pub(super) async fn declare_shared(channel: &Channel, config: &AmqpConfig) -> Result<(), BusError> {
    let limit = config.op_timeout;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let dlx = config.dead_letter_exchange();
    let dead = config.dead_letter_queue();
    bounded(
        limit,
        "declare dead-letter exchange",
        channel.exchange_declare(
            dlx.as_str().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        ),
    )
    .await?;
    bounded(
        limit,
        "declare dead-letter queue",
        channel.queue_declare(
            dead.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        ),
    )
    .await?;
    bounded(
        limit,
        "bind dead-letter queue",
        channel.queue_bind(
            dead.as_str().into(),
            dlx.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await?;
    bounded(
        limit,
        "declare jobs exchange",
        channel.exchange_declare(
            config.jobs_exchange().as_str().into(),
            ExchangeKind::Direct,
            durable,
            FieldTable::default(),
        ),
    )
    .await
}

/// Declare node `node`'s durable queue (dead-lettering to the DLX) and bind it to the jobs
/// exchange with the node id as routing key.
pub(super) async fn declare_node_queue(
    channel: &Channel,
    config: &AmqpConfig,
    node: &NodeId,
) -> Result<(), BusError> {
    let limit = config.op_timeout;
    let queue = config.node_queue(node);
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(config.dead_letter_exchange().as_str().into()),
    );
    bounded(
        limit,
        "declare node queue",
        channel.queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
        ),
    )
    .await?;
    bounded(
        limit,
        "bind node queue",
        channel.queue_bind(
            queue.as_str().into(),
            config.jobs_exchange().as_str().into(),
            node.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
}
