//! Tether's benchmark suite. Every scenario prints absolute figures *and* the ratios that
//! survive noisy machines: end-to-end throughput ÷ raw-kernel throughput, and latency
//! added over the raw kernel, both measured in the same invocation (ARCHITECTURE,
//! "Performance is measured, not asserted"). Nothing here asserts a threshold.
//!
//! - [`cli`]: subcommands and flags.
//! - [`scenarios`]: `seed`, `saturation`, `cold`, `ceiling`, `async`.
//! - [`driver`]: N users × M stateful requests with think time, bounded in count and time.
//! - [`workload`]: the three stateful scripts and how their answers are checked.
//! - [`client`]: the HTTP client for Tether's API (loopback targets only).
//! - [`stats`]: latency samples → figures (hdrhistogram).
//! - [`memory`]: idle-session memory (container cgroup usage, host-side state).
//! - [`report`]: the human text and the JSON report.
//! - [`chart`]: the SVG latency chart.

pub mod chart;
pub mod cli;
pub mod client;
pub mod driver;
pub mod memory;
pub mod report;
pub mod scenarios;
pub mod stats;
pub mod workload;

use cli::{Cli, Command};

/// Run the scenario `cli` names; it prints its report and writes the files asked for.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let stop = driver::stop_on_ctrl_c();
    match cli.command {
        Command::Seed(args) => scenarios::seed::run(args, &stop).await,
        Command::Saturation(args) => scenarios::saturation::run(args, &stop).await,
        Command::Cold(args) => scenarios::cold::run(args, &stop).await,
        Command::Ceiling(args) => scenarios::ceiling::run(args, &stop).await,
        Command::Async(args) => scenarios::async_jobs::run(args, &stop).await,
    }
}
