//! `ceiling`: the physical limit. N sandboxes are started exactly as the engine starts
//! them (`Sandbox::create`: hardened container, session disk, ZMQ IPC kernel channels),
//! then the same stateful scripts are driven straight into their kernels — no API,
//! queue, store or session executor in between. Every sandbox is destroyed afterwards,
//! and the bench's node directory swept, whatever happened.

use crate::cli::{CeilingArgs, KernelArgs, ThinkTime};
use crate::driver::{self, Failure, Plan, Target};
use crate::memory::{self, MemoryFigures};
use crate::report::{self, Report, RunConfig, Section};
use crate::stats::{Figures, Sample};
use crate::workload::Answer;
use anyhow::Context as _;
use futures::StreamExt;
use std::time::Duration;
use tether_protocol::NodeId;
use tether_worker_host::EngineConfig;
use tether_worker_host::container::{ContainerRuntime, NODE_LABEL};
use tether_worker_host::janitor;
use tether_worker_host::kernel::ExecEnd;
use tether_worker_host::output::OutputCollector;
use tether_worker_host::sandbox::Sandbox;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the ceiling measured.
#[derive(Debug)]
pub struct CeilingRun {
    pub figures: Figures,
    pub samples: Vec<Sample>,
    /// Each kernel's first request, when the plan excludes set-up from the figures.
    pub setup: Vec<Sample>,
    /// Idle memory of the sandboxes after the run.
    pub memory: Option<MemoryFigures>,
    pub cut_short: bool,
}

/// A sandbox driven directly through its kernel client.
#[derive(Debug)]
struct KernelSession {
    sandbox: Sandbox,
    timeout: Duration,
    output_cap: usize,
    never: CancellationToken,
}

impl Target for KernelSession {
    async fn execute(&mut self, code: &str) -> Result<Answer, Failure> {
        let kernel = &mut self.sandbox.kernel;
        kernel.drain_stale();
        let deadline = Instant::now() + self.timeout;
        let collector = OutputCollector::new(self.output_cap);
        match kernel
            .execute(code, deadline, collector, None, &self.never)
            .await
        {
            Ok((_, ExecEnd::Completed(c))) => {
                let error = c.error.map(|e| format!("{}: {}", e.ename, e.evalue));
                Ok(Answer::from_outputs(&c.outputs, c.stdout, error))
            }
            Ok((_, ExecEnd::DeadlinePassed(_))) => {
                Err(Failure::new("timeout", "kernel still busy at the deadline"))
            }
            Ok((_, ExecEnd::KernelLost(_))) => {
                Err(Failure::new("kernel_lost", "kernel stopped answering"))
            }
            Err(e) => Err(Failure::new("kernel_channel", e.to_string())),
        }
    }
}

/// Engine settings for the bench's own sandboxes: defaults (the same limits a server
/// runs with), a node id of its own so clean-up never touches anything else.
pub fn engine_config(
    kernel: &KernelArgs,
    min_idle: usize,
    max_total: usize,
) -> anyhow::Result<EngineConfig> {
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let node =
        NodeId::try_from(format!("bench-{suffix}")).map_err(|e| anyhow::anyhow!("node id: {e}"))?;
    let mut config = EngineConfig::new(node, kernel.data_dir.clone());
    config.image = kernel.image.clone();
    config.min_idle = min_idle;
    config.max_total = max_total;
    Ok(config)
}

