//! The store contract and the Redis-specific promises of the store, against a real Redis
//! (`TETHER_TEST_REDIS_URL`, default redis://127.0.0.1:6379).

mod common;

use common::{finished, percentiles, queued, redis_config, redis_pool, redis_url};
use deadpool_redis::redis;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tether_protocol::{JobRecord, JobStatus, NodeId, UnixMillis, UserUuid};
use tether_transport::contract::{self, sample_job};
use tether_transport::redis::RedisStore;
use tether_transport::{JobStore, RecordUpdate, UpdateOutcome};

#[tokio::test]
async fn store_contract() {
    let pool = redis_pool(redis_config(&redis_url())).await;
    contract::store_contract(Arc::new(RedisStore::new(pool))).await;
}

/// A waiter on one store instance is woken by an update made through another (as an API
/// replica is by a worker-host), through pub/sub, long before the fallback poll.
#[tokio::test]
async fn wake_ups_cross_store_instances() {
    let mut config = redis_config(&redis_url());
    config.poll_interval = Duration::from_secs(60);
    let api = RedisStore::new(redis_pool(config.clone()).await);
    let worker = RedisStore::new(redis_pool(config).await);
    // Let the api's listener subscribe.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut woken = Vec::new();
    for _ in 0..20 {
        let id = queued(&worker).await;
        let waiter = {
            let api = api.clone();
            tokio::spawn(async move {
                let r = api.wait_terminal(id, Duration::from_secs(30)).await;
                (r, Instant::now())
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let updated = Instant::now();
        worker.update(id, finished()).await.expect("update");
        let (record, at) = waiter.await.expect("waiter");
        let record = record.expect("wait").expect("record");
        assert_eq!(record.status, JobStatus::Succeeded);
        woken.push(at - updated);
    }
    eprintln!(
        "redis wake-up across instances (update → waiter returns): {}",
        percentiles(woken.clone())
    );
    // The poll interval is 60 s and the wait 30 s: anything quicker came through pub/sub.
    assert!(
        woken.iter().all(|w| *w < Duration::from_secs(10)),
        "{woken:?}"
    );
}

/// A cancel request racing the worker's "started" update: neither overwrites the other.
#[tokio::test]
async fn concurrent_changes_are_never_lost() {
    let store = RedisStore::new(redis_pool(redis_config(&redis_url())).await);
    let node = NodeId::try_from("n1").expect("valid");
    for _ in 0..30 {
        let id = queued(&store).await;
        let cancel = {
            let store = store.clone();
            tokio::spawn(async move { store.request_cancel(id).await })
        };
        let start = {
            let store = store.clone();
            let node = node.clone();
            tokio::spawn(async move {
                store
                    .update(
                        id,
                        RecordUpdate::Started {
                            node,
                            at: UnixMillis::now(),
                        },
                    )
                    .await
            })
        };
        cancel.await.expect("task").expect("cancel");
        let started = start.await.expect("task").expect("start");
        let record = store.get(id).await.expect("get").expect("exists");
        // Either order is fine: started first (running, the flag makes it interrupt) or
        // cancel first (the start is refused). Neither change may overwrite the other.
        let expected = match started {
            UpdateOutcome::Applied(_) => JobStatus::Running,
            _ => JobStatus::Queued,
        };
        assert_eq!(record.status, expected);
        assert!(
            record.cancel_requested,
            "the cancel request was overwritten"
        );
    }
}

/// Records and event logs carry the configured TTL; `request_cancel` of a finished job
/// changes nothing; events of an unknown job are refused.
#[tokio::test]
async fn records_expire_and_finished_jobs_stay_finished() {
    let mut config = redis_config(&redis_url());
    config.record_ttl = Duration::from_secs(600);
    let prefix = config.prefix.clone();
    let pool = redis_pool(config).await;
    let store = RedisStore::new(pool.clone());
    let id = queued(&store).await;
    store
        .append_event(
            id,
            tether_protocol::JobEventKind::Status {
                status: JobStatus::Running,
            },
        )
        .await
        .expect("append");
    let mut conn = redis::Client::open(redis_url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection");
    for key in [
        tether_protocol::names::job_key(&prefix, &id),
        tether_protocol::names::events_key(&prefix, &id),
    ] {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("pttl");
        assert!(ttl > 0 && ttl <= 600_000, "{key} has TTL {ttl}");
    }
    store.update(id, finished()).await.expect("finish");
    let after = store
        .request_cancel(id)
        .await
        .expect("cancel")
        .expect("exists");
    assert!(!after.cancel_requested && after.status == JobStatus::Succeeded);
    let unknown = tether_protocol::JobId::new();
    assert_eq!(
        store
            .append_event(
                unknown,
                tether_protocol::JobEventKind::Status {
                    status: JobStatus::Running
                }
            )
            .await
            .expect("append"),
        0
    );
}

/// Not a benchmark: prints what single calls cost on this machine.
#[tokio::test]
async fn operation_latency_figures() {
    let store = RedisStore::new(redis_pool(redis_config(&redis_url())).await);
    let node = NodeId::try_from("n1").expect("valid");
    let (mut insert, mut start, mut finish, mut get) = (vec![], vec![], vec![], vec![]);
    for _ in 0..200 {
        let job = sample_job(UserUuid::random(), 1);
        let id = job.id;
        let t = Instant::now();
        store
            .insert(&JobRecord::queued(job, None))
            .await
            .expect("insert");
        insert.push(t.elapsed());
        let t = Instant::now();
        let started = RecordUpdate::Started {
            node: node.clone(),
            at: UnixMillis::now(),
        };
        store.update(id, started).await.expect("start");
        start.push(t.elapsed());
        let t = Instant::now();
        store.update(id, finished()).await.expect("finish");
        finish.push(t.elapsed());
        let t = Instant::now();
        store.get(id).await.expect("get");
        get.push(t.elapsed());
    }
    eprintln!("redis insert: {}", percentiles(insert));
    eprintln!("redis update started (read + CAS): {}", percentiles(start));
    eprintln!(
        "redis update finished (read + CAS): {}",
        percentiles(finish)
    );
    eprintln!("redis get: {}", percentiles(get));
}

/// The wake-up listener keeps its one subscription: its keep-alive ping (answered
/// `["pong", ""]` in subscribed mode) must not be taken for a failure and reconnect.
#[tokio::test]
async fn wake_up_subscription_survives_its_keepalive_pings() {
    let mut config = redis_config(&redis_url());
    config.pubsub_ping = Duration::from_millis(50);
    let store = RedisStore::new(redis_pool(config).await);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.wakeup_subscriptions() == 0 {
        assert!(std::time::Instant::now() < deadline, "never subscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Twenty pings later, still the first subscription.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(store.wakeup_subscriptions(), 1, "the listener reconnected");
}
