//! Subcommands and flags. Sizes default to the reference workload (25 users ×
//! 100 requests); `--smoke` shrinks every size for CI.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// Tether's benchmark suite: load scenarios against a running server and the raw-kernel
/// ceiling they are measured against.
#[derive(Debug, Parser)]
#[command(name = "tether-bench", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// N users × M stateful requests with think time, every answer verified; sessions
    /// released at the end. Measures the raw-kernel ceiling first (same shape) unless
    /// `--with-ceiling false`.
    Seed(LoadArgs),
    /// The seed workload with zero think time: maximum sustained throughput, compared
    /// with the ceiling measured in the same invocation.
    Saturation(LoadArgs),
    /// First-request latency of brand-new sessions against a warm request on the same
    /// session; idle session memory.
    Cold(ColdArgs),
    /// The physical limit: the same workload driven straight into N kernels over their
    /// ZMQ channels (no API, queue or store).
    Ceiling(CeilingArgs),
    /// Async clients: submit + long-poll, submit + SSE, and webhook round trips.
    Async(AsyncArgs),
}

/// Labels the report with the deployment that was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `tether serve`: every role in one process, in-memory bus and store.
    Embedded,
    /// Separate roles over RabbitMQ and Redis.
    Distributed,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Embedded => "embedded",
            Mode::Distributed => "distributed",
        }
    }
}

/// Where the server is and how to talk to it.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Base URL of the Tether API; loopback addresses only.
    #[arg(long, default_value = "http://127.0.0.1:3874")]
    pub url: String,
    /// API token sent as `X-Auth-Token` (printed by `tether serve` at start-up).
    #[arg(long, env = "TETHER_AUTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Which deployment is being measured (a label in the report).
    #[arg(long, value_enum, default_value_t = Mode::Embedded)]
    pub mode: Mode,
}

/// Where the results go.
#[derive(Debug, Clone, Default, Args)]
pub struct OutputArgs {
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Also draw the latency chart as SVG to this file.
    #[arg(long, value_name = "PATH")]
    pub chart: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Bounds every run obeys, so that every loop stops by itself.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Tiny sizes for CI (a few requests; no thresholds are asserted anywhere).
    #[arg(long)]
    pub smoke: bool,
    /// Stop issuing requests after this many seconds, whatever is left.
    #[arg(long, default_value_t = 900)]
    pub max_duration_s: u64,
    /// Give up on one request after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub request_timeout_s: u64,
}

impl LimitArgs {
    pub fn max_duration(&self) -> Duration {
        Duration::from_secs(self.max_duration_s)
    }
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_s)
    }
}

/// How the raw-kernel ceiling starts its sandboxes (same engine settings as a server
/// with default limits: hardened profile, 512 MiB, 1 CPU per sandbox).
#[derive(Debug, Clone, Args)]
pub struct KernelArgs {
    /// Sandbox image.
    #[arg(long, env = "TETHER_IMAGE", default_value = "tether-sandbox:latest")]
    pub image: String,
    /// Host directory for the ceiling's session disks and kernel sockets.
    #[arg(long, default_value = "/tmp/tether-bench")]
    pub data_dir: PathBuf,
    /// Sandboxes started at once while setting up the ceiling.
    #[arg(long, default_value_t = 4)]
    pub start_concurrency: usize,
}

/// Think time between a user's requests, uniform in `min..max` seconds (`0.1..0.5`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThinkTime {
    pub min: Duration,
    pub max: Duration,
}

impl ThinkTime {
    pub const ZERO: ThinkTime = ThinkTime {
        min: Duration::ZERO,
        max: Duration::ZERO,
    };
    /// The reference workload's 0.1–0.5 s.
    pub const SEED: ThinkTime = ThinkTime {
        min: Duration::from_millis(100),
        max: Duration::from_millis(500),
    };

    /// A uniformly drawn pause.
    pub fn draw(&self) -> Duration {
        use rand::Rng;
        if self.max <= self.min {
            return self.min;
        }
        let ms = rand::rng().random_range(self.min.as_secs_f64()..=self.max.as_secs_f64());
        Duration::from_secs_f64(ms)
    }
}

impl std::str::FromStr for ThinkTime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let secs = |v: &str| {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0 && *x <= 60.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("`{v}` is not a number of seconds in 0..=60"))
        };
        let (min, max) = match s.split_once("..") {
            Some((a, b)) => (secs(a)?, secs(b)?),
            None => (secs(s)?, secs(s)?),
        };
        if max < min {
            return Err(format!("think time `{s}`: max is below min"));
        }
        Ok(Self { min, max })
    }
}

/// `seed` and `saturation`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub kernel: KernelArgs,
    /// Concurrent users (sessions).
    #[arg(long, default_value_t = 25)]
    pub users: usize,
    /// Requests per user, including the one that sets up its state.
    #[arg(long, default_value_t = 100)]
    pub requests: u64,
    /// Think time between requests in seconds, `MIN..MAX` (seed: 0.1..0.5, saturation: 0).
    #[arg(long, value_name = "MIN..MAX")]
    pub think: Option<ThinkTime>,
    /// Measure the raw-kernel ceiling first, with as many kernels as users.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub with_ceiling: bool,
    /// Split the run into this many blocks and alternate ceiling and end-to-end blocks
    /// (the ceiling's kernels stay up, idle, during end-to-end blocks), so that other load
    /// on the machine hits both alike. 1 = whole ceiling run, kernels removed, then the
    /// whole end-to-end run.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub rounds: u64,
    /// Run each user's first request (session set-up) before the clock starts and report
    /// it apart, so the figures describe the steady state (default: seed false, saturation true).
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    pub exclude_setup: Option<bool>,
}

