//! The report every scenario produces: printed as text, written as JSON with `--json`
//! (stable top-level keys for comparisons between commits), drawn with `--chart`.

use crate::chart;
use crate::cli::{Mode, OutputArgs, ThinkTime};
use crate::memory::MemoryFigures;
use crate::stats::{Comparison, Figures, Sample};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One scenario's results.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub mode: Mode,
    /// What was driven: the API URL, or the in-process engine / kernels.
    pub target: String,
    pub machine: Machine,
    pub started_unix_ms: u64,
    /// UTC, ISO 8601.
    pub started_at: String,
    pub config: RunConfig,
    /// The headline run (end-to-end, or the ceiling for `ceiling`): throughput_rps,
    /// success_pct, verified_pct, latency_ms.{min,p50,p95,p99,max}, …
    #[serde(flatten)]
    pub figures: Option<Figures>,
    /// ceiling_rps, throughput_ratio, added_latency_ms (when a ceiling was measured).
    #[serde(flatten)]
    pub comparison: Option<Comparison>,
    /// The ceiling's own figures, measured in the same invocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling: Option<Figures>,
    /// Named sub-results (cold: `warm_pool`/`no_pool`; async: `poll`/`sse`/`webhook`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sections: BTreeMap<String, Section>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryFigures>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Sizes of the run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RunConfig {
    pub users: usize,
    pub requests_per_user: u64,
    pub think_min_s: f64,
    pub think_max_s: f64,
    pub smoke: bool,
}

impl RunConfig {
    pub fn new(users: usize, requests_per_user: u64, think: ThinkTime, smoke: bool) -> Self {
        Self {
            users,
            requests_per_user,
            think_min_s: think.min.as_secs_f64(),
            think_max_s: think.max.as_secs_f64(),
            smoke,
        }
    }
}

/// A named sub-result: measured figures, or why it could not be measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Section {
    #[serde(flatten)]
    pub figures: Option<Figures>,
    /// E.g. "endpoint not available (404)".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// cold: the warm request on the same sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm: Option<Figures>,
    /// cold: first-request p50 − warm p50, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added_latency_ms: Option<f64>,
    /// cold: first-request p95 − warm p95, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added_latency_p95_ms: Option<f64>,
}

impl Section {
    pub fn measured(figures: Figures) -> Self {
        Self {
            figures: Some(figures),
            ..Self::default()
        }
    }

    pub fn unavailable(why: impl Into<String>) -> Self {
        Self {
            unavailable: Some(why.into()),
            ..Self::default()
        }
    }
}

/// The machine the figures come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_gib: f64,
    pub os: String,
    /// 1-minute load average when the scenario started: other work on the machine
    /// shifts absolute figures (the ratios are measured side by side to survive it).
    pub load_average_1m: f64,
}

impl Machine {
    pub fn this() -> Self {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                let line = m.lines().find(|l| l.starts_with("MemTotal:"))?.to_owned();
                line.split_whitespace().nth(1)?.parse::<f64>().ok()
            })
            .map_or(0.0, |kb| crate::stats::round3(kb / 1024.0 / 1024.0));
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|r| {
                let line = r.lines().find(|l| l.starts_with("PRETTY_NAME="))?;
                Some(
                    line.trim_start_matches("PRETTY_NAME=")
                        .trim_matches('"')
                        .to_owned(),
                )
            })
            .unwrap_or_else(|| std::env::consts::OS.to_owned());
        let load_average_1m = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Self {
            cores,
            memory_gib,
            os,
            load_average_1m,
        }
    }
}

