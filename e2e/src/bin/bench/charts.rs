//! The report's charts: SVG line charts drawn with plotters. One shape serves all of them:
//! named series of (x, y) points, either axis logarithmic.

use std::path::Path;

use anyhow::anyhow;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Markers at each point (measurements) rather than a plain line (a distribution).
    pub markers: bool,
}

pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
}

const COLOURS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0x2c, 0xa0, 0x2c),
];

/// The range of one axis over every series, padded; a log axis starts above zero.
fn range(values: impl Iterator<Item = f64>, log: bool) -> anyhow::Result<(f64, f64)> {
    let values: Vec<f64> = values
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.is_empty() {
        return Err(anyhow!("nothing to plot"));
    }
    Ok(if log {
        (lo / 1.5, hi * 1.5)
    } else {
        let pad = ((hi - lo) * 0.05).max(hi.abs() * 0.05).max(1e-9);
        ((lo - pad).min(0.0), hi + pad)
    })
}

impl Chart<'_> {
    pub fn write_svg(&self, file: &Path) -> anyhow::Result<()> {
        let points = || self.series.iter().flat_map(|s| s.points.iter());
        let x = range(points().map(|p| p.0), self.log_x)?;
        let y = range(points().map(|p| p.1), self.log_y)?;
        let root = SVGBackend::new(file, (800, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(draw)?;
        // plotters types a chart by its coordinates: one function per combination.
        match (self.log_x, self.log_y) {
            (false, false) => self.draw(&root, x.0..x.1, y.0..y.1),
            (true, false) => self.draw(&root, (x.0..x.1).log_scale(), y.0..y.1),
            (false, true) => self.draw(&root, x.0..x.1, (y.0..y.1).log_scale()),
            (true, true) => self.draw(&root, (x.0..x.1).log_scale(), (y.0..y.1).log_scale()),
        }?;
        root.present().map_err(draw)?;
        Ok(())
    }

    fn draw<X, Y>(
        &self,
        root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
        x: X,
        y: Y,
    ) -> anyhow::Result<()>
    where
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x, y)
            .map_err(draw)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .draw()
            .map_err(draw)?;
        for (i, series) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let style = colour.stroke_width(2);
            chart
                .draw_series(LineSeries::new(series.points.iter().copied(), style))
                .map_err(draw)?
                .label(series.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            if series.markers {
                chart
                    .draw_series(
                        series
                            .points
                            .iter()
                            .map(|p| Circle::new(*p, 4, colour.filled())),
                    )
                    .map_err(draw)?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(draw)?;
        Ok(())
    }
}

fn draw(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing a chart: {error}")
}

/// An empirical CDF: each sample against the fraction of samples at or below it.
pub fn cdf(samples: &[f64]) -> Vec<(f64, f64)> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    sorted
        .into_iter()
        .enumerate()
        .map(|(i, v)| (v, (i + 1) as f64 / n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cdf_rises_to_one_in_sample_order() {
        assert_eq!(
            cdf(&[3.0, 1.0, 2.0, 2.0]),
            vec![(1.0, 0.25), (2.0, 0.5), (2.0, 0.75), (3.0, 1.0)]
        );
        assert!(cdf(&[]).is_empty());
    }

    #[test]
    fn a_chart_is_an_svg_with_its_title_labels_and_every_series() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.svg");
        let chart = Chart {
            title: "decisions per second",
            x_label: "in flight",
            y_label: "decisions/s",
            log_x: true,
            log_y: false,
            series: vec![
                Series {
                    name: "ours".into(),
                    points: vec![(1.0, 50.0), (10.0, 300.0)],
                    markers: true,
                },
                Series {
                    name: "MAG".into(),
                    points: vec![(1.0, 20.0), (10.0, 90.0)],
                    markers: true,
                },
            ],
        };
        chart.write_svg(&file).unwrap();
        let svg = std::fs::read_to_string(&file).unwrap();
        for text in ["<svg", "decisions per second", "in flight", "ours", "MAG"] {
            assert!(svg.contains(text), "{text} missing");
        }
        let empty = Chart {
            series: vec![],
            ..chart
        };
        assert!(empty.write_svg(&file).is_err());
    }

    #[test]
    fn a_log_axis_leaves_out_zero_and_a_linear_one_starts_at_zero() {
        assert_eq!(
            range([0.0, 2.0, 8.0].into_iter(), true).unwrap(),
            (2.0 / 1.5, 12.0)
        );
        let (lo, hi) = range([5.0, 10.0].into_iter(), false).unwrap();
        assert!(lo == 0.0 && hi > 10.0);
    }
}
