//! A broker that goes away for a while and comes back, simulated without disturbing the
//! shared RabbitMQ: the bus talks to it through a TCP relay of this test's own, which is
//! torn down (every connection cut, new ones refused) and later started again.

mod common;

use common::{amqp_bus, amqp_config, amqp_url, node, remove_topology};
use std::time::{Duration, Instant};
use tether_protocol::UserUuid;
use tether_transport::contract::sample_job;
use tether_transport::testing::{free_port, relay};
use tether_transport::{BusError, JobBus};

#[tokio::test]
async fn bus_rides_out_a_broker_outage() {
    let mut uri: lapin::uri::AMQPUri = amqp_url().parse().expect("AMQP URL");
    let upstream = format!("{}:{}", uri.authority.host, uri.authority.port);
    let port = free_port();
    uri.authority.host = "127.0.0.1".into();
    uri.authority.port = port;

    let mut relay = relay(port, upstream.clone()).await;
    let mut config = amqp_config();
    config.url = uri.to_string();
    let bus = amqp_bus(config.clone()).await;
    let n = node("outage");
    let mut rx = bus.consume(&n, 4).await.expect("consume");
    let user = UserUuid::random();
    let first = sample_job(user, 1);
    bus.publish(&n, &first).await.expect("publish");
    let d = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("in time")
        .expect("open");
    d.settle.ack().await;

    // Broker gone: every call fails at once while the supervisor keeps retrying.
    relay.abort();
    let down = Instant::now();
    while bus.is_connected() {
        assert!(
            down.elapsed() < Duration::from_secs(10),
            "outage never noticed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = sample_job(user, 2);
    let t = Instant::now();
    assert!(matches!(
        bus.publish(&n, &second).await,
        Err(BusError::Unavailable(_))
    ));
    let refused_in = t.elapsed();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Broker back: the bus reconnects by itself and the same receiver gets new jobs.
    relay = self::relay(port, upstream).await;
    let up = Instant::now();
    loop {
        match bus.publish(&n, &second).await {
            Ok(()) => break,
            Err(BusError::Unavailable(_)) => {
                assert!(
                    up.elapsed() < Duration::from_secs(30),
                    "no reconnect within 30 s"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    let reconnected = up.elapsed();
    let d = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("in time")
        .expect("open");
    assert_eq!(d.job.as_ref().expect("decodes").id, second.id);
    d.settle.ack().await;
    eprintln!(
        "outage: publish refused in {refused_in:?} while down; publishing again \
         {reconnected:?} after the broker came back (down for 1.5 s)"
    );
    bus.close().await;
    relay.abort();
    remove_topology(&config, &[&n]).await;
}
