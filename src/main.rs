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
    if let Err(e) = runtime.block_on(roles::run(cli.command)) {
        // Exit without tearing the runtime down: a role that fails after connecting
        // would otherwise have its broker client's I/O thread panic on the cancelled
        // runtime and bury this message under a backtrace.
        eprintln!("Error: {e:?}");
        std::process::exit(1);
    }
    Ok(())
}

fn init_tracing(filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false)
        .init();
}
