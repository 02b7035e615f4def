//! Issue 4, acceptance 5, 6 and 7, with real processes. The shared RabbitMQ and Redis are
//! never restarted (other tests use them):
//!
//! - (5) the broker "restarts": every process reaches RabbitMQ through a TCP relay this
//!   test owns, torn down (all connections cut, new ones refused) and started again.
//!   Services reconnect by themselves; every accepted job ends; none runs twice.
//! - (6) Redis restarts without persistence: a private `redis-server` on a free port is
//!   killed and started again. The API answers 503 + Retry-After while it is down, fast,
//!   and serves again afterwards without any process being restarted.
//! - (7) a poison message published raw into a node queue ends in the dead-letter queue;
//!   when it still names its job, that job ends `failed` with `poison_job`; the queue
//!   keeps flowing.

mod cluster;

use cluster::{
    Cluster, ClusterConfig, Reply, amqp_url, execute, new_user, pick, redis_set_members,
};
use lapin::BasicProperties;
use lapin::options::{BasicGetOptions, BasicPublishOptions};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tether_protocol::{
    ErrorCode, ExecuteSpec, Job, JobId, JobKind, JobRecord, JobStatus, NodeId, UnixMillis, UserUuid,
};
use tether_transport::JobStore;
use tether_transport::redis::{RedisConfig, RedisPool, RedisStore};
use tether_transport::testing::{free_port, relay};

fn append_code(token: &str) -> String {
    format!("try:\n    L\nexcept NameError:\n    L = []\nL.append('{token}')\nprint(len(L))")
}

