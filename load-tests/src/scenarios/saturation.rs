//! `saturation`: the seed workload with zero think time — maximum sustained throughput,
//! as a fraction of the raw-kernel ceiling measured in the same invocation.

use crate::cli::{LoadArgs, ThinkTime};
use crate::scenarios::load;
use tokio_util::sync::CancellationToken;

pub async fn run(args: LoadArgs, stop: &CancellationToken) -> anyhow::Result<()> {
    load::run("saturation", args, ThinkTime::ZERO, stop).await
}
