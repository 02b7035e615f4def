//! `tether-bench`: parse the command line, set up logging, run the chosen scenario.

use clap::Parser;
use tether_bench::cli::Cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,zeromq=error".into()))
        .with_writer(std::io::stderr)
        .init();
    tether_bench::run(Cli::parse()).await
}