/// `ceiling`.
#[derive(Debug, Clone, Args)]
pub struct CeilingArgs {
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub kernel: KernelArgs,
    /// Kernels driven in parallel (one simulated user each).
    #[arg(long, visible_alias = "users", default_value_t = 25)]
    pub kernels: usize,
    /// Executes per kernel.
    #[arg(long, default_value_t = 100)]
    pub requests: u64,
    /// Think time between executes in seconds, `MIN..MAX` (default 0).
    #[arg(long, value_name = "MIN..MAX")]
    pub think: Option<ThinkTime>,
    /// Run each user's first request (session set-up) before the clock starts and report
    /// it apart, so the figures describe the steady state (default: false).
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    pub exclude_setup: Option<bool>,
    /// Label for the report (the ceiling itself never touches the API).
    #[arg(long, value_enum, default_value_t = Mode::Embedded)]
    pub mode: Mode,
}

/// Whether the measured server keeps a warm pool (the bench cannot reconfigure it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolState {
    Warm,
    Disabled,
}

/// `cold`.
#[derive(Debug, Clone, Args)]
pub struct ColdArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub kernel: KernelArgs,
    /// Brand-new sessions to open, one after another.
    #[arg(long, default_value_t = 10)]
    pub sessions: usize,
    /// Pause between sessions in seconds, so a warm pool can refill.
    #[arg(long, default_value_t = 3.0)]
    pub pause_s: f64,
    /// What the server's pool is set to (a label: start the server with its minimum idle
    /// pool size at 0 and pass `disabled` to measure without a pool).
    #[arg(long, value_enum, default_value_t = PoolState::Warm)]
    pub server_pool: PoolState,
    /// Skip HTTP: start an engine in this process twice, with a warm pool and with none,
    /// and measure both.
    #[arg(long)]
    pub in_process: bool,
    /// Warm pool size for `--in-process`.
    #[arg(long, default_value_t = 2)]
    pub pool_size: usize,
}

/// Which async client to exercise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AsyncClient {
    /// Submit, then long-poll the job record.
    Poll,
    /// Submit, then follow the job's event stream.
    Sse,
    /// Submit with a callback URL and wait for the delivery.
    Webhook,
}

/// `async`.
#[derive(Debug, Clone, Args)]
pub struct AsyncArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Concurrent users (sessions) per client kind.
    #[arg(long, default_value_t = 10)]
    pub users: usize,
    /// Jobs per user.
    #[arg(long, default_value_t = 20)]
    pub requests: u64,
    /// Think time between jobs in seconds, `MIN..MAX` (default 0).
    #[arg(long, value_name = "MIN..MAX")]
    pub think: Option<ThinkTime>,
    /// Run each user's first request (session set-up) before the clock starts and report
    /// it apart, so the figures describe the steady state (default: false).
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    pub exclude_setup: Option<bool>,
    /// Client kinds to run, in order.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [AsyncClient::Poll, AsyncClient::Sse, AsyncClient::Webhook])]
    pub clients: Vec<AsyncClient>,
    /// Long-poll wait per request in seconds (`?wait=N`).
    #[arg(long, default_value_t = 30)]
    pub wait_s: u64,
}

impl Command {
    /// The output settings of whichever subcommand was chosen.
    pub fn output(&self) -> &OutputArgs {
        match self {
            Command::Seed(a) | Command::Saturation(a) => &a.output,
            Command::Cold(a) => &a.output,
            Command::Ceiling(a) => &a.output,
            Command::Async(a) => &a.output,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn think_time_parses_ranges_and_single_values() {
        let t: ThinkTime = "0.1..0.5".parse().expect("range");
        assert_eq!(t, ThinkTime::SEED);
        let z: ThinkTime = "0".parse().expect("single");
        assert_eq!(z, ThinkTime::ZERO);
        assert!("0.5..0.1".parse::<ThinkTime>().is_err());
        assert!("x".parse::<ThinkTime>().is_err());
        for _ in 0..100 {
            let d = t.draw();
            assert!(d >= t.min && d <= t.max);
        }
    }

    #[test]
    fn with_ceiling_defaults_on_and_can_be_switched_off() {
        let cli = Cli::try_parse_from(["tether-bench", "seed"]).expect("parse");
        let Command::Seed(a) = cli.command else {
            panic!("seed")
        };
        assert!(a.with_ceiling);
        assert_eq!(a.users, 25);
        let cli = Cli::try_parse_from(["tether-bench", "saturation", "--with-ceiling", "false"])
            .expect("parse");
        let Command::Saturation(a) = cli.command else {
            panic!("saturation")
        };
        assert!(!a.with_ceiling);
    }
}
