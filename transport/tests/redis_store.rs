//! The store and registry contracts and the Redis-specific promises, against a real Redis
//! (`TETHER_TEST_REDIS_URL`, default redis://127.0.0.1:6379). The outage test runs its own
//! `redis-server` so that killing it disturbs nobody else.

mod common;

use common::{percentiles, redis_config, redis_pool, redis_url};
use deadpool_redis::redis;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tether_protocol::{JobRecord, JobStatus, NodeId, UnixMillis, UserUuid};
use tether_transport::contract::{self, sample_job};
use tether_transport::redis::{RedisConfig, RedisPool, RedisRegistry, RedisStore};
use tether_transport::{JobStore, RecordUpdate, StoreError, UpdateOutcome};

fn finished() -> RecordUpdate {
    RecordUpdate::Finished {
        status: JobStatus::Succeeded,
        result: None,
        error: None,
        at: UnixMillis::now(),
    }
}

async fn queued(store: &RedisStore) -> tether_protocol::JobId {
    let job = sample_job(UserUuid::random(), 1);
    let id = job.id;
    store
        .insert(&JobRecord::queued(job, None))
        .await
        .expect("insert");
    id
}

#[tokio::test]
async fn store_contract() {
    let store = Arc::new(RedisStore::new(
        redis_pool(redis_config(&redis_url())).await,
    ));
    contract::store_transitions_only_move_forward(store.as_ref()).await;
    contract::store_wait_wakes_on_finish(store.clone()).await;
    contract::store_events_resume(store.clone()).await;
    contract::store_seq_per_session(store.as_ref()).await;
}

#[tokio::test]
async fn registry_contract() {
    let config = redis_config(&redis_url());
    let name = config.prefix.trim_end_matches(':').to_owned();
    let registry = Arc::new(RedisRegistry::new(redis_pool(config).await));
    contract::registry_binds_atomically(registry, &name).await;
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
    tokio::time::sleep(Duration::from_millis(200)).await;

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
    assert!(woken.iter().all(|w| *w < Duration::from_secs(30)));
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
        assert!(matches!(started, UpdateOutcome::Applied(_)));
        let record = store.get(id).await.expect("get").expect("exists");
        assert_eq!(record.status, JobStatus::Running);
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

#[tokio::test]
async fn closed_port_answers_unavailable_fast() {
    let config = RedisConfig::new("redis://127.0.0.1:1");
    let limit = config.op_timeout;
    let pool = RedisPool::new(config).expect("valid URL");
    let store = RedisStore::new(pool.clone());
    let registry = RedisRegistry::new(pool);
    let started = Instant::now();
    let err = store
        .get(tether_protocol::JobId::new())
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = store
        .next_seq(UserUuid::random())
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    use tether_transport::SessionRegistry;
    assert!(registry.live_nodes().await.is_err());
    let took = started.elapsed();
    eprintln!("closed Redis port: three calls failed in {took:?}");
    assert!(took < limit, "should fail at once, not time out: {took:?}");
}

/// Kill a real Redis under a working store: calls fail fast with `Unavailable`; start it
/// again and the same store works, wake-ups included, without being rebuilt.
#[tokio::test]
async fn store_survives_a_redis_restart() {
    let mut server = PrivateRedis::start();
    let mut config = redis_config(&server.url());
    config.poll_interval = Duration::from_secs(60);
    let limit = config.op_timeout;
    let store = RedisStore::new(redis_pool(config).await);
    let id = queued(&store).await;
    assert!(store.get(id).await.expect("get").is_some());

    server.kill();
    let started = Instant::now();
    let err = store.get(id).await.expect_err("Redis is down");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = store
        .insert(&JobRecord::queued(sample_job(UserUuid::random(), 1), None))
        .await;
    assert!(matches!(err, Err(StoreError::Unavailable(_))), "{err:?}");
    let took = started.elapsed();
    eprintln!("Redis killed: calls failed in {took:?}");
    assert!(took < 2 * limit, "{took:?}");

    server.restart();
    let back = Instant::now();
    loop {
        match store
            .insert(&JobRecord::queued(sample_job(UserUuid::random(), 1), None))
            .await
        {
            Ok(()) => break,
            Err(StoreError::Unavailable(_)) if back.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("store did not recover: {e:?}"),
        }
    }
    eprintln!(
        "Redis restarted: store usable again after {:?}",
        back.elapsed()
    );
    // The pub/sub listener re-subscribes by itself (backing off up to 5 s); the poll
    // interval is 60 s, so a wake-up within the 30 s below came through pub/sub.
    let id = queued(&store).await;
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move {
            let r = store.wait_terminal(id, Duration::from_secs(30)).await;
            (r, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_secs(6)).await;
    let updated = Instant::now();
    store
        .update(id, finished())
        .await
        .expect("update after restart");
    let (record, woken) = waiter.await.expect("task");
    let record = record.expect("wait").expect("record");
    assert_eq!(
        record.status,
        JobStatus::Succeeded,
        "wake-up after restart never came"
    );
    eprintln!("wake-up after the restart took {:?}", woken - updated);
    assert!(
        woken - updated < Duration::from_secs(20),
        "woken by the timeout, not pub/sub"
    );

    // A Redis that hangs (stopped, not dead) costs at most the time limit, never a hang.
    server.signal("STOP");
    let started = Instant::now();
    let err = store.get(id).await.expect_err("Redis is frozen");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let took = started.elapsed();
    eprintln!("Redis frozen: get gave up after {took:?} (limit {limit:?})");
    assert!(took < limit + Duration::from_secs(2), "{took:?}");
    server.signal("CONT");
    assert!(store.get(id).await.expect("thawed").is_some());
}

/// A `redis-server` of this test's own on a free port, killed on drop.
struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut server = Self { port, child: None };
        server.restart();
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
