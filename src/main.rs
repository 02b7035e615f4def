//! `tether`: one binary, one subcommand per role. Parses configuration, starts telemetry
//! and hands over to the role's `run` in the library crates.

mod cli;
mod image;
mod roles;
mod shutdown;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    init_tracing(&cli.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(roles::run(cli.command))
}

fn init_tracing(filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false)
        .init();
}