/// Start `kernels` sandboxes, drive them with `plan`, measure their idle memory, and
/// destroy them.
pub async fn measure(
    kernel: &KernelArgs,
    kernels: usize,
    plan: Plan,
    request_timeout: Duration,
    quiet: bool,
    stop: &CancellationToken,
) -> anyhow::Result<CeilingRun> {
    let config = engine_config(kernel, 0, kernels)?;
    let runtime = ContainerRuntime::connect(config.clone()).await.context(
        "connecting to Docker (the ceiling starts sandboxes itself: run as root with dockerd up)",
    )?;
    let docker = memory::docker().await?;
    let rss_before = memory::own_rss();

    let starting = driver::progress(quiet, kernels as u64, "kernels");
    let created: Vec<_> = futures::stream::iter(0..kernels)
        .map(|_| {
            let (runtime, config, starting) = (&runtime, &config, &starting);
            async move {
                let made = Sandbox::create(runtime, config).await;
                starting.inc(1);
                made
            }
        })
        .buffer_unordered(kernel.start_concurrency.max(1))
        .collect()
        .await;
    starting.finish_and_clear();
    let mut sandboxes = Vec::with_capacity(kernels);
    let mut first_error = None;
    for made in created {
        match made {
            Ok(sandbox) => sandboxes.push(sandbox),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }

    let measured = match first_error {
        Some(e) => Err(anyhow::anyhow!(
            "starting {kernels} sandboxes ({}): {e}",
            config.image
        )),
        None if stop.is_cancelled() => Err(anyhow::anyhow!("stopped before the ceiling ran")),
        None => {
            let targets = sandboxes
                .drain(..)
                .map(|sandbox| KernelSession {
                    sandbox,
                    timeout: request_timeout,
                    output_cap: config.output_cap,
                    never: CancellationToken::new(),
                })
                .collect();
            let bar = driver::progress(quiet, kernels as u64 * plan.requests_per_user, "ceiling");
            let run = driver::drive(targets, plan, &bar, stop).await;
            bar.finish_and_clear();
            sandboxes.extend(run.targets.into_iter().map(|t| t.sandbox));
            // Let the kernels go idle before reading their memory.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let ids: Vec<String> = sandboxes.iter().map(|s| s.container_id.clone()).collect();
            let images: Vec<_> = sandboxes
                .iter()
                .map(|s| config.node_dir().join("s").join(&s.slot).join("disk.img"))
                .collect();
            let images: Vec<&std::path::Path> = images.iter().map(|p| p.as_path()).collect();
            let host = match (rss_before, memory::own_rss()) {
                (Some(before), Some(after)) if !sandboxes.is_empty() => {
                    Some((after as f64 - before as f64) / sandboxes.len() as f64 / 1024.0 / 1024.0)
                }
                _ => None,
            };
            let memory = memory::measure(
                &docker,
                &ids,
                &images,
                host,
                "sandboxes after the ceiling run, idle 1 s; host = bench process RSS growth per kernel client",
            )
            .await;
            Ok(CeilingRun {
                figures: Figures::from_samples(&run.samples, run.elapsed),
                samples: run.samples,
                setup: run.setup,
                memory: Some(memory),
                cut_short: run.cut_short,
            })
        }
    };

    // Clean up whatever happened above.
    let cleaning = driver::progress(quiet, sandboxes.len() as u64, "cleaning up");
    futures::stream::iter(sandboxes)
        .for_each_concurrent(4, |sandbox| {
            let (runtime, cleaning) = (&runtime, &cleaning);
            async move {
                if let Err(e) = sandbox.destroy(runtime).await {
                    tracing::warn!(error = %e, "sandbox teardown incomplete; the sweep follows");
                }
                cleaning.inc(1);
            }
        })
        .await;
    cleaning.finish_and_clear();
    janitor::remove_leftovers(&runtime, &config).await;
    if let Ok(left) =
        memory::containers_labelled(&docker, &format!("{NODE_LABEL}={}", config.node_id)).await
        && !left.is_empty()
    {
        tracing::warn!(
            count = left.len(),
            "ceiling containers still present after clean-up"
        );
    }
    measured
}

/// Said in every report whose figures leave the set-up requests out.
pub const SETUP_NOTE: &str = "figures exclude each user's first request (session set-up: sandbox, \
     first import), which ran before the clock started and is reported as `setup`";

/// The `ceiling` subcommand.
pub async fn run(args: CeilingArgs, stop: &CancellationToken) -> anyhow::Result<()> {
    let (kernels, requests) = if args.limits.smoke {
        (2, 3)
    } else {
        (args.kernels, args.requests)
    };
    let think = args.think.unwrap_or(ThinkTime::ZERO);
    let plan = Plan {
        requests_per_user: requests,
        think,
        max_duration: args.limits.max_duration(),
        exclude_setup: args.exclude_setup.unwrap_or(false),
    };
    let run = measure(
        &args.kernel,
        kernels,
        plan,
        args.limits.request_timeout(),
        args.output.quiet,
        stop,
    )
    .await?;
    let mut report = Report::new(
        "ceiling",
        args.mode,
        format!("{kernels} kernels over ZMQ IPC ({})", args.kernel.image),
        RunConfig::new(kernels, requests, think, args.limits.smoke),
    );
    report.figures = Some(run.figures);
    report.memory = run.memory;
    if plan.exclude_setup {
        let setup = Figures::spanning(&run.setup);
        report
            .sections
            .insert("setup".into(), Section::measured(setup));
        report.notes.push(SETUP_NOTE.into());
    }
    if run.cut_short {
        report
            .notes
            .push("run cut short (deadline or Ctrl-C): fewer requests than planned".into());
    }
    report.emit(
        &[report::series("ceiling (raw kernels)", &run.samples)],
        &args.output,
    )
}
