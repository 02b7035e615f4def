//! Redis going away: calls fail fast with `Unavailable` and work again, wake-ups included,
//! when it is back. The restart test runs its own `redis-server` on a free port so that
//! killing it disturbs nobody else.

mod common;

use common::{finished, queued, redis_config, redis_pool};
use std::time::{Duration, Instant};
use tether_protocol::{JobRecord, JobStatus, UserUuid};
use tether_transport::contract::sample_job;
use tether_transport::redis::{RedisConfig, RedisPool, RedisRegistry, RedisStore};
use tether_transport::{JobStore, SessionRegistry, StoreError};

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
