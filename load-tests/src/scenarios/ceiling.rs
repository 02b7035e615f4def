//! `ceiling`: the physical limit. N sandboxes are started exactly as the engine starts
//! them (`Sandbox::create`: hardened container, session disk, ZMQ IPC kernel channels),
//! then the same stateful scripts are driven straight into their kernels — no API,
//! queue, store or session executor in between. Every sandbox is destroyed afterwards,
//! and the bench's node directory swept, whatever happened.

use crate::cli::{CeilingArgs, KernelArgs, ThinkTime};
use crate::driver::{self, Failure, Measured, Plan, Target};
use crate::memory::{self, MemoryFigures};
use crate::report::{self, Report, RunConfig, Section};
use crate::stats::{Figures, Sample};
use crate::workload::Answer;
use anyhow::Context as _;
use futures::StreamExt;
use indicatif::ProgressBar;
use std::time::Duration;
use tether_protocol::NodeId;
use tether_worker_host::EngineConfig;
use tether_worker_host::container::{ContainerRuntime, NODE_LABEL};
use tether_worker_host::janitor;
use tether_worker_host::kernel::ExecEnd;
use tether_worker_host::output::{Collected, OutputCollector};
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
        let mut end = kernel
            .execute(code, deadline, collector, None, &self.never)
            .await;
        // A missed heartbeat on a busy machine: keep waiting, as the engine does while
        // the container runs (its own container is not checked here; the deadline bounds
        // the wait).
        let mut earlier = Collected::default();
        while let Ok((id, ExecEnd::Silent(more))) = end {
            earlier.extend(more);
            let collector = OutputCollector::continuing(self.output_cap, &earlier);
            let resumed = kernel
                .resume(&id, deadline, collector, None, Some(&self.never))
                .await;
            end = Ok((id, resumed));
        }
        match end {
            Ok((_, ExecEnd::Completed(more))) => {
                let mut c = earlier;
                c.extend(more);
                let error = c.error.map(|e| format!("{}: {}", e.ename, e.evalue));
                Ok(Answer::from_outputs(&c.outputs, c.stdout, error))
            }
            Ok((_, ExecEnd::DeadlinePassed(_))) => {
                Err(Failure::new("timeout", "kernel still busy at the deadline"))
            }
            Ok((_, ExecEnd::KernelLost(_) | ExecEnd::Silent(_))) => {
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

/// N sandboxes started exactly as the engine starts them, driven directly, owned by the
/// bench until [`Kernels::destroy`].
#[derive(Debug)]
pub struct Kernels {
    runtime: ContainerRuntime,
    config: EngineConfig,
    docker: bollard::Docker,
    sessions: Vec<KernelSession>,
    /// The bench process's resident memory before the sandboxes existed.
    rss_before: Option<u64>,
    quiet: bool,
}

impl Kernels {
    /// Start `n` sandboxes (a few at a time). On any failure, what was started is
    /// destroyed and the error returned.
    pub async fn start(
        kernel: &KernelArgs,
        n: usize,
        request_timeout: Duration,
        quiet: bool,
    ) -> anyhow::Result<Self> {
        let config = engine_config(kernel, 0, n)?;
        let runtime = ContainerRuntime::connect(config.clone()).await.context(
            "connecting to Docker (the ceiling starts sandboxes itself: run as root with dockerd up)",
        )?;
        let docker = memory::docker().await?;
        let rss_before = memory::own_rss();
        let starting = driver::progress(quiet, n as u64, "kernels");
        let created: Vec<_> = futures::stream::iter(0..n)
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
        let mut first_error = None;
        let mut kernels = Self {
            sessions: Vec::with_capacity(n),
            runtime,
            docker,
            rss_before,
            quiet,
            config,
        };
        for made in created {
            match made {
                Ok(sandbox) => kernels.sessions.push(KernelSession {
                    sandbox,
                    timeout: request_timeout,
                    output_cap: kernels.config.output_cap,
                    never: CancellationToken::new(),
                }),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            None => Ok(kernels),
            Some(e) => {
                let image = kernels.config.image.clone();
                kernels.destroy().await;
                Err(anyhow::anyhow!("starting {n} sandboxes ({image}): {e}"))
            }
        }
    }

    /// Drive every kernel through `plan` (one simulated user each).
    pub async fn drive(
        &mut self,
        plan: Plan,
        bar: &ProgressBar,
        stop: &CancellationToken,
    ) -> Measured {
        let sessions = std::mem::take(&mut self.sessions);
        let run = driver::drive(sessions, plan, bar, stop).await;
        self.sessions = run.targets;
        run.measured
    }

    /// Idle memory per sandbox (after a second's rest) and host-side state per session.
    pub async fn memory(&self) -> MemoryFigures {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let sandboxes: Vec<&Sandbox> = self.sessions.iter().map(|s| &s.sandbox).collect();
        let ids: Vec<String> = sandboxes.iter().map(|s| s.container_id.clone()).collect();
        let node_dir = self.config.node_dir();
        let images: Vec<_> = sandboxes
            .iter()
            .map(|s| node_dir.join("s").join(&s.slot).join("disk.img"))
            .collect();
        let images: Vec<&std::path::Path> = images.iter().map(|p| p.as_path()).collect();
        let host = match (self.rss_before, memory::own_rss()) {
            (Some(before), Some(after)) if !ids.is_empty() => {
                Some((after as f64 - before as f64) / ids.len() as f64 / 1024.0 / 1024.0)
            }
            _ => None,
        };
        let note = "the ceiling's sandboxes after their run, idle 1 s; host = bench process RSS \
                    growth per kernel client";
        memory::measure(&self.docker, &ids, &images, host, note).await
    }

    /// Destroy every sandbox, then sweep the bench's node (containers, mounts, loop
    /// devices, directories) in case a teardown was incomplete.
    pub async fn destroy(self) {
        let cleaning = driver::progress(self.quiet, self.sessions.len() as u64, "cleaning up");
        let runtime = &self.runtime;
        futures::stream::iter(self.sessions)
            .for_each_concurrent(4, |session| {
                let cleaning = &cleaning;
                async move {
                    if let Err(e) = session.sandbox.destroy(runtime).await {
                        tracing::warn!(error = %e, "sandbox teardown incomplete; the sweep follows");
                    }
                    cleaning.inc(1);
                }
            })
            .await;
        cleaning.finish_and_clear();
        janitor::remove_leftovers(&self.runtime, &self.config).await;
        let label = format!("{NODE_LABEL}={}", self.config.node_id);
        if let Ok(left) = memory::containers_labelled(&self.docker, &label).await
            && !left.is_empty()
        {
            tracing::warn!(
                count = left.len(),
                "ceiling containers still present after clean-up"
            );
        }
    }
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
    let mut started = Kernels::start(kernel, kernels, request_timeout, quiet).await?;
    let total = kernels as u64 * plan.requests_per_user;
    let bar = driver::progress(quiet, total, "ceiling");
    let m = started.drive(plan, &bar, stop).await;
    bar.finish_and_clear();
    let memory = started.memory().await;
    started.destroy().await;
    Ok(CeilingRun {
        figures: Figures::from_samples(&m.samples, m.elapsed),
        samples: m.samples,
        setup: m.setup,
        memory: Some(memory),
        cut_short: m.cut_short,
    })
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
        first_step: 0,
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
