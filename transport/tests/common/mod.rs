//! Shared set-up for the tests that run against real RabbitMQ and Redis. Each test gets
//! its own name prefix, so tests run in parallel on one broker and one Redis. A service
//! that cannot be reached fails the test with a message saying how to start it.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use std::time::Duration;
use tether_protocol::{NodeId, UserUuid};
use tether_transport::amqp::{AmqpBus, AmqpConfig};
use tether_transport::redis::{RedisConfig, RedisPool};

pub fn amqp_url() -> String {
    std::env::var("TETHER_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

pub fn redis_url() -> String {
    std::env::var("TETHER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A short name no other test run uses: lowercase letters and digits.
pub fn unique() -> String {
    format!("t{}", &UserUuid::random().simple()[..12])
}

pub fn node(name: &str) -> NodeId {
    NodeId::try_from(name).expect("valid node id")
}

/// Bus settings with a fresh prefix and a connection name that identifies the test.
pub fn amqp_config() -> AmqpConfig {
    let name = unique();
    let mut config = AmqpConfig::new(amqp_url());
    config.prefix = format!("{name}.");
    config.connection_name = format!("tether-test-{name}");
    config
}

pub async fn amqp_bus(config: AmqpConfig) -> AmqpBus {
    let url = amqp_url();
    AmqpBus::connect(config).await.unwrap_or_else(|e| {
        panic!(
            "RabbitMQ is not reachable at {url} ({e}). Start it with `rabbitmq-server -detached` \
             or point TETHER_TEST_AMQP_URL at a broker."
        )
    })
}

/// A plain lapin channel, for doing what the bus deliberately cannot (raw payloads, peeking
/// at the dead-letter queue).
pub async fn raw_channel() -> (lapin::Connection, lapin::Channel) {
    let connection =
        lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .expect("raw connection to RabbitMQ");
    let channel = connection.create_channel().await.expect("raw channel");
    (connection, channel)
}

/// Take one message from `queue`, waiting up to `within`.
pub async fn get_one(channel: &lapin::Channel, queue: &str, within: Duration) -> Option<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got = channel
            .basic_get(
                queue.into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .expect("basic.get");
        if let Some(message) = got {
            return Some(message.delivery.data);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Remove what a test declared on the broker (queues are durable and would pile up).
pub async fn remove_topology(config: &AmqpConfig, nodes: &[&NodeId]) {
    let (connection, channel) = raw_channel().await;
    let delete = lapin::options::QueueDeleteOptions::default();
    for node in nodes {
        let _ = channel
            .queue_delete(config.node_queue(node).as_str().into(), delete)
            .await;
    }
    let _ = channel
        .queue_delete(config.dead_letter_queue().as_str().into(), delete)
        .await;
    for exchange in [config.jobs_exchange(), config.dead_letter_exchange()] {
        let _ = channel
            .exchange_delete(exchange.as_str().into(), Default::default())
            .await;
    }
    let _ = connection.close(200, "done".into()).await;
}

/// Store settings with a fresh key prefix.
pub fn redis_config(url: &str) -> RedisConfig {
    let mut config = RedisConfig::new(url);
    config.prefix = format!("{}:", unique());
    config
}

pub async fn redis_pool(config: RedisConfig) -> RedisPool {
    let url = config.url.clone();
    let pool = RedisPool::new(config).expect("valid Redis URL");
    if let Err(e) = pool.ping().await {
        panic!(
            "Redis is not reachable at {url} ({e}). Start it with \
             `redis-server --daemonize yes --save '' --appendonly no` or point \
             TETHER_TEST_REDIS_URL at a server."
        );
    }
    pool
}

/// p50 / p95 / max of a list of durations, for the figures the tests print.
pub fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    format!(
        "n={} p50={:?} p95={:?} max={:?}",
        samples.len(),
        at(0.5),
        at(0.95),
        at(1.0)
    )
}

/// The update that ends a job successfully, with no result.
pub fn finished() -> tether_transport::RecordUpdate {
    tether_transport::RecordUpdate::Finished {
        status: tether_protocol::JobStatus::Succeeded,
        result: None,
        error: None,
        at: tether_protocol::UnixMillis::now(),
    }
}

/// Insert a fresh queued job; returns its id.
pub async fn queued(store: &tether_transport::redis::RedisStore) -> tether_protocol::JobId {
    use tether_transport::JobStore;
    let job = tether_transport::contract::sample_job(UserUuid::random(), 1);
    let id = job.id;
    store
        .insert(&tether_protocol::JobRecord::queued(job, None))
        .await
        .expect("insert");
    id
}
