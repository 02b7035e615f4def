//! Wiring each role from its configuration.

use crate::cli::{
    ApiArgs, ApiRoleArgs, BackendArgs, Command, DataArgs, DispatcherRoleArgs, EgressArgs,
    ServeArgs, WebhookArgs, WorkerArgs, WorkerRoleArgs,
};
use crate::{image, shutdown};
use anyhow::{Context, bail};
use std::sync::Arc;
use std::time::Duration;
use tether_api::{
    ApiConfig, CorsOrigins, SecretSource, WEBHOOK_SECRET_FILE, load_or_create_internal_token,
    load_or_create_secret_with, load_or_create_token, random_secret,
};
use tether_dispatcher::webhook::{AllowList, Courier, RetrySchedule, WebhookConfig, WebhookSecret};
use tether_dispatcher::{Dispatcher, NodeWatchConfig};
use tether_protocol::NodeId;
use tether_transport::amqp::{AmqpBus, AmqpConfig};
use tether_transport::memory::{MemoryBus, MemoryRegistry, MemoryStore};
use tether_transport::redis::{RedisConfig, RedisPool, RedisRegistry, RedisStore};
use tether_transport::{InternalToken, JobBus, JobStore, SessionRegistry};
use tether_worker_host::{
    Engine, EngineConfig, FilesConfig, JobLoop, JobLoopConfig, SandboxLimits,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long in-flight work may take to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(30);

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Api(args) => api(args).await,
        Command::WorkerHost(args) => worker_host(args).await,
        Command::Dispatcher(args) => dispatcher(args).await,
        Command::BuildImage => {
            let image =
                std::env::var("TETHER_IMAGE").unwrap_or_else(|_| "tether-sandbox:latest".into());
            image::build(&image).await
        }
    }
}

/// The job bus, result store and node registry every role shares.
struct Backends {
    bus: Arc<dyn JobBus>,
    store: Arc<dyn JobStore>,
    registry: Arc<dyn SessionRegistry>,
}

async fn backends(args: &BackendArgs, role: &str) -> anyhow::Result<Backends> {
    match (&args.amqp_url, &args.redis_url) {
        (None, None) if role == "serve" => {
            tracing::info!("using the in-process job bus and result store (embedded mode)");
            Ok(Backends {
                bus: Arc::new(MemoryBus::new()),
                store: Arc::new(MemoryStore::default()),
                registry: Arc::new(MemoryRegistry::new()),
            })
        }
        (Some(amqp), Some(redis)) => distributed(amqp, redis, &args.namespace).await,
        _ => bail!(
            "{role} needs both --amqp-url and --redis-url (TETHER_AMQP_URL, TETHER_REDIS_URL)"
        ),
    }
}

async fn distributed(amqp: &str, redis: &str, namespace: &str) -> anyhow::Result<Backends> {
    let mut amqp_config = AmqpConfig::new(amqp);
    amqp_config.prefix = namespace.to_owned();
    amqp_config.connection_name = format!("tether-{}", std::process::id());
    // Start even if the broker is down right now: the bus reconnects by itself and
    // publishing fails fast (503) until it is back.
    let bus = AmqpBus::start(amqp_config);
    let mut redis_config = RedisConfig::new(redis);
    if !namespace.is_empty() {
        redis_config.prefix = format!("{namespace}{}", redis_config.prefix);
    }
    let pool = RedisPool::new(redis_config).context("invalid --redis-url")?;
    tracing::info!("using RabbitMQ and Redis (distributed mode)");
    Ok(Backends {
        bus: Arc::new(bus),
        store: Arc::new(RedisStore::new(pool.clone())),
        registry: Arc::new(RedisRegistry::new(pool)),
    })
}

