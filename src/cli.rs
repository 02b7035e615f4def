//! Command line and environment configuration. Every flag has a `TETHER_…` twin.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Tether: a self-hosted, stateful code-interpreter backend.
#[derive(Debug, Parser)]
#[command(name = "tether", version, about)]
pub struct Cli {
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(
        long,
        env = "TETHER_LOG",
        default_value = "info,zeromq=error,lapin::returned_messages=error",
        global = true
    )]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything in one process: API, dispatcher and one worker-host node. Uses the
    /// in-process job bus and result store unless --amqp-url/--redis-url are given.
    Serve(ServeArgs),
    /// The HTTP API role (stateless; run as many as you like). Needs RabbitMQ and Redis.
    Api(ApiRoleArgs),
    /// One worker-host node: sandboxes for the sessions placed on it. Needs RabbitMQ and Redis.
    WorkerHost(WorkerRoleArgs),
    /// The background duties, without the HTTP API: webhook delivery from the store's
    /// outbox, and the dead-node watch (a node whose heartbeat expired has its jobs ended
    /// session_lost and its sessions marked lost). Run one or more; they share the work.
    /// Every `tether api` runs the dead-node watch too, so a deployment without this role
    /// still recovers from node loss. Needs RabbitMQ and Redis.
    Dispatcher(DispatcherRoleArgs),
    /// Build the sandbox image (bootstrapping the base image if no registry is reachable).
    BuildImage,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub worker: WorkerArgs,
    #[command(flatten)]
    pub webhooks: WebhookArgs,
    #[command(flatten)]
    pub egress: EgressArgs,
    #[command(flatten)]
    pub backends: BackendArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Args)]
pub struct ApiRoleArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub egress: EgressArgs,
    #[command(flatten)]
    pub backends: BackendArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Args)]
pub struct WorkerRoleArgs {
    #[command(flatten)]
    pub worker: WorkerArgs,
    #[command(flatten)]
    pub backends: BackendArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Args)]
pub struct DispatcherRoleArgs {
    #[command(flatten)]
    pub webhooks: WebhookArgs,
    #[command(flatten)]
    pub egress: EgressArgs,
    #[command(flatten)]
    pub backends: BackendArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

/// Webhook delivery.
#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// Secret that signs webhooks (Standard Webhooks): `whsec_` + base64 is decoded,
    /// anything else is used as-is. Generated (whsec_) and stored 0600 in the data
    /// directory when unset.
    #[arg(long, env = "TETHER_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Wait after the first failed attempt, ms (then doubling, with jitter).
    #[arg(long, env = "TETHER_WEBHOOK_RETRY_INITIAL_MS", default_value_t = 5000)]
    pub webhook_retry_initial_ms: u64,
    /// Longest wait between attempts, seconds.
    #[arg(
        long,
        env = "TETHER_WEBHOOK_RETRY_MAX_INTERVAL_S",
        default_value_t = 3600
    )]
    pub webhook_retry_max_interval_s: u64,
    /// Give up on a delivery this many seconds after the job ended.
    #[arg(long, env = "TETHER_WEBHOOK_MAX_PERIOD_S", default_value_t = 86_400)]
    pub webhook_max_period_s: u64,
    /// Time limit of one attempt, seconds.
    #[arg(long, env = "TETHER_WEBHOOK_TIMEOUT_S", default_value_t = 10)]
    pub webhook_timeout_s: u64,
}

/// Outbound requests.
#[derive(Debug, Args)]
pub struct EgressArgs {
    /// Internal destinations callback URLs may reach anyway: comma-separated hosts,
    /// host:port, IPs, ip:port or CIDRs. Loopback, private, link-local, CGNAT and metadata
    /// addresses are refused otherwise.
    #[arg(long, env = "TETHER_EGRESS_ALLOW", default_value = "")]
    pub egress_allow: String,
}

/// Where state lives on this host.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// Data directory: auth token, webhook secret, session disks.
    #[arg(long, env = "TETHER_DATA_DIR", default_value = "/var/lib/tether")]
    pub data_dir: PathBuf,
}

/// Distributed backends. Without them `serve` uses in-process implementations.
#[derive(Debug, Args)]
pub struct BackendArgs {
    /// RabbitMQ URL, e.g. amqp://guest:guest@127.0.0.1:5672/%2f
    #[arg(long, env = "TETHER_AMQP_URL", hide_env_values = true)]
    pub amqp_url: Option<String>,
    /// Redis URL, e.g. redis://127.0.0.1:6379
    #[arg(long, env = "TETHER_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix for queue, exchange and key names (several deployments on one broker/store).
    #[arg(long, env = "TETHER_NAMESPACE", default_value = "")]
    pub namespace: String,
    /// Seconds a node may stay silent before it is considered dead.
    #[arg(long, env = "TETHER_HEARTBEAT_TTL_S", default_value_t = 10)]
    pub heartbeat_ttl_s: u64,
    /// Secret the API presents to worker-hosts' file endpoints (direct upload/download).
    /// The API and every worker-host must share it: set it here, or let each role read
    /// the same `internal_token` file from a shared data directory (created on first
    /// start). `serve` without RabbitMQ/Redis generates one in-process when unset.
    #[arg(long, env = "TETHER_INTERNAL_TOKEN", hide_env_values = true)]
    pub internal_token: Option<String>,
    /// Milliseconds between two looks for dead nodes (roles that run the node watch).
    /// A dead node's jobs end session_lost within heartbeat TTL + this.
    #[arg(long, env = "TETHER_NODE_SWEEP_MS", default_value_t = 1000)]
    pub node_sweep_ms: u64,
}