fn node_jobs(redis: &str, namespace: &str, node: &str) -> Vec<String> {
    redis_set_members(redis, &format!("{namespace}tether:node-jobs:{node}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn services_ride_out_a_broker_outage_and_run_no_job_twice() {
    let mut uri: lapin::uri::AMQPUri = amqp_url().parse().expect("AMQP URL");
    let upstream = format!("{}:{}", uri.authority.host, uri.authority.port);
    let port = free_port();
    uri.authority.host = "127.0.0.1".into();
    uri.authority.port = port;
    let mut broker = relay(port, upstream.clone()).await;

    let mut config = ClusterConfig::new("mqout");
    config.amqp_url = uri.to_string();
    config.max_total = 8;
    let mut cluster = Cluster::new(config).await;
    cluster.start_api();
    let nodes: Vec<String> = (1..=2).map(|n| cluster.start_worker(n)).collect();
    cluster
        .wait_nodes_ready(&nodes, Duration::from_secs(180))
        .await;

    // (token, answer) per session, in order.
    type Log = Arc<Mutex<Vec<(String, Reply)>>>;
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..6 {
        let (client, api, user) = (cluster.client.clone(), cluster.api_url(0), new_user());
        let (stop, log): (_, Log) = (stop.clone(), Arc::default());
        clients.push((
            user.clone(),
            log.clone(),
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let token = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
                    let r = execute(&client, &api, &user, &append_code(&token)).await;
                    let refused = r.status != 200;
                    log.lock().expect("log").push((token, r));
                    if refused {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }),
        ));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.abort();
    let cut = Instant::now();
    eprintln!("(5) broker cut off");
    tokio::time::sleep(Duration::from_secs(4)).await;
    broker = relay(port, upstream).await;
    eprintln!("(5) broker back after {:?}", cut.elapsed());
    tokio::time::sleep(Duration::from_secs(10)).await;
    stop.store(true, Ordering::SeqCst);

    let mut problems = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    let mut slowest_refusal = Duration::ZERO;
    for (user, log, task) in clients {
        task.await.expect("client");
        let log = log.lock().expect("log").clone();
        // The session's list, read once the broker is back.
        let deadline = Instant::now() + Duration::from_secs(60);
        let listed = loop {
            let r = execute(
                &cluster.client,
                &cluster.api_url(0),
                &user,
                "import json\nprint(json.dumps(L))",
            )
            .await;
            if r.status == 200 {
                break r;
            }
            assert!(
                Instant::now() < deadline,
                "session {user} unreadable: {}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let ran: Vec<String> =
            serde_json::from_str(listed.text().trim()).expect("the list as JSON");
        let mut count: HashMap<&str, usize> = HashMap::new();
        for t in &ran {
            *count.entry(t.as_str()).or_default() += 1;
        }
        for (token, r) in &log {
            let times = count.get(token.as_str()).copied().unwrap_or(0);
            match r.status {
                200 => {
                    accepted += 1;
                    if times != 1 {
                        problems.push(format!("{user}: accepted {token} ran {times} times"));
                    }
                }
                503 => {
                    refused += 1;
                    slowest_refusal = slowest_refusal.max(r.took);
                    if r.retry_after.is_none() {
                        problems.push(format!("{user}: 503 without Retry-After: {}", r.body));
                    }
                    if times != 0 {
                        problems.push(format!(
                            "{user}: refused {token} ran {times} times: {}",
                            r.body
                        ));
                    }
                }
                other => problems.push(format!("{user}: answer {other}: {}", r.body)),
            }
        }
        if let Some((t, n)) = count.iter().find(|(_, n)| **n > 1) {
            problems.push(format!("{user}: {t} ran {n} times"));
        }
    }
    for node in &nodes {
        let left = node_jobs(&cluster.config.redis_url, &cluster.namespace, node);
        if !left.is_empty() {
            problems.push(format!("{node}: jobs never ended: {left:?}"));
        }
    }
    assert!(refused > 0, "the outage went unnoticed");
    assert!(
        problems.is_empty(),
        "(5) broken promises (logs in {}):\n{}",
        cluster.data_dir.join("logs").display(),
        problems.join("\n")
    );
    eprintln!(
        "(5) {accepted} jobs accepted and each ran exactly once; {refused} refused with 503 + \
         Retry-After during the 4 s outage (slowest refusal {slowest_refusal:?}); no process \
         was restarted"
    );
    cluster.shutdown().await;
    broker.abort();
}

/// A `redis-server` of this test's own on a free port, killed on drop.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            child: None,
        };
        server.restart();
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_answers_503_while_redis_is_down_and_recovers_by_itself() {
    let mut redis = PrivateRedis::start();
    let mut config = ClusterConfig::new("rdout");
    config.redis_url = redis.url();
    config.max_total = 8;
    let mut cluster = Cluster::new(config).await;
    cluster.start_api();
    let node = cluster.start_worker(1);
    cluster
        .wait_nodes_ready(std::slice::from_ref(&node), Duration::from_secs(180))
        .await;
    let users: Vec<String> = (0..3).map(|_| new_user()).collect();
    for user in &users {
        let r = cluster.execute(0, user, "x = 1").await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    redis.kill();
    let down = Instant::now();
    let mut answers = 0;
    let mut slowest = Duration::ZERO;
    while down.elapsed() < Duration::from_secs(5) {
        let user = if pick(2) == 0 {
            users[pick(users.len())].clone()
        } else {
            new_user()
        };
        let r = cluster.execute(0, &user, "print(1)").await;
        assert_eq!(r.status, 503, "(6) while Redis is down: {}", r.body);
        assert!(r.retry_after.is_some(), "(6) 503 without Retry-After");
        slowest = slowest.max(r.took);
        let started = Instant::now();
        let status = cluster
            .client
            .get(format!("{}/api/v1/status", cluster.api_url(0)))
            .header("X-Auth-Token", cluster::TOKEN)
            .send()
            .await
            .expect("status");
        assert_eq!(status.status().as_u16(), 503);
        assert!(status.headers().contains_key("retry-after"));
        slowest = slowest.max(started.elapsed());
        answers += 2;
    }
    // Bounded by the store's per-call limit (2 s), never a hang.
    assert!(
        slowest < Duration::from_secs(5),
        "(6) slowest 503 {slowest:?}"
    );

    redis.restart();
    let back = Instant::now();
    let deadline = back + Duration::from_secs(60);
    loop {
        let r = cluster.execute(0, &new_user(), "print(6*7)").await;
        if r.status == 200 {
            assert_eq!(r.text(), "42\n");
            break;
        }
        assert_eq!(r.status, 503, "(6) while recovering: {}", r.body);
        assert!(Instant::now() < deadline, "(6) no recovery within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = back.elapsed();
    // Sessions from before the outage are served again too (Redis lost their bindings,
    // so their state is not promised).
    for user in &users {
        let r = cluster.execute(0, user, "print(2)").await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    eprintln!(
        "(6) Redis down 5 s: {answers} requests all answered 503 + Retry-After, slowest in \
         {slowest:?}; after the restart the API served again in {recovered:?}, no process \
         restarted"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_messages_are_dead_lettered_and_their_job_fails() {
    let mut cluster = Cluster::new(ClusterConfig::new("poison")).await;
    cluster.start_api();
    let node = cluster.start_worker(1);
    cluster
        .wait_nodes_ready(std::slice::from_ref(&node), Duration::from_secs(180))
        .await;

    // A queued job whose message will turn out unreadable.
    let mut redis_config = RedisConfig::new(cluster.config.redis_url.clone());
    redis_config.prefix = format!("{}tether:", cluster.namespace);
    let store = RedisStore::new(RedisPool::new(redis_config).expect("pool"));
    let user = UserUuid::random();
    let job = Job {
        id: JobId::new(),
        user_uuid: user,
        seq: 1,
        kind: JobKind::Execute(ExecuteSpec {
            code: "1".into(),
            timeout_ms: 1000,
        }),
        submitted_at: UnixMillis::now(),
        callback_url: None,
        metadata: None,
    };
    let id = job.id;
    let node_id = NodeId::try_from(node.as_str()).expect("node id");
    store
        .insert(&JobRecord::queued(job, Some(node_id)))
        .await
        .expect("insert");

    let (connection, channel) = {
        let c = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .expect("raw connection");
        let ch = c.create_channel().await.expect("channel");
        (c, ch)
    };
    let exchange = format!("{}tether.jobs", cluster.namespace);
    let garbage: &[u8] = b"\xff\xfe this is not JSON";
    let named = serde_json::json!({
        "id": id.to_string(),
        "user_uuid": user.to_string(),
        "kind": {"type": "format_disk"},
    })
    .to_string();
    for payload in [garbage, named.as_bytes()] {
        channel
            .basic_publish(
                exchange.as_str().into(),
                node.as_str().into(),
                BasicPublishOptions::default(),
                payload,
                BasicProperties::default(),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
    }

    // The named job ends failed with poison_job.
    let deadline = Instant::now() + Duration::from_secs(20);
    let record = loop {
        let r = store.get(id).await.expect("get").expect("record");
        if r.status.is_terminal() {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "(7) poison job still {:?}",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(record.status, JobStatus::Failed);
    assert_eq!(
        record.error.as_ref().map(|e| e.code),
        Some(ErrorCode::PoisonJob)
    );

    // Both messages are in the dead-letter queue.
    let dead_queue = format!("{}tether.dead", cluster.namespace);
    let mut dead = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while dead.len() < 2 && Instant::now() < deadline {
        match channel
            .basic_get(dead_queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
        {
            Some(m) => dead.push(m.delivery.data),
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    dead.sort();
    let mut want = vec![garbage.to_vec(), named.as_bytes().to_vec()];
    want.sort();
    assert_eq!(dead, want, "(7) dead-letter queue");
    let _ = connection.close(200, "done".into()).await;

    // The queue keeps flowing.
    let r = cluster
        .execute(0, &new_user(), "print('still flowing')")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.text(), "still flowing\n");
    eprintln!("(7) two poison messages dead-lettered, the named job failed with poison_job");
    cluster.shutdown().await;
}