fn engine_config(worker: &WorkerArgs, data: &DataArgs) -> anyhow::Result<EngineConfig> {
    let node = NodeId::try_from(worker.node_id.as_str())
        .with_context(|| format!("invalid --node-id {:?}", worker.node_id))?;
    if worker.max_total == 0 {
        bail!("--max-total must be at least 1");
    }
    let mut config = EngineConfig::new(node, data.data_dir.join("sandboxes"));
    config.image = worker.image.clone();
    config.min_idle = worker.min_idle.min(worker.max_total);
    config.max_total = worker.max_total;
    config.limits = SandboxLimits {
        memory_mib: worker.memory_mib,
        cpus: worker.cpus,
        pids: worker.pids_limit,
        tmp_mib: worker.tmp_mib,
        disk_mib: worker.disk_mib,
        hardened: !worker.insecure_no_hardening,
    };
    config.output_cap = worker.output_cap_bytes;
    config.max_concurrent_starts = worker.max_concurrent_starts.max(1);
    config.files = FilesConfig::from_env().context("invalid TETHER_EGRESS_ALLOW")?;
    config.idle_ttl = Duration::from_secs(worker.idle_ttl_s);
    config.interrupt_grace = Duration::from_millis(worker.interrupt_grace_ms);
    if !config.limits.hardened {
        tracing::warn!(
            "container hardening is OFF: sandboxes have network access and a writable root"
        );
    }
    Ok(config)
}

fn egress_allow(egress: &EgressArgs) -> anyhow::Result<AllowList> {
    egress
        .egress_allow
        .parse::<AllowList>()
        .context("invalid --egress-allow")
}

fn webhook_config(
    args: &WebhookArgs,
    egress: &EgressArgs,
    data: &DataArgs,
) -> anyhow::Result<WebhookConfig> {
    let (secret, source) = load_or_create_secret_with(
        args.webhook_secret.as_deref(),
        &data.data_dir.join(WEBHOOK_SECRET_FILE),
        WebhookSecret::generate,
    )
    .context("loading the webhook secret")?;
    let secret = WebhookSecret::parse(&secret).context("invalid --webhook-secret")?;
    match source {
        SecretSource::Generated(path) => {
            tracing::info!(path = %path.display(), "generated the webhook signing secret")
        }
        SecretSource::File(path) => {
            tracing::info!(path = %path.display(), "webhook signing secret read from file")
        }
        SecretSource::Environment => {}
    }
    let mut config = WebhookConfig::new(secret, egress_allow(egress)?);
    config.retry = RetrySchedule {
        initial: Duration::from_millis(args.webhook_retry_initial_ms.max(1)),
        max_interval: Duration::from_secs(args.webhook_retry_max_interval_s.max(1)),
        max_period: Duration::from_secs(args.webhook_max_period_s),
        ..RetrySchedule::default()
    };
    config.attempt_timeout = Duration::from_secs(args.webhook_timeout_s.max(1));
    config.lease = config.lease.max(config.attempt_timeout * 3);
    Ok(config)
}

/// Start the webhook delivery loop on the shared store.
fn start_courier(
    backends: &Backends,
    config: WebhookConfig,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(Courier::new(backends.store.clone(), config).run(shutdown.clone()))
}

fn api_config(api: &ApiArgs, data: &DataArgs) -> anyhow::Result<(ApiConfig, SecretSource)> {
    let (token, source) = load_or_create_token(api.auth_token.as_deref(), &data.data_dir)
        .context("loading the auth token")?;
    let mut config = ApiConfig::new(token);
    config.max_code_bytes = api.max_code_bytes;
    config.default_timeout = Duration::from_secs(api.default_timeout_s);
    config.max_timeout = Duration::from_secs(api.max_timeout_s);
    config.cors_origins = api
        .cors_origins
        .parse::<CorsOrigins>()
        .context("invalid --cors-origins")?;
    config.idempotency_ttl = Duration::from_secs(api.idempotency_ttl_s);
    Ok((config, source))
}

fn job_loop_config(backends: &BackendArgs) -> JobLoopConfig {
    JobLoopConfig {
        heartbeat_ttl: Duration::from_secs(backends.heartbeat_ttl_s),
        heartbeat_every: Duration::from_secs(backends.heartbeat_ttl_s.max(1)) / 4,
        ..JobLoopConfig::default()
    }
}