/// The HTTP API.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// Address to listen on.
    #[arg(long, env = "TETHER_LISTEN", default_value = "127.0.0.1:3874")]
    pub listen: SocketAddr,
    /// Token clients send in X-Auth-Token. Generated once and stored (0600) in the data
    /// directory when unset.
    #[arg(long, env = "TETHER_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Largest accepted code, in bytes (larger → 413).
    #[arg(long, env = "TETHER_MAX_CODE_BYTES", default_value_t = 1024 * 1024)]
    pub max_code_bytes: usize,
    /// Execution time limit when a request names none, in seconds.
    #[arg(long, env = "TETHER_DEFAULT_TIMEOUT_S", default_value_t = 30)]
    pub default_timeout_s: u64,
    /// Largest execution time limit a request may ask for, in seconds.
    #[arg(long, env = "TETHER_MAX_TIMEOUT_S", default_value_t = 300)]
    pub max_timeout_s: u64,
    /// Browser origins allowed by CORS: comma-separated, `*` for any, empty for none.
    #[arg(long, env = "TETHER_CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,
    /// How long an Idempotency-Key is remembered, seconds.
    #[arg(long, env = "TETHER_IDEMPOTENCY_TTL_S", default_value_t = 86_400)]
    pub idempotency_ttl_s: u64,
}

/// One worker-host node and its sandboxes.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// This node's id (a-z, 0-9, '-'); names its queue, containers and disks.
    #[arg(long, env = "TETHER_NODE_ID", default_value = "local")]
    pub node_id: String,
    /// Sandbox image.
    #[arg(long, env = "TETHER_IMAGE", default_value = "tether-sandbox:latest")]
    pub image: String,
    /// Sandboxes kept started and ready for new sessions.
    #[arg(long, env = "TETHER_MIN_IDLE", default_value_t = 2)]
    pub min_idle: usize,
    /// Most sandboxes this node runs at once (sessions beyond it get 503 + Retry-After).
    #[arg(long, env = "TETHER_MAX_TOTAL", default_value_t = 30)]
    pub max_total: usize,
    /// Memory limit per sandbox, MiB (swap off).
    #[arg(long, env = "TETHER_MEMORY_MIB", default_value_t = 512)]
    pub memory_mib: u64,
    /// CPU quota per sandbox, in cores.
    #[arg(long, env = "TETHER_CPUS", default_value_t = 1.0)]
    pub cpus: f64,
    /// Process/thread limit per sandbox.
    #[arg(long, env = "TETHER_PIDS_LIMIT", default_value_t = 128)]
    pub pids_limit: i64,
    /// Size of /tmp inside a sandbox, MiB.
    #[arg(long, env = "TETHER_TMP_MIB", default_value_t = 64)]
    pub tmp_mib: u64,
    /// Per-session /sandbox disk quota, MiB.
    #[arg(long, env = "TETHER_DISK_MIB", default_value_t = 500)]
    pub disk_mib: u64,
    /// Output kept per execution, bytes; more is dropped and flagged `truncated`.
    #[arg(long, env = "TETHER_OUTPUT_CAP_BYTES", default_value_t = 1024 * 1024)]
    pub output_cap_bytes: usize,
    /// Sessions idle this long (seconds) are released.
    #[arg(long, env = "TETHER_IDLE_TTL_S", default_value_t = 3600)]
    pub idle_ttl_s: u64,
    /// After a timeout interrupt, how long (ms) to wait before restarting the kernel.
    #[arg(long, env = "TETHER_INTERRUPT_GRACE_MS", default_value_t = 1500)]
    pub interrupt_grace_ms: u64,
    /// Sandboxes started at once (more queue); bursts of starts on few cores slow all of them.
    #[arg(long, env = "TETHER_MAX_CONCURRENT_STARTS", default_value_t = 3)]
    pub max_concurrent_starts: usize,
    /// Address of this node's internal file endpoint (direct upload/download streams
    /// between the API and the node here). Port 0 picks a free port.
    #[arg(long, env = "TETHER_FILE_LISTEN", default_value = "127.0.0.1:0")]
    pub file_listen: SocketAddr,
    /// URL the API reaches the file endpoint at, e.g. http://10.0.0.5:3875. Needed when
    /// --file-listen is a wildcard address; defaults to http://<bound address>.
    #[arg(long, env = "TETHER_FILE_ADVERTISE_URL")]
    pub file_advertise_url: Option<String>,
    /// Disable container hardening (network, capabilities, read-only root). Debug only.
    #[arg(long, env = "TETHER_INSECURE_NO_HARDENING", default_value_t = false)]
    pub insecure_no_hardening: bool,
}
