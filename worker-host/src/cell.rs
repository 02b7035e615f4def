//! Running one cell, with the timeout ladder (ARCHITECTURE decision 7):
//! deadline → interrupt → (grace) → restart the kernel → recycle the container.
//! The result always says what happened and whether the session's state survived.

use crate::config::EngineConfig;
use crate::container::ContainerRuntime;
use crate::kernel::ExecEnd;
use crate::output::{Collected, OutputCollector};
use crate::sandbox::{Sandbox, SandboxError};
use std::time::Duration;
use tether_protocol::{ExecutionResult, Outcome, Output};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Why a cell ended other than by finishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// It finished (with or without a Python error).
    Finished,
    /// It ran past its time limit.
    Timeout,
    /// A client cancelled it.
    Cancelled,
    /// The kernel died (memory limit, crash).
    KernelDied,
}

/// A cell's result and why it ended.
#[derive(Debug)]
pub struct CellReport {
    pub result: ExecutionResult,
    pub cause: Cause,
    /// The cell was the first to run in a sandbox newly attached to its session (set by
    /// the session executor), so no earlier state of the session exists in it.
    pub fresh_sandbox: bool,
}

/// What can stop a running cell early, besides its deadline.
#[derive(Debug)]
pub struct CellControl {
    pub timeout: Duration,
    /// Resolves when a client asks to cancel this cell.
    pub cancel: tokio_util::sync::CancellationToken,
    pub sink: Option<mpsc::UnboundedSender<Output>>,
}

/// Run `code` in `sandbox`. Fails only when the sandbox could not be brought back at all.
pub async fn run_cell(
    sandbox: &mut Sandbox,
    runtime: &ContainerRuntime,
    config: &EngineConfig,
    code: &str,
    control: CellControl,
) -> Result<CellReport, SandboxError> {
    let started = Instant::now();
    // A kernel that has been quiet for a while may have died in between (killed from
    // outside, host trouble): check before sending the code, so the code is not lost.
    let mut revived = None;
    if sandbox.kernel.quiet_for() > config.idle_check_after
        && !sandbox.kernel.alive(Duration::from_secs(1)).await
        && runtime.is_running(&sandbox.container_id).await == Some(false)
    {
        tracing::warn!(slot = %sandbox.slot, "kernel died while idle; restarting before this run");
        if sandbox.restart_kernel(runtime, config).await.is_err() {
            sandbox.recycle(runtime, config).await?;
        }
        revived = Some("The kernel had stopped while the session was idle and was restarted before this run; earlier session state was lost (files in /sandbox were kept).".to_owned());
    }
    let deadline = Instant::now() + control.timeout;
    let sink = control.sink.as_ref();
    sandbox.kernel.drain_stale();

    let (id, end) = match sandbox
        .kernel
        .execute(
            code,
            deadline,
            OutputCollector::new(config.output_cap),
            sink,
            &control.cancel,
        )
        .await
    {
        Ok(sent) => sent,
        Err(_) => (String::new(), ExecEnd::KernelLost(Collected::default())),
    };
    let end = wait_out_silence(sandbox, runtime, config, &id, end, deadline, &control).await;
    let (collected, cause) = match end {
        ExecEnd::Completed(c) => {
            let outcome = if c.error.is_some() {
                Outcome::Error
            } else {
                Outcome::Ok
            };
            let mut done = report(c, outcome, started, revived.clone(), Cause::Finished);
            if revived.is_some() {
                done.result.state_preserved = false;
                done.result.session_restarted = true;
            }
            return Ok(done);
        }
        ExecEnd::DeadlinePassed(c) => (c, Cause::Timeout),
        ExecEnd::KernelLost(c) | ExecEnd::Silent(c) => (c, Cause::KernelDied),
    };

    if cause == Cause::Timeout {
        return interrupt_then_escalate(sandbox, runtime, config, &id, collected, started, control)
            .await;
    }
    kernel_died(sandbox, runtime, config, collected, started).await
}

/// A missed heartbeat is a death only if the container stopped (the kernel is tini's
/// only child, so the container stops with it): a kernel starved of CPU on an overloaded
/// host is waited for, up to the cell's deadline, instead of being restarted and losing
/// the session's state. Anything else passes through.
async fn wait_out_silence(
    sandbox: &mut Sandbox,
    runtime: &ContainerRuntime,
    config: &EngineConfig,
    id: &str,
    mut end: ExecEnd,
    deadline: Instant,
    control: &CellControl,
) -> ExecEnd {
    let mut collected = Collected::default();
    loop {
        let more = match end {
            ExecEnd::Silent(more) => more,
            other => return prepend(collected, other),
        };
        collected.extend(more);
        if runtime.is_running(&sandbox.container_id).await == Some(false) {
            return ExecEnd::KernelLost(collected);
        }
        tracing::info!(slot = %sandbox.slot, "kernel missed a heartbeat but its container runs (host busy?); still waiting");
        let collector = OutputCollector::continuing(config.output_cap, &collected);
        end = sandbox
            .kernel
            .resume(
                id,
                deadline,
                collector,
                control.sink.as_ref(),
                Some(&control.cancel),
            )
            .await;
    }
}

