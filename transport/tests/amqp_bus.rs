//! The bus contract and the broker-specific promises, against a real RabbitMQ
//! (`TETHER_TEST_AMQP_URL`, default amqp://guest:guest@127.0.0.1:5672/%2f).

mod common;

use common::{amqp_bus, amqp_config, get_one, node, percentiles, raw_channel, remove_topology};
use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use std::time::{Duration, Instant};
use tether_protocol::{Job, UserUuid};
use tether_transport::amqp::{AmqpBus, AmqpConfig};
use tether_transport::contract::{self, sample_job};
use tether_transport::{BusError, Delivery, JobBus};
use tokio::sync::mpsc;

async fn next(rx: &mut mpsc::Receiver<Delivery>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a delivery within 10 s")
        .expect("consumer still open")
}

#[tokio::test]
async fn bus_contract() {
    let config = amqp_config();
    let bus = amqp_bus(config.clone()).await;
    contract::bus_delivers_in_order_and_requeues(&bus, "bus").await;
    remove_topology(&config, &[&node("bus")]).await;
}

#[tokio::test]
async fn publishing_to_a_deleted_node_queue_is_unroutable() {
    let config = amqp_config();
    let bus = amqp_bus(config.clone()).await;
    let n = node("leaving");
    let mut rx = bus.consume(&n, 4).await.expect("consume");
    let job = sample_job(UserUuid::random(), 1);
    bus.publish(&n, &job).await.expect("queue exists: routable");
    next(&mut rx).await.settle.ack().await;

    bus.delete_queue(&n).await.expect("delete queue");
    let second = sample_job(UserUuid::random(), 1);
    match bus.publish(&n, &second).await {
        Err(BusError::Unroutable(gone)) => assert_eq!(gone, n),
        other => panic!("expected Unroutable, got {other:?}"),
    }
    // The consumer of a deleted queue ends instead of waiting forever.
    let ended = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
    assert!(matches!(ended, Ok(None)), "receiver should close");
    remove_topology(&config, &[]).await;
}

#[tokio::test]
async fn poison_message_is_delivered_as_error_and_dead_lettered() {
    let config = amqp_config();
    let bus = amqp_bus(config.clone()).await;
    let n = node("poisoned");
    let mut rx = bus.consume(&n, 4).await.expect("consume");

    let (connection, raw) = raw_channel().await;
    let poison = b"{\"this is\": \"not a job\"}";
    raw.basic_publish(
        config.jobs_exchange().as_str().into(),
        n.as_str().into(),
        BasicPublishOptions::default(),
        poison,
        BasicProperties::default(),
    )
    .await
    .expect("raw publish");

    let delivery = next(&mut rx).await;
    let decoded = delivery.job.as_ref().expect_err("poison must not decode");
    assert!(decoded.reason.contains("not a job"), "{decoded}");
    assert_eq!(decoded.job_id, None);
    delivery.settle.reject(false).await;

    let dead = get_one(&raw, &config.dead_letter_queue(), Duration::from_secs(10)).await;
    assert_eq!(dead.as_deref(), Some(&poison[..]), "poison reached the DLQ");

    // A poison message that still names its job says which one, so its record can fail.
    let id = tether_protocol::JobId::new();
    let named = serde_json::json!({ "id": id.to_string(), "kind": 7 }).to_string();
    raw.basic_publish(
        config.jobs_exchange().as_str().into(),
        n.as_str().into(),
        BasicPublishOptions::default(),
        named.as_bytes(),
        BasicProperties::default(),
    )
    .await
    .expect("raw publish");
    let delivery = next(&mut rx).await;
    let decoded = delivery.job.as_ref().expect_err("poison must not decode");
    assert_eq!(decoded.job_id, Some(id));
    delivery.settle.reject(false).await;
    let dead = get_one(&raw, &config.dead_letter_queue(), Duration::from_secs(10)).await;
    assert_eq!(
        dead.as_deref(),
        Some(named.as_bytes()),
        "poison reached the DLQ"
    );

    // The queue keeps flowing after the poison.
    let job = sample_job(UserUuid::random(), 1);
    bus.publish(&n, &job).await.expect("publish");
    let d = next(&mut rx).await;
    assert_eq!(d.job.as_ref().expect("decodes").id, job.id);
    d.settle.ack().await;

    let _ = connection.close(200, "done".into()).await;
    remove_topology(&config, &[&n]).await;
}

#[tokio::test]
async fn job_nobody_takes_expires_into_the_dead_letter_queue() {
    let mut config = amqp_config();
    config.job_expiry = Duration::from_millis(300);
    let bus = amqp_bus(config.clone()).await;
    let n = node("idle");
    // Create the queue, then stop consuming: the queue stays, nobody reads it.
    drop(bus.consume(&n, 1).await.expect("consume"));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let job = sample_job(UserUuid::random(), 1);
    bus.publish(&n, &job).await.expect("publish");
    let (connection, raw) = raw_channel().await;
    let dead = get_one(&raw, &config.dead_letter_queue(), Duration::from_secs(10))
        .await
        .expect("expired job in the DLQ");
    let dead: Job = serde_json::from_slice(&dead).expect("the dead letter is the job");
    assert_eq!(dead.id, job.id);
    assert!(
        get_one(&raw, &config.node_queue(&n), Duration::ZERO)
            .await
            .is_none()
    );
    let _ = connection.close(200, "done".into()).await;
    remove_topology(&config, &[&n]).await;
}

