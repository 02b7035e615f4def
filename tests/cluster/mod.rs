//! A distributed Tether of real processes for the acceptance tests of issue 4: `tether
//! api` and `tether worker-host` started from the binary under test, on the real RabbitMQ
//! and Redis (`TETHER_TEST_AMQP_URL`, `TETHER_TEST_REDIS_URL`) and real Docker.
//!
//! Every cluster has its own namespace (queue and key prefix), node ids and data
//! directory under `/tmp/tether-test`, so clusters of parallel tests never meet. Each
//! process logs to `{data_dir}/logs/{name}.log`; a failing test prints where.
#![allow(dead_code, reason = "each test binary uses a different part")]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "dist-test-token-0123456789";
/// Heartbeat TTL of every test cluster; the node watch sweeps every second.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(3);
pub const SWEEP: Duration = Duration::from_secs(1);

pub fn amqp_url() -> String {
    std::env::var("TETHER_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

pub fn redis_url() -> String {
    std::env::var("TETHER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Six hex characters no other run uses.
pub fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..6].to_owned()
}

pub fn new_user() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Fail clearly (never skip) when RabbitMQ or Redis cannot be reached.
pub async fn require_services(amqp: &str, redis: &str) {
    let connected = lapin::Connection::connect(amqp, lapin::ConnectionProperties::default()).await;
    if let Err(e) = connected {
        panic!(
            "RabbitMQ is not reachable at {amqp} ({e}). Start it with `rabbitmq-server -detached` \
             or point TETHER_TEST_AMQP_URL at a broker."
        );
    }
    if let Err(e) = redis_ping(redis).await {
        panic!(
            "Redis is not reachable at {redis} ({e}). Start it with `redis-server --daemonize yes \
             --save '' --appendonly no` or point TETHER_TEST_REDIS_URL at a server."
        );
    }
}

async fn redis_ping(url: &str) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut stream = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect(&addr),
    )
    .await
    .map_err(|_| "connect timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    stream
        .write_all(b"PING\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf))
        .await
        .map_err(|_| "no answer".to_owned())?
        .map_err(|e| e.to_string())?;
    if buf[..n].starts_with(b"+PONG") {
        Ok(())
    } else {
        Err(format!("answered {:?}", String::from_utf8_lossy(&buf[..n])))
    }
}

/// One `tether` process of the cluster.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    /// The API's base URL (API processes only).
    pub url: Option<String>,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// SIGKILL, no goodbye: containers, mounts and registry entries stay behind.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait (bounded) for a clean exit; SIGKILL if it does not come.
    pub fn terminate(&mut self, within: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(20));
    }
}

/// Settings of a cluster, before it starts.
#[derive(Clone)]
pub struct ClusterConfig {
    pub test: String,
    pub amqp_url: String,
    pub redis_url: String,
    /// Sandboxes per worker-host (TETHER_MAX_TOTAL).
    pub max_total: usize,
    pub min_idle: usize,
}

impl ClusterConfig {
    pub fn new(test: &str) -> Self {
        Self {
            test: test.to_owned(),
            amqp_url: amqp_url(),
            redis_url: redis_url(),
            max_total: 16,
            min_idle: 1,
        }
    }
}

/// The processes of one test's Tether, and a client for its APIs.
pub struct Cluster {
    pub config: ClusterConfig,
    /// `t-{test}-{suffix}`: node ids are `{id}-{n}`.
    pub id: String,
    /// Queue/exchange prefix (`{id}.`); Redis keys start with `{id}.tether:`.
    pub namespace: String,
    pub data_dir: PathBuf,
    pub apis: Vec<Proc>,
    pub workers: Vec<(String, Proc)>,
    pub client: reqwest::Client,
}

