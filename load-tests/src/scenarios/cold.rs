//! `cold`: what a brand-new session pays. For each of K new sessions, one after another:
//! the first request (session placement, sandbox hand-over from the warm pool or a cold
//! container start, kernel attach) and then a warm request on the same session; the
//! difference is the cold-start cost. A pause between sessions lets a warm pool refill.
//!
//! Against a server the bench cannot change the pool, so the figure is labelled with
//! `--server-pool`; to measure without a pool restart the server with a minimum idle pool
//! of 0. `--in-process` instead starts the engine in this process twice — warm pool and
//! no pool — and measures both directly (no HTTP; the engine's cold path is the same).

use crate::cli::{ColdArgs, PoolState, ThinkTime};
use crate::client::{HttpSession, TetherClient};
use crate::driver::{self, Failure, Target};
use crate::memory;
use crate::report::{self, Report, RunConfig, Section};
use crate::scenarios::{ceiling, load};
use crate::stats::{Figures, Sample, SampleStatus, round3};
use crate::workload::Answer;
use indicatif::ProgressBar;
use std::future::Future;
use std::time::Duration;
use tether_protocol::{Outcome, UserUuid};
use tether_worker_host::Engine;
use tether_worker_host::container::NODE_LABEL;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A session that can be opened fresh and released.
trait Session: Target + Sized {
    fn release(self) -> impl Future<Output = bool> + Send;
}

impl Session for HttpSession {
    async fn release(self) -> bool {
        self.client.release(&self.user).await.is_ok()
    }
}

/// A session of an engine running in this process.
struct EngineSession {
    engine: Engine,
    user: UserUuid,
    timeout: Duration,
}

impl Target for EngineSession {
    async fn execute(&mut self, code: &str) -> Result<Answer, Failure> {
        match self.engine.execute(self.user, code, self.timeout).await {
            Ok(report) => {
                let r = report.result;
                let problem = match (&r.error, r.outcome) {
                    (Some(e), _) => Some(format!("{}: {}", e.ename, e.evalue)),
                    (None, Outcome::Ok) => None,
                    (None, other) => Some(format!("{other:?}")),
                };
                Ok(Answer::from_outputs(&r.outputs, r.stdout, problem))
            }
            Err(e) => Err(Failure::new("engine", e.to_string())),
        }
    }
}

impl Session for EngineSession {
    async fn release(self) -> bool {
        self.engine.release(self.user).await
    }
}

/// First-request and warm-request samples of a series of new sessions.
#[derive(Debug, Default)]
struct ColdRun {
    first: Vec<Sample>,
    warm: Vec<Sample>,
    elapsed: Duration,
    unreleased: usize,
}

impl ColdRun {
    fn section(&self) -> Section {
        let first = Figures::from_samples(&self.first, self.elapsed);
        let warm = Figures::from_samples(&self.warm, self.elapsed);
        Section {
            added_latency_ms: Some(round3(first.latency_ms.p50 - warm.latency_ms.p50)),
            added_latency_p95_ms: Some(round3(first.latency_ms.p95 - warm.latency_ms.p95)),
            figures: Some(first),
            warm: Some(warm),
            unavailable: None,
        }
    }
}

async fn timed<S: Session>(session: &mut S, code: &str, expected: &str, start: Instant) -> Sample {
    let sent = Instant::now();
    let answer = session.execute(code).await;
    let done = Instant::now();
    let status = match answer {
        Ok(a) if a.is(expected) => SampleStatus::Verified,
        Ok(a) if a.succeeded => SampleStatus::WrongAnswer,
        Ok(a) => SampleStatus::Failed {
            kind: "outcome_error".into(),
            detail: a.problem.unwrap_or_default(),
        },
        Err(f) => SampleStatus::Failed {
            kind: f.kind,
            detail: f.detail,
        },
    };
    Sample {
        at: done - start,
        latency: done - sent,
        status,
    }
}

/// Opens fresh sessions, and knows when its pool has a ready sandbox.
trait Opener<S> {
    /// Wait (bounded by [`POOL_WAIT`]) until the pool offers a ready sandbox, if there is
    /// a pool: "first request with a warm pool" means one was there to take.
    fn pool_ready(&self) -> impl Future<Output = ()>;
    fn open(&self) -> S;
}

