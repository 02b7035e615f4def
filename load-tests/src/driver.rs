//! The load loop shared by every scenario: N simulated users, each with its own session
//! and stateful script, M requests each, think time between them. Every loop is bounded
//! in count (M) and in time (the plan's deadline, or Ctrl-C): it stops by itself.

use crate::cli::ThinkTime;
use crate::stats::{Sample, SampleStatus};
use crate::workload::{Answer, Workload};
use indicatif::{ProgressBar, ProgressStyle};
use std::future::Future;
use std::time::Duration;
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
    pub requests_per_user: u64,
    pub think: ThinkTime,
    /// No request starts after this much time has passed.
    pub max_duration: Duration,
}

/// What a run gave back: the targets (for clean-up), the samples, the wall time.
#[derive(Debug)]
pub struct Run<T> {
    pub targets: Vec<T>,
    pub samples: Vec<Sample>,
    pub elapsed: Duration,
    /// The deadline or Ctrl-C cut the run short.
    pub cut_short: bool,
}

/// Drive every target through its user's script, all users concurrently.
pub async fn drive<T: Target>(
    targets: Vec<T>,
    plan: Plan,
    progress: &ProgressBar,
    stop: &CancellationToken,
) -> Run<T> {
    let start = Instant::now();
    let deadline = start + plan.max_duration;
    let mut tasks = Vec::with_capacity(targets.len());
    for (i, target) in targets.into_iter().enumerate() {
        let progress = progress.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(user(
            i, target, plan, start, deadline, progress, stop,
        )));
    }
    let mut run = Run {
        targets: Vec::with_capacity(tasks.len()),
        samples: Vec::new(),
        elapsed: Duration::ZERO,
        cut_short: false,
    };
    for task in tasks {
        match task.await {
            Ok((target, samples, cut)) => {
                run.targets.push(target);
                run.samples.extend(samples);
                run.cut_short |= cut;
            }
            Err(e) => tracing::error!(error = %e, "a simulated user panicked; its target is lost"),
        }
    }
    run.elapsed = run.samples.iter().map(|s| s.at).max().unwrap_or_default();
    run.samples.sort_by_key(|s| s.at);
    run
}

async fn user<T: Target>(
    i: usize,
    mut target: T,
    plan: Plan,
    start: Instant,
    deadline: Instant,
    progress: ProgressBar,
    stop: CancellationToken,
) -> (T, Vec<Sample>, bool) {
    let workload = Workload::for_user(i);
    let mut samples = Vec::with_capacity(usize::try_from(plan.requests_per_user).unwrap_or(0));
    for k in 0..plan.requests_per_user {
        if k > 0 {
            let pause = plan.think.draw();
            if !pause.is_zero() {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
        if stop.is_cancelled() || Instant::now() >= deadline {
            return (target, samples, true);
        }
        let step = workload.step(k);
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
        samples.push(Sample {
            at: done - start,
            latency: done - sent,
            status,
        });
        progress.inc(1);
    }
    (target, samples, false)
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
            think: ThinkTime::ZERO,
            max_duration: Duration::from_secs(10),
        };
        let run = drive(
            targets,
            plan,
            &ProgressBar::hidden(),
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(run.targets.len(), 4);
        assert_eq!(run.samples.len(), 20);
        assert!(!run.cut_short);
        let verified = run
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
            think: ThinkTime::SEED,
            max_duration: Duration::from_secs(10),
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
        assert!(run.cut_short);
        assert!(run.samples.is_empty());
        assert_eq!(run.targets.len(), 1);
    }
}