impl Cluster {
    /// Check the services, then prepare (start nothing yet).
    pub async fn new(config: ClusterConfig) -> Self {
        require_services(&amqp_url(), &redis_url()).await;
        let id = format!("t-{}-{}", config.test, suffix());
        let data_dir = PathBuf::from(
            std::env::var("TETHER_TEST_DATA_DIR").unwrap_or_else(|_| "/tmp/tether-test".into()),
        )
        .join(&id);
        std::fs::create_dir_all(data_dir.join("logs")).expect("data dir");
        Self {
            namespace: format!("{id}."),
            id,
            config,
            data_dir,
            apis: Vec::new(),
            workers: Vec::new(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("client"),
        }
    }

    pub fn node_id(&self, n: usize) -> String {
        format!("{}-n{n}", self.id)
    }

    fn command(&self, name: &str, role: &str) -> (Command, PathBuf) {
        let log = self.data_dir.join("logs").join(format!("{name}.log"));
        let file = log_file(&log);
        let mut command = Command::new(env!("CARGO_BIN_EXE_tether"));
        command
            .arg(role)
            .env("TETHER_AMQP_URL", &self.config.amqp_url)
            .env("TETHER_REDIS_URL", &self.config.redis_url)
            .env("TETHER_NAMESPACE", &self.namespace)
            .env(
                "TETHER_HEARTBEAT_TTL_S",
                HEARTBEAT_TTL.as_secs().to_string(),
            )
            .env("TETHER_NODE_SWEEP_MS", SWEEP.as_millis().to_string())
            .env("TETHER_DATA_DIR", &self.data_dir)
            .env("TETHER_AUTH_TOKEN", TOKEN)
            .env(
                "TETHER_LOG",
                std::env::var("TETHER_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stderr(Stdio::from(file));
        (command, log)
    }

    /// Start a `tether api` and wait for its address.
    pub fn start_api(&mut self) -> usize {
        let name = format!("api{}", self.apis.len() + 1);
        let (mut command, log) = self.command(&name, "api");
        let mut child = command
            .env("TETHER_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start tether api");
        let url = listening_url(&mut child, &log);
        self.apis.push(Proc {
            name,
            child: Some(child),
            url: Some(url),
            log,
        });
        self.apis.len() - 1
    }

    /// Start `tether worker-host --node-id {id}-n{n}` (does not wait for it).
    pub fn start_worker(&mut self, n: usize) -> String {
        let node = self.node_id(n);
        let name = format!("worker-n{n}-{}", self.workers.len());
        let (mut command, log) = self.command(&name, "worker-host");
        let child = command
            .arg("--node-id")
            .arg(&node)
            .env("TETHER_MIN_IDLE", self.config.min_idle.to_string())
            .env("TETHER_MAX_TOTAL", self.config.max_total.to_string())
            .env("TETHER_DISK_MIB", "64")
            .stdout(Stdio::from(log_file(&log)))
            .spawn()
            .expect("start tether worker-host");
        self.workers.push((
            node.clone(),
            Proc {
                name,
                child: Some(child),
                url: None,
                log,
            },
        ));
        node
    }

    /// The running process of node `node`.
    pub fn worker(&mut self, node: &str) -> &mut Proc {
        self.workers
            .iter_mut()
            .rev()
            .find(|(id, p)| id == node && p.child.is_some())
            .map(|(_, p)| p)
            .expect("no such worker")
    }

    pub fn api_url(&self, i: usize) -> String {
        self.apis[i].url.clone().expect("api url")
    }

    /// Wait until every named node is live and ready in `GET /api/v1/status`.
    pub async fn wait_nodes_ready(&self, nodes: &[String], within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(status) = self.status().await {
                let ready: Vec<&str> = status["nodes"]
                    .as_array()
                    .map(|ns| {
                        ns.iter()
                            .filter(|n| n["ready"] == true)
                            .filter_map(|n| n["id"].as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                if nodes.iter().all(|n| ready.contains(&n.as_str())) {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "nodes {nodes:?} not ready within {within:?}; logs in {}",
                    self.data_dir.join("logs").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn status(&self) -> Result<Value, reqwest::Error> {
        self.client
            .get(format!("{}/api/v1/status", self.api_url(0)))
            .header("X-Auth-Token", TOKEN)
            .send()
            .await?
            .json()
            .await
    }

    /// `POST /api/v1/execute` through API `api`.
    pub async fn execute(&self, api: usize, user: &str, code: &str) -> Reply {
        execute(&self.client, &self.api_url(api), user, code).await
    }

    /// Stop every process and clean up (see `Drop`) without blocking the runtime.
    pub async fn shutdown(self) {
        tokio::task::spawn_blocking(move || drop(self))
            .await
            .expect("cluster shutdown");
    }
}

impl Drop for Cluster {
    /// Stop every process (SIGTERM, bounded), then remove what this cluster left on the
    /// host (containers, mounts, loop devices of killed nodes), on the broker and in
    /// Redis. A failing test keeps its logs.
    fn drop(&mut self) {
        let apis = std::mem::take(&mut self.apis);
        let workers = std::mem::take(&mut self.workers);
        let nodes: Vec<String> = workers.iter().map(|(n, _)| n.clone()).collect();
        let mut handles = Vec::new();
        for (_, mut p) in workers {
            handles.push(std::thread::spawn(move || {
                p.terminate(Duration::from_secs(40))
            }));
        }
        for mut p in apis {
            handles.push(std::thread::spawn(move || {
                p.terminate(Duration::from_secs(10))
            }));
        }
        for h in handles {
            let _ = h.join();
        }
        remove_host_leftovers(&nodes, &self.data_dir);
        let (amqp, namespace) = (self.config.amqp_url.clone(), self.namespace.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(remove_broker_topology(&amqp, &namespace, &nodes));
            }
        })
        .join();
        remove_redis_keys(&self.config.redis_url, &self.namespace);
        if std::thread::panicking() {
            eprintln!("logs kept in {}", self.data_dir.join("logs").display());
            let _ = std::fs::remove_dir_all(self.data_dir.join("sandboxes"));
        } else {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

pub fn log_file(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("log file")
}

/// Read the API's stdout into its log, and hand back the address it announces.
pub fn listening_url(child: &mut Child, log: &Path) -> String {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let mut file = log_file(log);
    std::thread::spawn(move || {
        use std::io::Write;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("Tether is listening on ") {
                let _ = tx.send(rest.trim().to_owned());
            }
            let _ = writeln!(file, "{line}");
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("tether api did not start; see {}", log.display()))
}

/// What an execute call answered.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<String>,
    pub took: Duration,
}

impl Reply {
    pub fn text(&self) -> &str {
        self.body["result_text"].as_str().unwrap_or_default()
    }

    /// The node that ran the job (`worker_id` = `{node}-{12 hex}`).
    pub fn node(&self) -> String {
        let w = self.body["worker_id"].as_str().unwrap_or_default();
        w.rsplit_once('-')
            .map(|(node, _)| node.to_owned())
            .unwrap_or_default()
    }

    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    pub fn restarted(&self) -> bool {
        self.body["session_restarted"] == true
    }
}

pub async fn execute(client: &reqwest::Client, base: &str, user: &str, code: &str) -> Reply {
    let started = Instant::now();
    let sent = client
        .post(format!("{base}/api/v1/execute?user_uuid={user}"))
        .header("X-Auth-Token", TOKEN)
        .json(&json!({ "code": code }))
        .send()
        .await;
    match sent {
        Ok(r) => {
            let status = r.status().as_u16();
            let retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = r.json().await.unwrap_or(Value::Null);
            Reply {
                status,
                body,
                retry_after,
                took: started.elapsed(),
            }
        }
        Err(e) => Reply {
            status: 0,
            body: json!({ "transport_error": e.to_string() }),
            retry_after: None,
            took: started.elapsed(),
        },
    }
}

/// Remove containers, mounts and loop devices that killed nodes left.
pub fn remove_host_leftovers(nodes: &[String], data_dir: &Path) {
    for node in nodes {
        let out = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=org.tether.node={node}"),
            ])
            .output();
        if let Ok(out) = out {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .arg("rm")
                    .arg("-f")
                    .args(&ids)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(data_dir))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let _ = Command::new("umount").args(["-l", m]).status();
    }
    if let Ok(out) = Command::new("losetup")
        .args(["-l", "-n", "-O", "NAME,BACK-FILE"])
        .output()
    {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let mut parts = line.split_whitespace();
            if let (Some(dev), Some(file)) = (parts.next(), parts.next())
                && Path::new(file).starts_with(data_dir)
            {
                let _ = Command::new("losetup").args(["-d", dev]).status();
            }
        }
    }
}

/// Delete the node queues, the dead-letter queue and the exchanges of a namespace.
pub async fn remove_broker_topology(amqp: &str, namespace: &str, nodes: &[String]) {
    let Ok(connection) =
        lapin::Connection::connect(amqp, lapin::ConnectionProperties::default()).await
    else {
        return;
    };
    let Ok(channel) = connection.create_channel().await else {
        return;
    };
    let delete = lapin::options::QueueDeleteOptions::default();
    for node in nodes {
        let queue = format!("{namespace}tether.node.{node}");
        let _ = channel.queue_delete(queue.as_str().into(), delete).await;
    }
    let dead = format!("{namespace}tether.dead");
    let _ = channel.queue_delete(dead.as_str().into(), delete).await;
    for exchange in ["tether.jobs", "tether.dlx"] {
        let name = format!("{namespace}{exchange}");
        let _ = channel
            .exchange_delete(name.as_str().into(), Default::default())
            .await;
    }
    let _ = connection.close(200, "done".into()).await;
}

/// Delete every Redis key of a namespace (`redis-cli --scan`, then `DEL`).
pub fn remove_redis_keys(redis: &str, namespace: &str) {
    let Ok(out) = Command::new("redis-cli")
        .args(["-u", redis, "--scan", "--pattern", &format!("{namespace}*")])
        .output()
    else {
        return;
    };
    let keys: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    for chunk in keys.chunks(500) {
        let _ = Command::new("redis-cli")
            .args(["-u", redis, "DEL"])
            .args(chunk)
            .stdout(Stdio::null())
            .status();
    }
}

/// p50 / p95 of durations, for the figures tests print.
/// The members of a Redis set, read with `redis-cli` (outside the code under test).
pub fn redis_set_members(redis: &str, key: &str) -> Vec<String> {
    let out = std::process::Command::new("redis-cli")
        .args(["-u", redis, "SMEMBERS", key])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

pub fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95))
}

/// A pseudo-random index below `n` (no rand dependency needed).
pub fn pick(n: usize) -> usize {
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    usize::from(bytes[0]) % n
}
