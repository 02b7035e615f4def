//! `tether-bench`: parse the command line, set up logging, run the chosen scenario.

use clap::Parser;
use tether_bench::cli::Cli;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,zeromq=error".into()))
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = tether_bench::run(Cli::parse()).await {
        eprintln!("tether-bench: {e:#}");
        std::process::exit(1);
    }
}