/// The longest the bench waits for a pool to offer a ready sandbox.
const POOL_WAIT: Duration = Duration::from_secs(60);

async fn series<S: Session>(
    sessions: usize,
    pause: Duration,
    max_duration: Duration,
    bar: &ProgressBar,
    stop: &CancellationToken,
    opener: &impl Opener<S>,
) -> ColdRun {
    let start = Instant::now();
    let mut run = ColdRun::default();
    for i in 0..sessions {
        if stop.is_cancelled() || start.elapsed() >= max_duration {
            break;
        }
        if i > 0 {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = opener.pool_ready() => {}
        }
        let mut session = opener.open();
        run.first
            .push(timed(&mut session, "x = 41\nx + 1", "42", start).await);
        run.warm
            .push(timed(&mut session, "x + 2", "43", start).await);
        run.unreleased += usize::from(!session.release().await);
        bar.inc(1);
    }
    run.elapsed = start.elapsed();
    run
}

/// New sessions on a server; waits for an idle sandbox when the server keeps a pool.
struct ServerOpener {
    client: TetherClient,
    wait_for_pool: bool,
}

impl Opener<HttpSession> for ServerOpener {
    async fn pool_ready(&self) {
        if !self.wait_for_pool {
            return;
        }
        let deadline = Instant::now() + POOL_WAIT;
        while Instant::now() < deadline {
            // Seed-compatible status: `idle_workers` counts ready, unbound sandboxes.
            let status = self.client.status().await.ok();
            match status.and_then(|s| s["idle_workers"].as_u64()) {
                Some(0) => tokio::time::sleep(Duration::from_millis(100)).await,
                _ => return,
            }
        }
    }

    fn open(&self) -> HttpSession {
        HttpSession::fresh(&self.client)
    }
}

/// New sessions on the in-process engine; waits for its pool to refill.
struct EngineOpener {
    engine: Engine,
    min_idle: usize,
    timeout: Duration,
}

impl Opener<EngineSession> for EngineOpener {
    async fn pool_ready(&self) {
        if self.min_idle > 0 {
            wait_for_pool(&self.engine, 1, POOL_WAIT).await;
        }
    }

    fn open(&self) -> EngineSession {
        EngineSession {
            engine: self.engine.clone(),
            user: UserUuid::random(),
            timeout: self.timeout,
        }
    }
}

/// The `cold` subcommand.
pub async fn run(args: ColdArgs, stop: &CancellationToken) -> anyhow::Result<()> {
    let (sessions, pause) = if args.limits.smoke {
        (1, Duration::from_millis(500))
    } else {
        let pause = Duration::from_secs_f64(args.pause_s.clamp(0.0, 60.0));
        (args.sessions, pause)
    };
    if args.in_process {
        in_process(&args, sessions, pause, stop).await
    } else {
        over_http(&args, sessions, pause, stop).await
    }
}

async fn over_http(
    args: &ColdArgs,
    sessions: usize,
    pause: Duration,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let timeout = args.limits.request_timeout();
    let client = TetherClient::new(&args.target.url, args.target.token.clone(), timeout, 2)?;
    load::preflight(&client).await?;
    let config = RunConfig::new(sessions, 2, ThinkTime::ZERO, args.limits.smoke);
    let mut report = Report::new("cold", args.target.mode, client.base().as_str(), config);
    let bar = driver::progress(args.output.quiet, sessions as u64, "sessions");
    let opener = ServerOpener {
        client: client.clone(),
        wait_for_pool: args.server_pool == PoolState::Warm,
    };
    let max = args.limits.max_duration();
    let run = series(sessions, pause, max, &bar, stop, &opener).await;
    bar.finish_and_clear();
    let name = match args.server_pool {
        PoolState::Warm => "warm_pool",
        PoolState::Disabled => "no_pool",
    };
    let section = run.section();
    report.figures = section.figures.clone();
    report.sections.insert(name.into(), section);
    if run.unreleased > 0 {
        let note = format!("{} sessions could not be released", run.unreleased);
        report.notes.push(note);
    }
    if args.server_pool == PoolState::Warm {
        report.notes.push(
            "for the figure without a pool, restart the server with --min-idle 0 and pass \
             --server-pool disabled, or run with --in-process"
                .into(),
        );
    }
    // The server runs on this machine (loopback only), so its containers are visible here;
    // its status names its nodes, and their containers carry the node label.
    // Let the pool refill and settle so its sandboxes are measured idle, not starting.
    opener.pool_ready().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let nodes = client
        .status()
        .await
        .map(|s| node_ids(&s))
        .unwrap_or_default();
    match memory::docker().await {
        Ok(docker) => {
            let mut ids = Vec::new();
            for node in &nodes {
                let label = format!("{NODE_LABEL}={node}");
                ids.extend(
                    memory::containers_labelled(&docker, &label)
                        .await
                        .unwrap_or_default(),
                );
            }
            if !ids.is_empty() {
                let note = "the server's sandboxes (warm pool + open sessions), idle";
                report.memory = Some(memory::measure(&docker, &ids, &[], None, note).await);
            }
        }
        Err(e) => report
            .notes
            .push(format!("container memory not measured: {e:#}")),
    }
    let series = [
        report::series("first request", &run.first),
        report::series("warm request", &run.warm),
    ];
    report.emit(&series, &args.output)
}

