//! Latency samples → the figures a report prints. Latencies go through an HDR histogram
//! (microsecond resolution, 3 significant digits), so percentiles are exact to 0.1 %.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// One request as the client saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// When it finished, from the start of the run.
    pub at: Duration,
    /// From sending the request to holding the answer.
    pub latency: Duration,
    pub status: SampleStatus,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SampleStatus {
    /// Answered, and the answer was the expected one.
    Verified,
    /// Answered (the code ran), but not with the expected value.
    WrongAnswer,
    /// No usable answer: transport error, HTTP error, or the cell failed.
    Failed {
        /// Low-cardinality class, e.g. `http_503`, `timeout`, `outcome_error`.
        kind: String,
        /// What exactly happened (kept for a few examples in the report).
        detail: String,
    },
}

impl SampleStatus {
    /// The request got an answer from the code (right or wrong).
    pub fn succeeded(&self) -> bool {
        !matches!(self, SampleStatus::Failed { .. })
    }
}

/// Latency percentiles in milliseconds, over the requests that succeeded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencyMs {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// What one run measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Requests sent.
    pub requests: u64,
    /// Requests whose code ran (HTTP 200 / job succeeded / kernel idle, outcome ok).
    pub succeeded: u64,
    /// Succeeded with the expected answer.
    pub verified: u64,
    /// Wall time of the run, first request sent to last answer, in seconds.
    pub duration_s: f64,
    /// Succeeded requests per second of wall time.
    pub throughput_rps: f64,
    pub success_pct: f64,
    pub verified_pct: f64,
    pub latency_ms: LatencyMs,
    /// Failed requests by kind.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
    /// Up to five distinct failures as they happened, for diagnosis.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub error_examples: Vec<String>,
}

const MAX_EXAMPLES: usize = 5;

impl Figures {
    /// Figures for `samples` whose wall time runs from 0 to the last one's finish.
    pub fn spanning(samples: &[Sample]) -> Self {
        let elapsed = samples.iter().map(|s| s.at).max().unwrap_or_default();
        Self::from_samples(samples, elapsed)
    }

    /// Figures for `samples` collected over `elapsed` of wall time.
    pub fn from_samples(samples: &[Sample], elapsed: Duration) -> Self {
        let mut histogram = new_histogram();
        let (mut fastest, mut slowest) = (Duration::MAX, Duration::ZERO);
        let mut figures = Figures {
            requests: samples.len() as u64,
            duration_s: round3(elapsed.as_secs_f64()),
            ..Figures::default()
        };
        for sample in samples {
            match &sample.status {
                SampleStatus::Verified | SampleStatus::WrongAnswer => {
                    figures.succeeded += 1;
                    figures.verified += u64::from(sample.status == SampleStatus::Verified);
                    record(&mut histogram, sample.latency);
                    fastest = fastest.min(sample.latency);
                    slowest = slowest.max(sample.latency);
                }
                SampleStatus::Failed { kind, detail } => {
                    *figures.errors.entry(kind.clone()).or_default() += 1;
                    let example = format!("{kind}: {detail}");
                    if figures.error_examples.len() < MAX_EXAMPLES
                        && !figures.error_examples.contains(&example)
                    {
                        figures.error_examples.push(example);
                    }
                }
            }
        }
        let wrong = figures.succeeded - figures.verified;
        if wrong > 0 {
            figures.errors.insert("wrong_answer".into(), wrong);
        }
        figures.latency_ms = latency_ms(&histogram, fastest, slowest);
        figures.success_pct = pct(figures.succeeded, figures.requests);
        figures.verified_pct = pct(figures.verified, figures.requests);
        figures.throughput_rps = if elapsed.is_zero() {
            0.0
        } else {
            round3(figures.succeeded as f64 / elapsed.as_secs_f64())
        };
        figures
    }
}

/// The ratios that survive noisy machines: end-to-end against the ceiling measured in the
/// same invocation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Comparison {
    pub ceiling_rps: f64,
    /// End-to-end throughput ÷ ceiling throughput.
    pub throughput_ratio: f64,
    /// End-to-end p50 − ceiling p50, in ms.
    pub added_latency_ms: f64,
    /// End-to-end p95 − ceiling p95, in ms.
    pub added_latency_p95_ms: f64,
}

impl Comparison {
    pub fn of(e2e: &Figures, ceiling: &Figures) -> Self {
        let ratio = if ceiling.throughput_rps > 0.0 {
            e2e.throughput_rps / ceiling.throughput_rps
        } else {
            0.0
        };
        Self {
            ceiling_rps: ceiling.throughput_rps,
            throughput_ratio: round3(ratio),
            added_latency_ms: round3(e2e.latency_ms.p50 - ceiling.latency_ms.p50),
            added_latency_p95_ms: round3(e2e.latency_ms.p95 - ceiling.latency_ms.p95),
        }
    }
}

