//! The body of `seed` and `saturation`: measure the raw-kernel ceiling with as many
//! kernels as users and the same scripts and think time, destroy those kernels, then run
//! the same workload end to end through the API and compare.

use crate::cli::{LoadArgs, ThinkTime};
use crate::client::{ClientError, HttpSession, TetherClient};
use crate::driver::{self, Plan};
use crate::report::{self, Report, RunConfig, Section};
use crate::scenarios::ceiling;
use crate::stats::Figures;
use futures::StreamExt;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a scenario does unless its flags say otherwise.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub think: ThinkTime,
    /// Leave each user's first request (session set-up) out of the figures.
    pub exclude_setup: bool,
}

/// Run `scenario` (`seed` or `saturation`) with its `defaults` where flags are absent.
pub async fn run(
    scenario: &str,
    args: LoadArgs,
    defaults: Defaults,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let Defaults {
        think: default_think,
        exclude_setup,
    } = defaults;
    let (users, requests) = if args.limits.smoke {
        (2, 3)
    } else {
        (args.users, args.requests)
    };
    anyhow::ensure!(
        users > 0 && requests > 0,
        "--users and --requests must be at least 1"
    );
    let think = match (args.think, args.limits.smoke) {
        (Some(t), _) => t,
        (None, true) if default_think != ThinkTime::ZERO => ThinkTime {
            min: default_think.min / 10,
            max: default_think.max / 10,
        },
        (None, _) => default_think,
    };
    let plan = Plan {
        requests_per_user: requests,
        think,
        max_duration: args.limits.max_duration(),
        exclude_setup: args.exclude_setup.unwrap_or(exclude_setup),
    };
    let client = TetherClient::new(
        &args.target.url,
        args.target.token.clone(),
        args.limits.request_timeout(),
        users,
    )?;
    preflight(&client).await?;

    let mut report = Report::new(
        scenario,
        args.target.mode,
        client.base().as_str(),
        RunConfig::new(users, requests, think, args.limits.smoke),
    );
    let mut series = Vec::new();
    let mut ceiling_figures = None;
    if args.with_ceiling {
        match ceiling::measure(
            &args.kernel,
            users,
            plan,
            args.limits.request_timeout(),
            args.output.quiet,
            stop,
        )
        .await
        {
            Ok(run) => {
                if run.cut_short {
                    report
                        .notes
                        .push("ceiling run cut short (deadline or Ctrl-C)".into());
                }
                series.push(report::series("ceiling (raw kernels)", &run.samples));
                if plan.exclude_setup {
                    let setup = Figures::spanning(&run.setup);
                    report
                        .sections
                        .insert("ceiling_setup".into(), Section::measured(setup));
                }
                ceiling_figures = Some(run.figures);
                report.memory = run.memory;
            }
            Err(e) => report.notes.push(format!("ceiling not measured: {e:#}")),
        }
    }

    if !stop.is_cancelled() {
        let sessions: Vec<HttpSession> = (0..users).map(|_| HttpSession::fresh(&client)).collect();
        let bar = driver::progress(args.output.quiet, users as u64 * requests, "end-to-end");
        let run = driver::drive(sessions, plan, &bar, stop).await;
        bar.finish_and_clear();
        let unreleased = release_all(&run.targets).await;
        if unreleased > 0 {
            report
                .notes
                .push(format!("{unreleased} sessions could not be released"));
        }
        if run.cut_short {
            report.notes.push(
                "end-to-end run cut short (deadline or Ctrl-C): fewer requests than planned".into(),
            );
        }
        series.insert(0, report::series("end-to-end", &run.samples));
        if plan.exclude_setup {
            let setup = Figures::spanning(&run.setup);
            report
                .sections
                .insert("setup".into(), Section::measured(setup));
            report.notes.push(ceiling::SETUP_NOTE.into());
        }
        report.figures = Some(Figures::from_samples(&run.samples, run.elapsed));
    }
    if let Some(c) = ceiling_figures {
        report.with_ceiling(c);
    }
    if think.max > Duration::ZERO && report.comparison.is_some() {
        report.notes.push(
            "with think time both runs are paced by it, so the throughput ratio shows pacing as much as capacity; \
             the latency added is the figure to read (saturation gives the capacity ratio)"
                .into(),
        );
    }
    report.emit(&series, &args.output)
}

/// Fail early and clearly when the server is not there.
pub async fn preflight(client: &TetherClient) -> anyhow::Result<()> {
    match client.status().await {
        Ok(_) | Err(ClientError::NotAvailable(_)) | Err(ClientError::Status { .. }) => Ok(()),
        Err(e) => Err(anyhow::anyhow!(
            "cannot reach the Tether API at {}: {e} (start it with `tether serve`, or pass --url)",
            client.base()
        )),
    }
}

/// Release every session; returns how many failed.
pub async fn release_all(sessions: &[HttpSession]) -> usize {
    futures::stream::iter(sessions)
        .map(|s| async move { s.client.release(&s.user).await })
        .buffer_unordered(8)
        .filter(|r| std::future::ready(r.is_err()))
        .count()
        .await
}