/// The internal token of the file endpoints: from the environment, else generated
/// in-process when everything runs in this one process, else shared through the data
/// directory.
fn internal_token(
    backends: &BackendArgs,
    data: &DataArgs,
    embedded: bool,
) -> anyhow::Result<InternalToken> {
    if embedded && backends.internal_token.is_none() {
        return InternalToken::new(random_secret()).context("generating the internal token");
    }
    let (token, source) =
        load_or_create_internal_token(backends.internal_token.as_deref(), &data.data_dir)
            .context("loading the internal token (TETHER_INTERNAL_TOKEN)")?;
    if let SecretSource::Generated(path) = source {
        tracing::warn!(
            path = %path.display(),
            "generated the internal token; the API and every worker-host must share it (TETHER_INTERNAL_TOKEN or this file)"
        );
    }
    Ok(token)
}

/// Bind the node's file endpoint and serve it until `shutdown`; returns the URL the node
/// advertises for it.
async fn start_file_endpoint(
    worker: &WorkerArgs,
    engine: &Engine,
    token: InternalToken,
    shutdown: &CancellationToken,
) -> anyhow::Result<String> {
    let listener = TcpListener::bind(worker.file_listen)
        .await
        .with_context(|| format!("binding --file-listen {}", worker.file_listen))?;
    let bound = listener.local_addr()?;
    let url = match &worker.file_advertise_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None if bound.ip().is_unspecified() => bail!(
            "--file-listen {bound} is a wildcard address: set --file-advertise-url (TETHER_FILE_ADVERTISE_URL) to the URL the API reaches this node at"
        ),
        None => format!("http://{bound}"),
    };
    let server =
        tether_worker_host::file_server::run(engine.clone(), token, listener, shutdown.clone());
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "file endpoint failed");
        }
    });
    Ok(url)
}

fn node_watch_config(backends: &BackendArgs) -> NodeWatchConfig {
    let mut config = NodeWatchConfig::new(Duration::from_secs(backends.heartbeat_ttl_s));
    config.sweep_every = Duration::from_millis(backends.node_sweep_ms.max(10));
    config
}

/// Run the dead-node watch in the background until `shutdown`. Every role that
/// dispatches runs it: it is one small Redis script per sweep and idempotent, so a
/// deployment without a `tether dispatcher` process still recovers from node loss.
fn spawn_node_watch(
    dispatcher: &Dispatcher,
    backends: &BackendArgs,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(
        dispatcher
            .clone()
            .watch_nodes(node_watch_config(backends), shutdown.clone()),
    )
}

/// Start the engine, its file endpoint and its job loop; returns a handle that stops them.
async fn start_node(
    worker: &WorkerArgs,
    data: &DataArgs,
    backends: &Backends,
    mut loop_config: JobLoopConfig,
    token: InternalToken,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Engine, tokio::task::JoinHandle<()>)> {
    if !image::present(&worker.image).await {
        image::build(&worker.image).await?;
    }
    let config = engine_config(worker, data)?;
    let engine = Engine::start(config, CancellationToken::new())
        .await
        .context("connecting to Docker (is dockerd running? scripts/install-deps.sh starts it)")?;
    loop_config.file_url = Some(start_file_endpoint(worker, &engine, token, shutdown).await?);
    let job_loop = JobLoop {
        engine: engine.clone(),
        bus: backends.bus.clone(),
        store: backends.store.clone(),
        registry: backends.registry.clone(),
        config: loop_config,
    };
    let stop = shutdown.clone();
    let jobs = tokio::spawn(async move {
        if let Err(e) = job_loop.run(stop).await {
            tracing::error!(error = %e, "job loop ended");
        }
    });
    Ok((engine, jobs))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let shutdown = shutdown::on_signal();
    // Every setting is checked (and the port bound) before the first connection, so a
    // bad setting ends the process with its own message and nothing else.
    let (mut api_config, source) = api_config(&args.api, &args.data)?;
    api_config.egress_allow = egress_allow(&args.egress)?;
    let webhooks = webhook_config(&args.webhooks, &args.egress, &args.data)?;
    let embedded = args.backends.amqp_url.is_none();
    let token = internal_token(&args.backends, &args.data, embedded)?;
    api_config.internal_token = Some(token.clone());
    let listener = TcpListener::bind(args.api.listen)
        .await
        .with_context(|| format!("binding {}", args.api.listen))?;
    let backends = backends(&args.backends, "serve").await?;
    let (engine, jobs) = start_node(
        &args.worker,
        &args.data,
        &backends,
        job_loop_config(&args.backends),
        token,
        &shutdown,
    )
    .await?;
    announce(&listener, &api_config, &source);
    let courier = start_courier(&backends, webhooks, &shutdown);
    let dispatcher = Dispatcher::new(
        backends.bus.clone(),
        backends.store.clone(),
        backends.registry.clone(),
    );
    spawn_node_watch(&dispatcher, &args.backends, &shutdown);
    let served = tether_api::run(api_config, dispatcher, listener, shutdown.clone()).await;
    shutdown.cancel();
    let _ = tokio::time::timeout(DRAIN, jobs).await;
    let _ = tokio::time::timeout(DRAIN, courier).await;
    engine.shutdown(DRAIN).await;
    served.context("API server failed")
}

