//! The body of `seed` and `saturation`: measure the raw-kernel ceiling with as many
//! kernels as users and the same scripts and think time, destroy those kernels, then run
//! the same workload end to end through the API and compare.

use crate::cli::{LoadArgs, ThinkTime};
use crate::client::{ClientError, HttpSession, TetherClient};
use crate::driver::{self, Measured, Plan};
use crate::report::{self, Report, RunConfig, Section};
use crate::scenarios::ceiling::{self, Kernels};
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
        first_step: 0,
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
    let quiet = args.output.quiet;
    let timeout = args.limits.request_timeout();
    let mut kernels = None;
    if args.with_ceiling {
        match Kernels::start(&args.kernel, users, timeout, quiet).await {
            Ok(k) => kernels = Some(k),
            Err(e) => report.notes.push(format!("ceiling not measured: {e:#}")),
        }
    }
    let rounds = args.rounds.min(requests);
    let interleaved = rounds > 1;
    if interleaved && kernels.is_some() {
        report.notes.push(format!(
            "{rounds} alternating blocks of ceiling and end-to-end requests per user; the ceiling's \
             kernels stayed up (idle) during end-to-end blocks"
        ));
    }
    let total = users as u64 * requests;
    let ceiling_bar = driver::progress(quiet || kernels.is_none(), total, "ceiling");
    let e2e_bar = driver::progress(quiet, total, "end-to-end");
    let mut ceiling_m = Measured::default();
    let mut e2e_m = Measured::default();
    let mut sessions: Vec<HttpSession> = (0..users).map(|_| HttpSession::fresh(&client)).collect();
    let per_block = requests.div_ceil(rounds);
    for first_step in (0..requests).step_by(usize::try_from(per_block).unwrap_or(usize::MAX)) {
        let block = Plan {
            first_step,
            requests_per_user: per_block.min(requests - first_step),
            ..plan
        };
        if let Some(k) = kernels.as_mut() {
            ceiling_m.append(k.drive(block, &ceiling_bar, stop).await);
        }
        if !interleaved && let Some(k) = kernels.take() {
            // One block: the kernels go before the end-to-end run starts.
            report.memory = Some(k.memory().await);
            k.destroy().await;
        }
        if stop.is_cancelled() {
            break;
        }
        let run = driver::drive(sessions, block, &e2e_bar, stop).await;
        sessions = run.targets;
        e2e_m.append(run.measured);
    }
    ceiling_bar.finish_and_clear();
    e2e_bar.finish_and_clear();
    if let Some(k) = kernels.take() {
        report.memory = Some(k.memory().await);
        k.destroy().await;
    }
    let unreleased = release_all(&sessions).await;
    if unreleased > 0 {
        report
            .notes
            .push(format!("{unreleased} sessions could not be released"));
    }

    let mut series = vec![report::series("end-to-end", &e2e_m.samples)];
    report.figures = Some(Figures::from_samples(&e2e_m.samples, e2e_m.elapsed));
    if e2e_m.cut_short || ceiling_m.cut_short {
        report
            .notes
            .push("run cut short (deadline or Ctrl-C): fewer requests than planned".into());
    }
    if plan.exclude_setup {
        let setup = Figures::spanning(&e2e_m.setup);
        report
            .sections
            .insert("setup".into(), Section::measured(setup));
        report.notes.push(ceiling::SETUP_NOTE.into());
    }
    if args.with_ceiling && !ceiling_m.samples.is_empty() {
        series.push(report::series("ceiling (raw kernels)", &ceiling_m.samples));
        if plan.exclude_setup {
            let setup = Figures::spanning(&ceiling_m.setup);
            report
                .sections
                .insert("ceiling_setup".into(), Section::measured(setup));
        }
        report.with_ceiling(Figures::from_samples(&ceiling_m.samples, ceiling_m.elapsed));
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
