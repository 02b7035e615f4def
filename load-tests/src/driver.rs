//! The load loop shared by every scenario: N simulated users, each with its own session
//! and stateful script, M requests each, think time between them. Every loop is bounded
//! in count (M) and in time (the plan's deadline, or Ctrl-C): it stops by itself.

use crate::cli::ThinkTime;
use crate::stats::{Sample, SampleStatus};
use crate::workload::{Answer, Step, Workload};
use indicatif::{ProgressBar, ProgressStyle};
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Barrier;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Why a request produced no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Low-cardinality class (`http_503`, `timeout`, `kernel_lost`, …).
    pub kind: String,
    pub detail: String,
}

impl Failure {
    pub fn new(kind: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            detail: detail.into(),
        }
    }
}

/// One simulated user's session, however it is reached.
pub trait Target: Send + 'static {
    /// Run `code` in this session and return what it answered.
    fn execute(&mut self, code: &str) -> impl Future<Output = Result<Answer, Failure>> + Send;
}

/// How much to send and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Requests each user sends in this drive.
    pub requests_per_user: u64,
    /// Script step of the first of them: a run split into blocks continues each user's
    /// script where the previous block left it (the session keeps its state).
    pub first_step: u64,
    pub think: ThinkTime,
    /// No request starts after this much time has passed.
    pub max_duration: Duration,
    /// Run every user's first request (session set-up: sandbox, imports) before the
    /// clock starts, and report it apart; the figures then describe the steady state.
    pub exclude_setup: bool,
}

/// What a run gave back: the targets (for clean-up or the next block) and what was
/// measured.
#[derive(Debug)]
pub struct Run<T> {
    pub targets: Vec<T>,
    pub measured: Measured,
}

/// The samples of one or more drives.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// The measured requests, `at` counted from the start of the measurement.
    pub samples: Vec<Sample>,
    /// With `exclude_setup`: each user's first request, `at` counted from the start.
    pub setup: Vec<Sample>,
    /// Wall time of the measured requests.
    pub elapsed: Duration,
    /// The deadline or Ctrl-C cut a drive short.
    pub cut_short: bool,
}

impl Measured {
    /// Add a later block: its samples continue this one's time line, its wall time adds.
    pub fn append(&mut self, later: Measured) {
        let offset = self.elapsed;
        self.samples.extend(later.samples.into_iter().map(|mut s| {
            s.at += offset;
            s
        }));
        self.setup.extend(later.setup);
        self.elapsed += later.elapsed;
        self.cut_short |= later.cut_short;
    }
}

/// When measurement starts: at once, or when the last user finished its set-up.
#[derive(Debug)]
struct Clock {
    start: Instant,
    deadline: Instant,
    setup_done: Option<Barrier>,
    measuring_since: OnceLock<Instant>,
}

/// Drive every target through its user's script, all users concurrently.
pub async fn drive<T: Target>(
    targets: Vec<T>,
    plan: Plan,
    progress: &ProgressBar,
    stop: &CancellationToken,
) -> Run<T> {
    let start = Instant::now();
    let clock = Arc::new(Clock {
        start,
        deadline: start + plan.max_duration,
        setup_done: (plan.exclude_setup && plan.first_step == 0)
            .then(|| Barrier::new(targets.len())),
        measuring_since: OnceLock::new(),
    });
    let mut tasks = Vec::with_capacity(targets.len());
    for (i, target) in targets.into_iter().enumerate() {
        let (progress, stop, clock) = (progress.clone(), stop.clone(), clock.clone());
        tasks.push(tokio::spawn(user(i, target, plan, clock, progress, stop)));
    }
    let mut targets = Vec::with_capacity(tasks.len());
    let mut m = Measured::default();
    for task in tasks {
        match task.await {
            Ok(user) => {
                targets.push(user.target);
                m.samples.extend(user.samples);
                m.setup.extend(user.setup);
                m.cut_short |= user.cut_short;
            }
            Err(e) => tracing::error!(error = %e, "a simulated user panicked; its target is lost"),
        }
    }
    m.elapsed = m.samples.iter().map(|s| s.at).max().unwrap_or_default();
    m.samples.sort_by_key(|s| s.at);
    m.setup.sort_by_key(|s| s.at);
    Run {
        targets,
        measured: m,
    }
}

/// What one simulated user gives back.
struct UserRun<T> {
    target: T,
    samples: Vec<Sample>,
    setup: Vec<Sample>,
    cut_short: bool,
}

