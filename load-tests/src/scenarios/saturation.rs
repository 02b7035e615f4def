//! `saturation`: the seed workload with zero think time — maximum sustained throughput,
//! as a fraction of the raw-kernel ceiling measured in the same invocation. Each user's
//! first request (session set-up) runs before the clock starts and is reported apart.

use crate::cli::{LoadArgs, ThinkTime};
use crate::scenarios::load;
use tokio_util::sync::CancellationToken;

pub async fn run(args: LoadArgs, stop: &CancellationToken) -> anyhow::Result<()> {
    let defaults = load::Defaults {
        think: ThinkTime::ZERO,
        exclude_setup: true,
    };
    load::run("saturation", args, defaults, stop).await
}