impl Report {
    /// An empty report for `scenario`, stamped with the machine and the time.
    pub fn new(scenario: &str, mode: Mode, target: impl Into<String>, config: RunConfig) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            scenario: scenario.to_owned(),
            mode,
            target: target.into(),
            machine: Machine::this(),
            started_unix_ms: u64::try_from(now.as_millis()).unwrap_or(0),
            started_at: utc(now.as_secs()),
            config,
            figures: None,
            comparison: None,
            ceiling: None,
            sections: BTreeMap::new(),
            memory: None,
            notes: Vec::new(),
        }
    }

    /// Attach the ceiling and the ratios against the headline figures.
    pub fn with_ceiling(&mut self, ceiling: Figures) {
        if let Some(e2e) = &self.figures {
            self.comparison = Some(Comparison::of(e2e, &ceiling));
        }
        self.ceiling = Some(ceiling);
    }

    /// The human-readable form.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let c = &self.config;
        let _ = writeln!(
            out,
            "tether-bench {} — {} mode, {}",
            self.scenario,
            self.mode.as_str(),
            self.target
        );
        let _ = writeln!(
            out,
            "machine: {} cores, {:.1} GiB, {}, load average {:.2}; started {}",
            self.machine.cores,
            self.machine.memory_gib,
            self.machine.os,
            self.machine.load_average_1m,
            self.started_at
        );
        let _ = writeln!(
            out,
            "workload: {} users × {} requests, think {:.2}–{:.2} s{}\n",
            c.users,
            c.requests_per_user,
            c.think_min_s,
            c.think_max_s,
            if c.smoke { " (smoke sizes)" } else { "" }
        );
        let _ = writeln!(
            out,
            "{:<22} {:>8} {:>7} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9}",
            "",
            "requests",
            "ok %",
            "verified%",
            "req/s",
            "min ms",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms"
        );
        let headline = match self.scenario.as_str() {
            "ceiling" => "ceiling",
            "cold" => "first request",
            "async" => "first client kind",
            _ => "end-to-end",
        };
        if let Some(f) = &self.figures {
            row(&mut out, headline, f);
        }
        if let Some(f) = &self.ceiling {
            row(&mut out, "ceiling (raw kernels)", f);
        }
        for (name, section) in &self.sections {
            match (&section.figures, &section.unavailable) {
                (Some(f), _) => row(&mut out, name, f),
                (None, Some(why)) => {
                    let _ = writeln!(out, "{name:<22} {why}");
                }
                (None, None) => {}
            }
            if let Some(w) = &section.warm {
                row(&mut out, &format!("{name} (warm req)"), w);
            }
        }
        out.push('\n');
        if let Some(cmp) = &self.comparison {
            let _ = writeln!(
                out,
                "throughput ratio (end-to-end ÷ ceiling): {:.3}  ({:.1} ÷ {:.1} req/s)",
                cmp.throughput_ratio,
                self.figures.as_ref().map_or(0.0, |f| f.throughput_rps),
                cmp.ceiling_rps
            );
            let _ = writeln!(
                out,
                "latency added over the ceiling: p50 {:+.3} ms, p95 {:+.3} ms",
                cmp.added_latency_ms, cmp.added_latency_p95_ms
            );
        }
        for (name, section) in &self.sections {
            if let Some(added) = section.added_latency_ms {
                let _ = writeln!(
                    out,
                    "{name}: first request of a new session adds p50 {:+.1} ms, p95 {:+.1} ms over a warm request",
                    added,
                    section.added_latency_p95_ms.unwrap_or(0.0)
                );
            }
        }
        let all = self
            .figures
            .iter()
            .chain(self.ceiling.iter())
            .chain(self.sections.values().filter_map(|s| s.figures.as_ref()));
        for f in all {
            for example in &f.error_examples {
                let _ = writeln!(out, "error: {example}");
            }
        }
        if let Some(m) = &self.memory {
            let _ = writeln!(
                out,
                "idle session memory ({} containers): working set {:.1} MiB mean / {:.1} max, cgroup usage {:.1} MiB mean; disk {:.1} MiB; host {:.2} MiB → {:.1} MiB per session",
                m.containers,
                m.container_working_set_mean_mib,
                m.container_working_set_max_mib,
                m.container_usage_mean_mib,
                m.disk_allocated_mean_mib.unwrap_or(0.0),
                m.host_rss_per_session_mib.unwrap_or(0.0),
                m.per_session_total_mib
            );
            let _ = writeln!(out, "  ({})", m.note);
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }

    /// Print the text, and write the JSON and the chart where asked.
    pub fn emit(&self, series: &[chart::Series], output: &OutputArgs) -> anyhow::Result<()> {
        println!("{}", self.text());
        if let Some(path) = &output.json {
            std::fs::write(path, serde_json::to_string_pretty(self)? + "\n")?;
            eprintln!("wrote {}", path.display());
        }
        if let Some(path) = &output.chart {
            chart::draw(
                path,
                &format!(
                    "tether-bench {} ({} users)",
                    self.scenario, self.config.users
                ),
                series,
            )?;
            eprintln!("wrote {}", path.display());
        }
        Ok(())
    }
}