async fn api(args: ApiRoleArgs) -> anyhow::Result<()> {
    let shutdown = shutdown::on_signal();
    let (mut api_config, source) = api_config(&args.api, &args.data)?;
    api_config.egress_allow = egress_allow(&args.egress)?;
    api_config.internal_token = Some(internal_token(&args.backends, &args.data, false)?);
    let listener = TcpListener::bind(args.api.listen)
        .await
        .with_context(|| format!("binding {}", args.api.listen))?;
    let backends = backends(&args.backends, "api").await?;
    announce(&listener, &api_config, &source);
    let dispatcher = Dispatcher::new(backends.bus, backends.store, backends.registry);
    spawn_node_watch(&dispatcher, &args.backends, &shutdown);
    tether_api::run(api_config, dispatcher, listener, shutdown)
        .await
        .context("API server failed")
}

async fn worker_host(args: WorkerRoleArgs) -> anyhow::Result<()> {
    let shutdown = shutdown::on_signal();
    let token = internal_token(&args.backends, &args.data, false)?;
    let backends = backends(&args.backends, "worker-host").await?;
    let (engine, jobs) = start_node(
        &args.worker,
        &args.data,
        &backends,
        job_loop_config(&args.backends),
        token,
        &shutdown,
    )
    .await?;
    tracing::info!(node_id = %args.worker.node_id, "worker-host running");
    shutdown.cancelled().await;
    let _ = tokio::time::timeout(DRAIN, jobs).await;
    engine.shutdown(DRAIN).await;
    Ok(())
}

async fn dispatcher(args: DispatcherRoleArgs) -> anyhow::Result<()> {
    let shutdown = shutdown::on_signal();
    let webhooks = webhook_config(&args.webhooks, &args.egress, &args.data)?;
    let backends = backends(&args.backends, "dispatcher").await?;
    let courier = start_courier(&backends, webhooks, &shutdown);
    let dispatcher = Dispatcher::new(backends.bus, backends.store, backends.registry);
    let watch = spawn_node_watch(&dispatcher, &args.backends, &shutdown);
    tracing::info!("dispatcher running: delivering webhooks, watching for dead nodes");
    shutdown.cancelled().await;
    let _ = tokio::time::timeout(DRAIN, courier).await;
    let _ = watch.await;
    Ok(())
}

/// Tell the operator where the API listens and how to authenticate.
fn announce(listener: &TcpListener, config: &ApiConfig, source: &SecretSource) {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    println!("Tether is listening on http://{addr}");
    match source {
        SecretSource::Environment => println!("Auth token: (from TETHER_AUTH_TOKEN)"),
        _ => println!("Auth token: {}", config.auth_token.expose_secret()),
    }
    println!(
        "Try: curl -s -H 'X-Auth-Token: <token>' -H 'Content-Type: application/json' -d '{{\"code\": \"print(1+1)\"}}' 'http://{addr}/api/v1/execute?user_uuid='$(cat /proc/sys/kernel/random/uuid)"
    );
}