async fn user<T: Target>(
    i: usize,
    mut target: T,
    plan: Plan,
    clock: Arc<Clock>,
    progress: ProgressBar,
    stop: CancellationToken,
) -> UserRun<T> {
    let workload = Workload::for_user(i);
    let capacity = usize::try_from(plan.requests_per_user).unwrap_or(0);
    let mut setup = Vec::new();
    let mut first = plan.first_step;
    let end = plan.first_step + plan.requests_per_user;
    let mut start = clock.start;
    if let Some(barrier) = &clock.setup_done {
        if plan.requests_per_user > 0 && !stop.is_cancelled() {
            let step = workload.step(0);
            setup.push(request(&mut target, &step, clock.start).await);
            progress.inc(1);
        }
        first += 1;
        // Every user takes part in the barrier, whatever happened, so none waits forever;
        // the deadline and Ctrl-C still end the wait.
        tokio::select! {
            _ = barrier.wait() => {}
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep_until(clock.deadline) => {}
        }
        start = *clock.measuring_since.get_or_init(Instant::now);
    }
    let mut run = UserRun {
        target,
        samples: Vec::with_capacity(capacity),
        setup,
        cut_short: false,
    };
    for k in first..end {
        if k > plan.first_step {
            let pause = plan.think.draw();
            if !pause.is_zero() {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
        if stop.is_cancelled() || Instant::now() >= clock.deadline {
            run.cut_short = true;
            return run;
        }
        let step = workload.step(k);
        run.samples
            .push(request(&mut run.target, &step, start).await);
        progress.inc(1);
    }
    run
}

/// Send one step and judge its answer.
async fn request<T: Target>(target: &mut T, step: &Step, start: Instant) -> Sample {
    let sent = Instant::now();
    let answer = target.execute(&step.code).await;
    let done = Instant::now();
    let status = match answer {
        Ok(a) if a.is(&step.expected) => SampleStatus::Verified,
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
        at: done.saturating_duration_since(start),
        latency: done - sent,
        status,
    }
}

/// A progress bar on stderr (hidden when `quiet` or stderr is not a terminal).
pub fn progress(quiet: bool, len: u64, what: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar.set_prefix(what.to_owned());
    bar
}

/// A token cancelled by the first Ctrl-C: loops stop, clean-up still runs. A second
/// Ctrl-C exits at once.
pub fn stop_on_ctrl_c() -> CancellationToken {
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "stopping: finishing in-flight requests and cleaning up (Ctrl-C again to abort)"
            );
            token.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    stop
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session that keeps the state in Rust and answers like the kernel would.
    struct Fake {
        calls: u64,
        fail_at: Option<u64>,
    }

    impl Target for Fake {
        async fn execute(&mut self, code: &str) -> Result<Answer, Failure> {
            let k = self.calls;
            self.calls += 1;
            if self.fail_at == Some(k) {
                return Err(Failure::new("http_503", "busy"));
            }
            // Recover the expected answer from the step itself, as a correct kernel would.
            let expected = Workload::ALL
                .iter()
                .map(|w| w.step(k))
                .find(|s| s.code == code)
                .map(|s| s.expected);
            Ok(Answer {
                result_text: expected,
                succeeded: true,
                ..Answer::default()
            })
        }
    }

    #[tokio::test]
    async fn every_user_runs_its_script_and_is_verified() {
        let targets = (0..4)
            .map(|i| Fake {
                calls: 0,
                fail_at: (i == 3).then_some(2),
            })
            .collect();
        let plan = Plan {
            requests_per_user: 5,
            first_step: 0,
            think: ThinkTime::ZERO,
            max_duration: Duration::from_secs(10),
            exclude_setup: false,
        };
        let run = drive(
            targets,
            plan,
            &ProgressBar::hidden(),
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(run.targets.len(), 4);
        assert_eq!(run.measured.samples.len(), 20);
        assert!(!run.measured.cut_short);
        let verified = run
            .measured
            .samples
            .iter()
            .filter(|s| s.status == SampleStatus::Verified)
            .count();
        assert_eq!(verified, 19);
    }

    #[tokio::test]
    async fn a_cancelled_run_stops_by_itself() {
        let stop = CancellationToken::new();
        stop.cancel();
        let plan = Plan {
            requests_per_user: 1000,
            first_step: 0,
            think: ThinkTime::SEED,
            max_duration: Duration::from_secs(10),
            exclude_setup: true,
        };
        let run = drive(
            vec![Fake {
                calls: 0,
                fail_at: None,
            }],
            plan,
            &ProgressBar::hidden(),
            &stop,
        )
        .await;
        assert!(run.measured.cut_short);
        assert!(run.measured.samples.is_empty() && run.measured.setup.is_empty());
        assert_eq!(run.targets.len(), 1);
    }

    #[tokio::test]
    async fn set_up_requests_are_reported_apart_and_precede_the_measurement() {
        let targets = (0..3)
            .map(|_| Fake {
                calls: 0,
                fail_at: None,
            })
            .collect();
        let plan = Plan {
            requests_per_user: 4,
            first_step: 0,
            think: ThinkTime::ZERO,
            max_duration: Duration::from_secs(10),
            exclude_setup: true,
        };
        let run = drive(
            targets,
            plan,
            &ProgressBar::hidden(),
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(run.measured.setup.len(), 3);
        assert_eq!(run.measured.samples.len(), 9);
        let verified = |s: &[Sample]| s.iter().all(|x| x.status == SampleStatus::Verified);
        assert!(verified(&run.measured.setup) && verified(&run.measured.samples));
        // A second block continues the scripts where the first stopped.
        let next = Plan {
            first_step: 4,
            ..plan
        };
        let run = drive(
            run.targets,
            next,
            &ProgressBar::hidden(),
            &CancellationToken::new(),
        )
        .await;
        assert!(run.measured.setup.is_empty());
        assert_eq!(run.measured.samples.len(), 12);
        assert!(verified(&run.measured.samples));
    }
}