fn row(out: &mut String, name: &str, f: &Figures) {
    let l = &f.latency_ms;
    let _ = writeln!(
        out,
        "{name:<22} {:>8} {:>7.1} {:>9.1} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.2}",
        f.requests,
        f.success_pct,
        f.verified_pct,
        f.throughput_rps,
        l.min,
        l.p50,
        l.p95,
        l.p99,
        l.max
    );
}

/// Chart series for a set of samples.
pub fn series(label: &str, samples: &[Sample]) -> chart::Series {
    chart::Series {
        label: label.to_owned(),
        samples: samples.to_vec(),
    }
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, proleptic Gregorian).
pub fn utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Sample, SampleStatus};
    use serde_json::Value;
    use std::time::Duration;

    fn figures(latency_ms: u64, n: u64) -> Figures {
        let samples: Vec<Sample> = (0..n)
            .map(|i| Sample {
                at: Duration::from_millis(i * 10),
                latency: Duration::from_millis(latency_ms),
                status: SampleStatus::Verified,
            })
            .collect();
        Figures::from_samples(&samples, Duration::from_secs(1))
    }

    #[test]
    fn json_has_the_keys_comparisons_rely_on() {
        let mut report = Report::new(
            "saturation",
            Mode::Embedded,
            "http://127.0.0.1:3874",
            RunConfig::new(25, 100, ThinkTime::ZERO, false),
        );
        report.figures = Some(figures(6, 300));
        report.with_ceiling(figures(4, 400));
        let json: Value = serde_json::to_value(&report).expect("json");
        for key in [
            "throughput_rps",
            "success_pct",
            "verified_pct",
            "ceiling_rps",
            "throughput_ratio",
            "added_latency_ms",
        ] {
            assert!(json[key].is_number(), "{key} missing in {json}");
        }
        for key in ["min", "p50", "p95", "p99", "max"] {
            assert!(json["latency_ms"][key].is_number(), "latency_ms.{key}");
        }
        assert_eq!(json["throughput_rps"], 300.0);
        assert_eq!(json["ceiling_rps"], 400.0);
        assert_eq!(json["throughput_ratio"], 0.75);
        let near = |v: &Value, x: f64| v.as_f64().is_some_and(|v| (v - x).abs() <= 0.01);
        assert!(
            near(&json["added_latency_ms"], 2.0),
            "{}",
            json["added_latency_ms"]
        );
        assert!(near(&json["ceiling"]["latency_ms"]["p50"], 4.0));
        assert_eq!(json["mode"], "embedded");
        assert_eq!(json["scenario"], "saturation");
        assert_eq!(json["config"]["users"], 25);
        assert!(json["machine"]["cores"].as_u64().is_some_and(|c| c > 0));
        let text = report.text();
        assert!(text.contains("throughput ratio"), "{text}");
    }

    #[test]
    fn json_without_a_ceiling_has_no_ratio_keys_and_sections_say_why() {
        let mut report = Report::new("async", Mode::Distributed, "x", RunConfig::default());
        report.figures = Some(figures(5, 10));
        report.sections.insert(
            "sse".into(),
            Section::unavailable("endpoint not available (404)"),
        );
        report
            .sections
            .insert("poll".into(), Section::measured(figures(5, 10)));
        let json: Value = serde_json::to_value(&report).expect("json");
        assert!(json.get("ceiling_rps").is_none());
        assert!(json.get("throughput_ratio").is_none());
        assert_eq!(
            json["sections"]["sse"]["unavailable"],
            "endpoint not available (404)"
        );
        assert_eq!(json["sections"]["poll"]["throughput_rps"], 10.0);
        assert!(report.text().contains("endpoint not available (404)"));
    }

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_767_225_599), "2025-12-31T23:59:59Z");
    }
}
