//! The latency chart (SVG): latency of every request over the run, and the latency
//! distribution by percentile, one colour per series (end-to-end, ceiling, …). Both
//! latency axes are logarithmic so a 4 ms median and a 1 s first import share a picture.

use crate::stats::{Sample, percentile_curve};
use plotters::prelude::*;
use std::path::Path;

/// One labelled set of samples.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub samples: Vec<Sample>,
}

const COLOURS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];

/// The x position of quantile `q` on a "nines" axis: 0 → 0, 0.9 → 1, 0.99 → 2, 0.999 → 3.
fn nines(q: f64) -> f64 {
    -(1.0 - q.min(0.999)).log10()
}

/// Draw `series` to `path` as SVG.
pub fn draw(path: &Path, title: &str, series: &[Series]) -> anyhow::Result<()> {
    let fail = |e: &dyn std::fmt::Display| anyhow::anyhow!("drawing {}: {e}", path.display());
    let ok: Vec<(&Series, RGBColor)> = series
        .iter()
        .zip(COLOURS.iter().cycle().copied())
        .filter(|(s, _)| s.samples.iter().any(|x| x.status.succeeded()))
        .collect();
    let ms = |s: &Sample| (s.latency.as_secs_f64() * 1000.0).max(0.01);
    let succeeded = || {
        ok.iter()
            .flat_map(|(s, _)| s.samples.iter().filter(|x| x.status.succeeded()))
    };
    let y_max = succeeded().map(ms).fold(1.0_f64, f64::max) * 1.5;
    let y_min = succeeded()
        .map(ms)
        .fold(f64::INFINITY, f64::min)
        .min(y_max / 10.0)
        / 1.5;
    let t_max = succeeded()
        .map(|s| s.at.as_secs_f64())
        .fold(0.001_f64, f64::max);

    let root = SVGBackend::new(path, (1280, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let root = root
        .titled(title, ("sans-serif", 22))
        .map_err(|e| fail(&e))?;
    let (left, right) = root.split_horizontally(640);

    let mut over_time = ChartBuilder::on(&left)
        .caption("latency of each request over the run", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max * 1.02, (y_min..y_max).log_scale())
        .map_err(|e| fail(&e))?;
    over_time
        .configure_mesh()
        .x_desc("elapsed (s)")
        .y_desc("latency (ms, log)")
        .draw()
        .map_err(|e| fail(&e))?;
    for (s, colour) in &ok {
        let colour = *colour;
        over_time
            .draw_series(
                s.samples
                    .iter()
                    .filter(|x| x.status.succeeded())
                    .map(|x| Circle::new((x.at.as_secs_f64(), ms(x)), 2, colour.mix(0.5).filled())),
            )
            .map_err(|e| fail(&e))?
            .label(s.label.clone())
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, colour.filled()));
    }
    over_time
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;

    let mut by_percentile = ChartBuilder::on(&right)
        .caption("latency by percentile", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..3.0_f64, (y_min..y_max).log_scale())
        .map_err(|e| fail(&e))?;
    by_percentile
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms, log)")
        .x_labels(4)
        .x_label_formatter(&|x| {
            let p = 100.0 - 100.0 / 10f64.powf(*x);
            format!("p{}", (p * 10.0).round() / 10.0)
        })
        .draw()
        .map_err(|e| fail(&e))?;
    for (s, colour) in &ok {
        let colour = *colour;
        let curve: Vec<(f64, f64)> = percentile_curve(&s.samples)
            .into_iter()
            .map(|(p, v)| (nines(p / 100.0), v.max(y_min)))
            .collect();
        by_percentile
            .draw_series(LineSeries::new(curve, colour.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
            });
    }
    by_percentile
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::SampleStatus;
    use std::time::Duration;

    #[test]
    fn draws_an_svg_with_every_series() {
        let samples = |base: u64| -> Vec<Sample> {
            (0..200)
                .map(|i| Sample {
                    at: Duration::from_millis(i * 5),
                    latency: Duration::from_micros(base + i * 37 % 900),
                    status: SampleStatus::Verified,
                })
                .collect()
        };
        let dir = std::env::temp_dir().join(format!("tether-bench-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("c.svg");
        let series = [
            Series {
                label: "end-to-end".into(),
                samples: samples(5000),
            },
            Series {
                label: "ceiling".into(),
                samples: samples(4000),
            },
            Series {
                label: "empty".into(),
                samples: Vec::new(),
            },
        ];
        draw(&path, "test", &series).expect("draw");
        let svg = std::fs::read_to_string(&path).expect("svg");
        assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
        assert!(svg.contains("end-to-end") && svg.contains("ceiling"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nines_axis() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(0.99) - 2.0).abs() < 1e-9);
        assert!((nines(1.0) - 3.0).abs() < 1e-9);
    }
}
