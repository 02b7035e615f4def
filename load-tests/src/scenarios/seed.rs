//! `seed`: the reference workload of the service Tether replaces — N users × M stateful
//! requests, think time 0.1–0.5 s, every answer verified, sessions released at the end.

use crate::cli::{LoadArgs, ThinkTime};
use crate::scenarios::load;
use tokio_util::sync::CancellationToken;

pub async fn run(args: LoadArgs, stop: &CancellationToken) -> anyhow::Result<()> {
    let defaults = load::Defaults {
        think: ThinkTime::SEED,
        exclude_setup: false,
    };
    load::run("seed", args, defaults, stop).await
}