/// Percentile curve of the succeeded requests' latency: `(percentile, ms)` pairs, for
/// the chart.
pub fn percentile_curve(samples: &[Sample]) -> Vec<(f64, f64)> {
    let mut histogram = new_histogram();
    for s in samples.iter().filter(|s| s.status.succeeded()) {
        record(&mut histogram, s.latency);
    }
    if histogram.is_empty() {
        return Vec::new();
    }
    (0..=1000)
        .map(|i| {
            let q = f64::from(i) / 1000.0;
            let micros = histogram.median_equivalent(histogram.value_at_quantile(q));
            (q * 100.0, micros as f64 / 1000.0)
        })
        .collect()
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs … 1 h; the bounds are constants, so this cannot fail.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| unreachable!())
}

fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(micros.clamp(1, histogram.high()));
}

/// Percentiles from the histogram (each the midpoint of its 0.1 %-wide bucket), min and
/// max exact.
fn latency_ms(h: &Histogram<u64>, fastest: Duration, slowest: Duration) -> LatencyMs {
    if h.is_empty() {
        return LatencyMs::default();
    }
    let ms = |micros: u64| round3(micros as f64 / 1000.0);
    let at = |q: f64| ms(h.median_equivalent(h.value_at_quantile(q)));
    LatencyMs {
        min: round3(fastest.as_secs_f64() * 1000.0),
        mean: round3(h.mean() / 1000.0),
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        max: round3(slowest.as_secs_f64() * 1000.0),
    }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        round3(100.0 * part as f64 / whole as f64)
    }
}

/// Rounded to 0.001: enough for milliseconds, readable in JSON.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ms: u64, status: SampleStatus) -> Sample {
        Sample {
            at: Duration::from_millis(ms),
            latency: Duration::from_millis(ms),
            status,
        }
    }

    fn failed(kind: &str) -> SampleStatus {
        SampleStatus::Failed {
            kind: kind.into(),
            detail: "boom".into(),
        }
    }

    #[test]
    fn figures_count_success_verification_and_errors() {
        let mut samples: Vec<Sample> = (1..=96)
            .map(|ms| sample(ms, SampleStatus::Verified))
            .collect();
        samples.push(sample(97, SampleStatus::WrongAnswer));
        samples.push(sample(5000, failed("timeout")));
        samples.push(sample(1, failed("http_503")));
        samples.push(sample(1, failed("http_503")));
        let f = Figures::from_samples(&samples, Duration::from_secs(2));
        assert_eq!((f.requests, f.succeeded, f.verified), (100, 97, 96));
        assert_eq!(f.success_pct, 97.0);
        assert_eq!(f.verified_pct, 96.0);
        assert_eq!(f.throughput_rps, 48.5);
        assert_eq!(f.errors["http_503"], 2);
        assert_eq!(f.errors["timeout"], 1);
        assert_eq!(f.errors["wrong_answer"], 1);
        // Identical failures are shown once.
        assert_eq!(f.error_examples.len(), 2);
        // Failed requests do not count towards latency.
        assert_eq!(f.latency_ms.min, 1.0);
        assert_eq!(f.latency_ms.max, 97.0);
        // Percentiles are exact to the histogram's 0.1 %.
        assert!(
            (f.latency_ms.p50 - 49.0).abs() <= 0.05,
            "{}",
            f.latency_ms.p50
        );
        assert!(
            (f.latency_ms.p95 - 93.0).abs() <= 0.1,
            "{}",
            f.latency_ms.p95
        );
        assert!(
            (f.latency_ms.p99 - 97.0).abs() <= 0.1,
            "{}",
            f.latency_ms.p99
        );
    }

    #[test]
    fn empty_runs_give_zeros_not_nan() {
        let f = Figures::from_samples(&[], Duration::ZERO);
        assert_eq!(f, Figures::default());
        assert!(percentile_curve(&[]).is_empty());
    }

    #[test]
    fn comparison_is_ratio_and_difference() {
        let mut e2e = Figures::default();
        let mut ceiling = Figures::default();
        e2e.throughput_rps = 300.0;
        ceiling.throughput_rps = 400.0;
        e2e.latency_ms.p50 = 5.5;
        ceiling.latency_ms.p50 = 4.0;
        e2e.latency_ms.p95 = 9.0;
        ceiling.latency_ms.p95 = 6.0;
        let c = Comparison::of(&e2e, &ceiling);
        assert_eq!(c.throughput_ratio, 0.75);
        assert_eq!(c.added_latency_ms, 1.5);
        assert_eq!(c.added_latency_p95_ms, 3.0);
        assert_eq!(c.ceiling_rps, 400.0);
    }

    #[test]
    fn percentile_curve_is_monotonic() {
        let samples: Vec<Sample> = (1..=50)
            .map(|ms| sample(ms, SampleStatus::Verified))
            .collect();
        let curve = percentile_curve(&samples);
        assert_eq!(curve.len(), 1001);
        assert!(curve.windows(2).all(|w| w[0].1 <= w[1].1));
        assert!(curve.last().is_some_and(|p| (p.1 - 50.0).abs() <= 0.05));
    }
}
