//! SVG line charts (plotters' SVG backend only: text is left to the browser, so
//! no font or bitmap libraries are needed).

use super::error::BenchError;
use plotters::prelude::*;
use std::path::Path;

/// One line of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Its legend.
    pub name: String,
    /// Its points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// One chart.
#[derive(Clone, Debug)]
pub struct Chart {
    /// The title.
    pub title: String,
    /// The x axis' label.
    pub x_label: String,
    /// The y axis' label.
    pub y_label: String,
    /// Whether x is on a log scale (client counts).
    pub log_x: bool,
    /// The lines.
    pub series: Vec<Series>,
}

/// Colors of successive series.
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

impl Chart {
    /// Draws the chart into the SVG file `path` (nothing when it has no points).
    pub fn draw(&self, path: &Path) -> Result<(), BenchError> {
        let points = || self.series.iter().flat_map(|s| s.points.iter());
        if points().next().is_none() {
            return Ok(());
        }
        let fail = |e: String| BenchError::Plot {
            path: path.to_path_buf(),
            error: e,
        };
        let x_min = points().map(|p| p.0).fold(f64::INFINITY, f64::min);
        let x_max = points().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
        let y_max = points().map(|p| p.1).fold(0.0, f64::max).max(1e-9) * 1.1;
        let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption(&self.title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70);
        if self.log_x {
            let (lo, hi) = (x_min.max(0.5) * 0.8, x_max * 1.25);
            let mut chart = builder
                .build_cartesian_2d((lo..hi).log_scale(), 0.0..y_max)
                .map_err(|e| fail(e.to_string()))?;
            chart
                .configure_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .draw()
                .map_err(|e| fail(e.to_string()))?;
            self.lines(&mut chart).map_err(fail)?;
        } else {
            let pad = ((x_max - x_min) * 0.05).max(0.5);
            let mut chart = builder
                .build_cartesian_2d((x_min - pad)..(x_max + pad), 0.0..y_max)
                .map_err(|e| fail(e.to_string()))?;
            chart
                .configure_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .draw()
                .map_err(|e| fail(e.to_string()))?;
            self.lines(&mut chart).map_err(fail)?;
        }
        root.present().map_err(|e| fail(e.to_string()))
    }

    fn lines<'a, X>(
        &self,
        chart: &mut ChartContext<
            'a,
            SVGBackend<'a>,
            Cartesian2d<X, plotters::coord::types::RangedCoordf64>,
        >,
    ) -> Result<(), String>
    where
        X: Ranged<ValueType = f64>,
    {
        for (i, s) in self.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_becomes_an_svg_with_its_legend() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.svg");
        let chart = Chart {
            title: "throughput".into(),
            x_label: "clients".into(),
            y_label: "ops/s".into(),
            log_x: true,
            series: vec![Series {
                name: "diskv 1x3".into(),
                points: vec![(1.0, 100.0), (10.0, 700.0), (64.0, 900.0)],
            }],
        };
        chart.draw(&path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..60.min(svg.len())]);
        assert!(svg.contains("diskv 1x3") && svg.contains("throughput"));
        let empty = Chart {
            series: vec![],
            ..chart
        };
        empty.draw(&dir.path().join("none.svg")).unwrap();
        assert!(!dir.path().join("none.svg").exists());
    }
}