/// Node ids in a server's status (`nodes[].id`).
fn node_ids(status: &serde_json::Value) -> Vec<String> {
    let nodes = status["nodes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    nodes
        .iter()
        .filter_map(|n| n["id"].as_str().map(str::to_owned))
        .collect()
}

async fn in_process(
    args: &ColdArgs,
    sessions: usize,
    pause: Duration,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let target = format!("in-process engine ({})", args.kernel.image);
    let config = RunConfig::new(sessions, 2, ThinkTime::ZERO, args.limits.smoke);
    let mut report = Report::new("cold", args.target.mode, target, config);
    let mut series_out = Vec::new();
    for (name, min_idle) in [("warm_pool", args.pool_size.max(1)), ("no_pool", 0)] {
        if stop.is_cancelled() {
            break;
        }
        let config = ceiling::engine_config(&args.kernel, min_idle, min_idle + 2)?;
        let node = config.node_id.clone();
        let engine = Engine::start(config, CancellationToken::new())
            .await
            .map_err(|e| {
                anyhow::anyhow!("starting the in-process engine (root, dockerd up): {e}")
            })?;
        if !wait_for_pool(&engine, min_idle, POOL_WAIT).await {
            report.notes.push(format!(
                "{name}: the pool had not filled within {POOL_WAIT:?}"
            ));
        }
        let bar = driver::progress(args.output.quiet, sessions as u64, name);
        let opener = EngineOpener {
            engine: engine.clone(),
            min_idle,
            timeout: args.limits.request_timeout(),
        };
        let max = args.limits.max_duration();
        let run = series(sessions, pause, max, &bar, stop, &opener).await;
        bar.finish_and_clear();
        if min_idle > 0
            && let Ok(docker) = memory::docker().await
        {
            // Refilled idle sandboxes: fresh kernels waiting for a session.
            wait_for_pool(&engine, min_idle, POOL_WAIT).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let label = format!("{NODE_LABEL}={node}");
            let ids = memory::containers_labelled(&docker, &label)
                .await
                .unwrap_or_default();
            let note = "idle warm-pool sandboxes of the in-process engine";
            report.memory = Some(memory::measure(&docker, &ids, &[], None, note).await);
        }
        engine.shutdown(Duration::from_secs(60)).await;
        if run.unreleased > 0 {
            let note = format!("{name}: {} sessions could not be released", run.unreleased);
            report.notes.push(note);
        }
        let section = run.section();
        if report.figures.is_none() {
            report.figures = section.figures.clone();
        }
        report.sections.insert(name.into(), section);
        series_out.push(report::series(
            &format!("{name}: first request"),
            &run.first,
        ));
        if min_idle > 0 {
            series_out.push(report::series("warm request", &run.warm));
        }
    }
    report.emit(&series_out, &args.output)
}

/// Wait until the pool holds `min_idle` ready sandboxes (bounded).
async fn wait_for_pool(engine: &Engine, min_idle: usize, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        let status = engine.status();
        if status.ready && status.pool.idle >= min_idle {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