#[tokio::test]
async fn broker_unreachable_fails_fast() {
    let mut config = AmqpConfig::new("amqp://guest:guest@127.0.0.1:1/%2f");
    config.op_timeout = Duration::from_secs(5);
    let started = Instant::now();
    let err = AmqpBus::connect(config.clone())
        .await
        .expect_err("nothing listens on port 1");
    assert!(matches!(err, BusError::Unavailable(_)), "{err:?}");

    let bus = AmqpBus::start(config);
    let n = node("nowhere");
    let err = bus
        .publish(&n, &sample_job(UserUuid::random(), 1))
        .await
        .expect_err("no broker");
    assert!(matches!(err, BusError::Unavailable(_)), "{err:?}");
    assert!(matches!(
        bus.consume(&n, 1).await,
        Err(BusError::Unavailable(_))
    ));
    let took = started.elapsed();
    eprintln!("unreachable broker: connect + publish + consume failed in {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "should not wait for a timeout: {took:?}"
    );
}

/// Close the bus's connection from the broker side and check it comes back by itself:
/// the same receiver keeps getting jobs, publishing works again, and a job that was being
/// processed when the connection dropped is delivered again (at least once).
#[tokio::test]
async fn reconnects_after_the_broker_closes_the_connection() {
    let config = amqp_config();
    let bus = amqp_bus(config.clone()).await;
    let n = node("resilient");
    let mut rx = bus.consume(&n, 4).await.expect("consume");
    let user = UserUuid::random();
    let held = sample_job(user, 1);
    bus.publish(&n, &held).await.expect("publish");
    let in_progress = next(&mut rx).await;

    close_connection_named(&config.connection_name);
    let closed = Instant::now();
    while bus.is_connected() {
        assert!(
            closed.elapsed() < Duration::from_secs(10),
            "close never noticed"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let noticed = closed.elapsed();
    let mut refused = 0;
    let after = sample_job(user, 2);
    loop {
        match bus.publish(&n, &after).await {
            Ok(()) => break,
            Err(BusError::Unavailable(_)) => refused += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
        assert!(
            closed.elapsed() < Duration::from_secs(30),
            "no reconnect within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let published = closed.elapsed();

    // The caller's receiver gets, from the new connection, the job it had not settled
    // (redelivered) and the new one.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let d = next(&mut rx).await;
        ids.push(d.job.as_ref().expect("decodes").id);
        d.settle.ack().await;
    }
    ids.sort();
    let mut expected = vec![held.id, after.id];
    expected.sort();
    assert_eq!(ids, expected);
    // Settling on the dead channel is harmless (logged, not an error).
    in_progress.settle.ack().await;
    eprintln!(
        "reconnect: drop noticed after {noticed:?}, publish accepted again after \
         {published:?} ({refused} publishes refused fast meanwhile)"
    );
    remove_topology(&config, &[&n]).await;
}

/// Not a benchmark: prints the publish → delivery latency seen on this machine.
#[tokio::test]
async fn round_trip_latency_figures() {
    let config = amqp_config();
    let bus = amqp_bus(config.clone()).await;
    let n = node("latency");
    let mut rx = bus.consume(&n, 16).await.expect("consume");
    let user = UserUuid::random();
    let mut publish = Vec::new();
    let mut round_trip = Vec::new();
    for seq in 1..=200 {
        let job = sample_job(user, seq);
        let start = Instant::now();
        bus.publish(&n, &job).await.expect("publish");
        publish.push(start.elapsed());
        let d = next(&mut rx).await;
        round_trip.push(start.elapsed());
        assert_eq!(d.job.as_ref().expect("decodes").id, job.id);
        d.settle.ack().await;
    }
    eprintln!("amqp publish (confirmed): {}", percentiles(publish));
    eprintln!("amqp publish → delivery: {}", percentiles(round_trip));
    remove_topology(&config, &[&n]).await;
}

/// `rabbitmqctl close_connection` for the connection with this client-provided name.
fn close_connection_named(name: &str) {
    let listed = std::process::Command::new("rabbitmqctl")
        .args([
            "-q",
            "list_connections",
            "--no-table-headers",
            "pid",
            "client_properties",
        ])
        .output()
        .expect("rabbitmqctl must be installed to force-close a connection");
    let listed = String::from_utf8_lossy(&listed.stdout);
    let pid = listed
        .lines()
        .find(|line| line.contains(name))
        .and_then(|line| line.split('\t').next())
        .unwrap_or_else(|| panic!("no connection named {name} in:\n{listed}"))
        .trim()
        .to_owned();
    let status = std::process::Command::new("rabbitmqctl")
        .args(["-q", "close_connection", &pid, "tether test: forced close"])
        .status()
        .expect("rabbitmqctl close_connection");
    assert!(status.success(), "rabbitmqctl close_connection failed");
}