/// `end` with the output collected before it in front.
fn prepend(mut before: Collected, end: ExecEnd) -> ExecEnd {
    let mut join = |more: Collected| {
        before.extend(more);
        std::mem::take(&mut before)
    };
    match end {
        ExecEnd::Completed(c) => ExecEnd::Completed(join(c)),
        ExecEnd::DeadlinePassed(c) => ExecEnd::DeadlinePassed(join(c)),
        ExecEnd::KernelLost(c) => ExecEnd::KernelLost(join(c)),
        ExecEnd::Silent(c) => ExecEnd::Silent(join(c)),
    }
}

/// Interrupt a cell that ran past its deadline (or was cancelled) and wait a grace period;
/// if it still runs, restart the kernel; if that fails, recycle the sandbox.
pub async fn interrupt_then_escalate(
    sandbox: &mut Sandbox,
    runtime: &ContainerRuntime,
    config: &EngineConfig,
    id: &str,
    mut collected: Collected,
    started: Instant,
    control: CellControl,
) -> Result<CellReport, SandboxError> {
    let cancelled = control.cancel.is_cancelled();
    let (stopped, cause) = if cancelled {
        (Outcome::Cancelled, Cause::Cancelled)
    } else {
        (Outcome::TimeoutInterrupted, Cause::Timeout)
    };
    let limit = control.timeout.as_secs_f64();
    let sink = control.sink.as_ref();
    let _ = sandbox.kernel.interrupt().await;
    let grace_end = Instant::now() + config.interrupt_grace;
    // If the message-based interrupt did not land quickly, signal the process as well.
    let first_try = (Instant::now() + Duration::from_millis(500)).min(grace_end);
    let collector = OutputCollector::continuing(config.output_cap, &collected);
    let end = sandbox
        .kernel
        .resume(id, first_try, collector, sink, None)
        .await;
    let end = match end {
        ExecEnd::DeadlinePassed(more) => {
            collected.extend(more);
            let _ = runtime.interrupt(&sandbox.container_id).await;
            let collector = OutputCollector::continuing(config.output_cap, &collected);
            sandbox
                .kernel
                .resume(id, grace_end, collector, sink, None)
                .await
        }
        other => other,
    };
    match end {
        ExecEnd::Completed(more) => {
            collected.extend(more);
            let message = if cancelled {
                "Execution was cancelled; the kernel was interrupted and the session state was kept.".to_owned()
            } else {
                format!(
                    "Execution exceeded the {limit:.0} s time limit and was interrupted; the session state was kept."
                )
            };
            Ok(report(collected, stopped, started, Some(message), cause))
        }
        ExecEnd::DeadlinePassed(more) | ExecEnd::KernelLost(more) | ExecEnd::Silent(more) => {
            collected.extend(more);
            let what = if cancelled {
                "was cancelled"
            } else {
                &format!("exceeded the {limit:.0} s time limit")
            };
            match sandbox.restart_kernel(runtime, config).await {
                Ok(()) => Ok(report(
                    collected,
                    Outcome::KernelRestarted,
                    started,
                    Some(format!(
                        "Execution {what} and did not stop when interrupted; the kernel was restarted and the session state was reset (files in /sandbox were kept)."
                    )),
                    cause,
                )),
                Err(e) => {
                    tracing::warn!(error = %e, "kernel restart failed; recycling sandbox");
                    sandbox.recycle(runtime, config).await?;
                    Ok(report(
                        collected,
                        Outcome::SandboxRecycled,
                        started,
                        Some(format!(
                            "Execution {what}; the kernel could not be restarted, so the sandbox was replaced and the session state was reset (files in /sandbox were kept)."
                        )),
                        cause,
                    ))
                }
            }
        }
    }
}

async fn kernel_died(
    sandbox: &mut Sandbox,
    runtime: &ContainerRuntime,
    config: &EngineConfig,
    collected: Collected,
    started: Instant,
) -> Result<CellReport, SandboxError> {
    let oom = runtime.oom_killed(&sandbox.container_id).await;
    let limit = config.limits.memory_mib;
    let (outcome, message) = if oom {
        (
            Outcome::OomKilled,
            format!(
                "The code exceeded the sandbox memory limit ({limit} MiB) and the kernel was killed; the session state was reset (files in /sandbox were kept)."
            ),
        )
    } else {
        (
            Outcome::KernelRestarted,
            "The kernel died unexpectedly and was restarted; the session state was reset (files in /sandbox were kept).".to_owned(),
        )
    };
    match sandbox.restart_kernel(runtime, config).await {
        Ok(()) => Ok(report(
            collected,
            outcome,
            started,
            Some(message),
            Cause::KernelDied,
        )),
        Err(e) => {
            tracing::warn!(error = %e, "kernel restart after crash failed; recycling sandbox");
            sandbox.recycle(runtime, config).await?;
            let outcome = if oom {
                Outcome::OomKilled
            } else {
                Outcome::SandboxRecycled
            };
            Ok(report(
                collected,
                outcome,
                started,
                Some(message),
                Cause::KernelDied,
            ))
        }
    }
}

fn report(
    c: Collected,
    outcome: Outcome,
    started: Instant,
    message: Option<String>,
    cause: Cause,
) -> CellReport {
    CellReport {
        result: ExecutionResult {
            outcome,
            state_preserved: outcome.keeps_state(),
            stdout: c.stdout,
            stderr: c.stderr,
            outputs: c.outputs,
            error: c.error,
            execution_count: c.execution_count,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            truncated: c.truncated,
            message,
            session_restarted: false,
            files: Vec::new(),
        },
        cause,
        fresh_sandbox: false,
    }
}
