//! `spawn_app`: the whole single-node service in-process — API on port 0, dispatcher,
//! in-memory bus/store/registry, and a real worker-host engine on real Docker.

#![allow(dead_code)]

pub mod jobs;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tether_api::{ApiConfig, AuthToken};
use tether_dispatcher::Dispatcher;
use tether_dispatcher::webhook::{AllowList, Courier, RetrySchedule, WebhookConfig, WebhookSecret};
use tether_protocol::NodeId;
use tether_transport::memory::{MemoryBus, MemoryRegistry, MemoryStore};
use tether_transport::{JobBus, JobStore, SessionRegistry};
use tether_worker_host::{Engine, EngineConfig, JobLoop, JobLoopConfig};
use tokio_util::sync::CancellationToken;

pub const TOKEN: &str = "test-token-0123456789";
/// The webhook secret of every test app (Standard Webhooks form).
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A running service and a client for it.
pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    pub engine: Engine,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

/// Knobs a test may turn before the app starts.
pub struct AppOptions {
    pub max_total: usize,
    pub min_idle: usize,
    pub default_timeout: Duration,
    pub max_code_bytes: usize,
    /// `TETHER_EGRESS_ALLOW` for callback URLs (tests' receivers run on 127.0.0.1).
    pub egress_allow: String,
    /// Wait after the first failed webhook attempt (then doubling, jittered).
    pub webhook_retry_initial: Duration,
    /// Keep-alive interval of event streams.
    pub sse_keep_alive: Duration,
    /// RabbitMQ + Redis (`TETHER_TEST_AMQP_URL`, `TETHER_TEST_REDIS_URL`) instead of the
    /// in-process backends, with a separate store connection for the API, the node and
    /// the webhook courier, as separate processes would have.
    pub distributed: bool,
    /// File jobs: egress allow-list, S3, limits.
    pub files: tether_worker_host::FilesConfig,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            max_total: 6,
            min_idle: 2,
            default_timeout: Duration::from_secs(30),
            max_code_bytes: 1024 * 1024,
            egress_allow: String::new(),
            webhook_retry_initial: Duration::from_millis(200),
            sse_keep_alive: Duration::from_secs(15),
            distributed: false,
            files: tether_worker_host::FilesConfig::default(),
        }
    }
}

pub async fn spawn_app(name: &str, options: AppOptions) -> TestApp {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let node = NodeId::try_from(format!("t-{name}-{suffix}")).expect("node id");
    let data_dir = PathBuf::from(
        std::env::var("TETHER_TEST_DATA_DIR").unwrap_or_else(|_| "/tmp/tether-test".into()),
    );
    let mut engine_config = EngineConfig::new(node, data_dir);
    if let Ok(image) = std::env::var("TETHER_IMAGE") {
        engine_config.image = image;
    }
    engine_config.min_idle = options.min_idle;
    engine_config.max_total = options.max_total;
    engine_config.limits.disk_mib = 64;
    engine_config.files = options.files;
    let engine = Engine::start(engine_config, CancellationToken::new())
        .await
        .expect("Docker must be running (scripts/install-deps.sh starts it)");

    let backends = if options.distributed {
        distributed_backends(suffix).await
    } else {
        let store: Arc<dyn JobStore> = Arc::new(MemoryStore::default());
        Backends {
            bus: Arc::new(MemoryBus::new()),
            stores: [store.clone(), store.clone(), store],
            registry: Arc::new(MemoryRegistry::new()),
        }
    };
    let Backends {
        bus,
        stores: [store, node_store, courier_store],
        registry,
    } = backends;
    let shutdown = CancellationToken::new();
    let job_loop = JobLoop {
        engine: engine.clone(),
        bus: bus.clone(),
        store: node_store,
        registry: registry.clone(),
        config: JobLoopConfig::default(),
    };
    tokio::spawn(job_loop.run(shutdown.clone()));

    let allow: AllowList = options.egress_allow.parse().expect("egress allow-list");
    let mut webhooks = WebhookConfig::new(
        WebhookSecret::parse(WEBHOOK_SECRET).expect("secret"),
        allow.clone(),
    );
    webhooks.retry = RetrySchedule {
        initial: options.webhook_retry_initial,
        ..RetrySchedule::default()
    };
    webhooks.poll_interval = Duration::from_millis(50);
    tokio::spawn(Courier::new(courier_store, webhooks).run(shutdown.clone()));

    let mut config = ApiConfig::new(AuthToken::new(TOKEN).expect("token"));
    config.default_timeout = options.default_timeout;
    config.max_code_bytes = options.max_code_bytes;
    config.egress_allow = allow;
    config.sse_keep_alive = options.sse_keep_alive;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let dispatcher = Dispatcher::new(bus, store, registry);
    let stop = shutdown.clone();
    let server = tokio::spawn(async move {
        tether_api::run(config, dispatcher, listener, stop)
            .await
            .expect("api");
    });
    let app = TestApp {
        url,
        client: reqwest::Client::new(),
        engine,
        shutdown,
        server,
    };
    app.wait_ready().await;
    app
}

/// The bus, the store as the API, the node and the courier see it, and the registry.
struct Backends {
    bus: Arc<dyn JobBus>,
    stores: [Arc<dyn JobStore>; 3],
    registry: Arc<dyn SessionRegistry>,
}

/// RabbitMQ and Redis under a prefix of this app's own.
async fn distributed_backends(suffix: &str) -> Backends {
    use tether_transport::amqp::{AmqpBus, AmqpConfig};
    use tether_transport::redis::{RedisConfig, RedisPool, RedisRegistry, RedisStore};
    let amqp_url = std::env::var("TETHER_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let redis_url =
        std::env::var("TETHER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut amqp = AmqpConfig::new(&amqp_url);
    amqp.prefix = format!("t{suffix}.");
    let bus = AmqpBus::connect(amqp)
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ is not reachable at {amqp_url}: {e}"));
    let mut redis = RedisConfig::new(&redis_url);
    redis.prefix = format!("t{suffix}:");
    let pool = || {
        let pool = RedisPool::new(redis.clone()).expect("Redis URL");
        Arc::new(RedisStore::new(pool)) as Arc<dyn JobStore>
    };
    let registry_pool = RedisPool::new(redis.clone()).expect("Redis URL");
    registry_pool
        .ping()
        .await
        .unwrap_or_else(|e| panic!("Redis is not reachable at {redis_url}: {e}"));
    Backends {
        bus: Arc::new(bus),
        stores: [pool(), pool(), pool()],
        registry: Arc::new(RedisRegistry::new(registry_pool)),
    }
}

impl TestApp {
    /// Wait until the node has heartbeated and its pool is warm.
    async fn wait_ready(&self) {
        for _ in 0..600 {
            if let Ok(r) = self.client.get(format!("{}/readyz", self.url)).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("service never became ready");
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.url))
            .header("X-Auth-Token", TOKEN)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.url))
            .header("X-Auth-Token", TOKEN)
    }

    /// `POST /api/v1/execute?user_uuid=…` and the parsed body.
    pub async fn execute(&self, user: &str, code: &str) -> (u16, serde_json::Value) {
        let r = self
            .post(&format!("/api/v1/execute?user_uuid={user}"))
            .json(&serde_json::json!({ "code": code }))
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        self.engine.shutdown(Duration::from_secs(30)).await;
    }
}

pub fn new_user() -> String {
    uuid::Uuid::new_v4().to_string()
}
