//! Charts as SVG (plotters): text stays text, so no system fonts are needed
//! at build time and the browser renders the labels.

use anyhow::{anyhow, Result};
use plotters::prelude::*;

pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Font families tried in order by the browser.
const FONT: &str = "Noto Sans CJK JP, Hiragino Sans, Yu Gothic, Meiryo, sans-serif";

pub struct Series {
    pub name: String,
    pub xs: Vec<f64>,
    pub ys: Vec<f64>,
    pub color: RGBColor,
    /// Thick lines for means, thin for single seeds.
    pub thick: bool,
    /// Shown in the legend.
    pub legend: bool,
}

/// A shaded band (e.g. min–max over seeds).
pub struct Band {
    pub xs: Vec<f64>,
    pub lo: Vec<f64>,
    pub hi: Vec<f64>,
    pub color: RGBColor,
}

pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
    /// Fixed y range; None fits the data.
    pub y_range: Option<(f64, f64)>,
    pub size: (u32, u32),
}

fn finite(v: impl Iterator<Item = f64>) -> Vec<f64> {
    v.filter(|x| x.is_finite()).collect()
}

impl LineChart {
    pub fn new(title: &str, x_label: &str, y_label: &str) -> LineChart {
        LineChart { title: title.into(), x_label: x_label.into(), y_label: y_label.into(), series: vec![], bands: vec![], y_range: None, size: (420, 300) }
    }

    pub fn render(&self) -> Result<String> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, self.size).into_drawing_area();
            root.fill(&WHITE).map_err(|e| anyhow!("chart: {e}"))?;
            let xs = finite(self.series.iter().flat_map(|s| s.xs.iter().copied()).chain(self.bands.iter().flat_map(|b| b.xs.iter().copied())));
            let ys = finite(self.series.iter().flat_map(|s| s.ys.iter().copied()).chain(self.bands.iter().flat_map(|b| b.lo.iter().chain(&b.hi).copied())));
            let (x0, x1) = bounds(&xs, (0.0, 1.0));
            let (y0, y1) = self.y_range.unwrap_or_else(|| pad(bounds(&ys, (0.0, 1.0))));
            let mut chart = ChartBuilder::on(&root)
                .caption(&self.title, (FONT, 15))
                .margin(8)
                .x_label_area_size(32)
                .y_label_area_size(48)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|e| anyhow!("chart: {e}"))?;
            chart
                .configure_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .label_style((FONT, 11))
                .axis_desc_style((FONT, 12))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(|e| anyhow!("chart: {e}"))?;
            for b in &self.bands {
                let mut pts: Vec<(f64, f64)> = b.xs.iter().zip(&b.hi).map(|(x, y)| (*x, *y)).collect();
                pts.extend(b.xs.iter().zip(&b.lo).rev().map(|(x, y)| (*x, *y)));
                let pts: Vec<_> = pts.into_iter().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
                chart.draw_series(std::iter::once(Polygon::new(pts, b.color.mix(0.18).filled()))).map_err(|e| anyhow!("chart: {e}"))?;
            }
            let mut any_legend = false;
            for s in &self.series {
                let style = ShapeStyle { color: s.color.mix(if s.thick { 1.0 } else { 0.45 }), filled: false, stroke_width: if s.thick { 2 } else { 1 } };
                let pts: Vec<(f64, f64)> = s.xs.iter().zip(&s.ys).filter(|(x, y)| x.is_finite() && y.is_finite()).map(|(x, y)| (*x, y.clamp(y0, y1))).collect();
                let drawn = chart.draw_series(LineSeries::new(pts, style)).map_err(|e| anyhow!("chart: {e}"))?;
                if s.legend {
                    any_legend = true;
                    let c = s.color;
                    drawn.label(s.name.clone()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
                }
            }
            if any_legend {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(200, 200, 200))
                    .label_font((FONT, 11))
                    .position(SeriesLabelPosition::LowerRight)
                    .draw()
                    .map_err(|e| anyhow!("chart: {e}"))?;
            }
            root.present().map_err(|e| anyhow!("chart: {e}"))?;
        }
        Ok(svg)
    }
}

fn bounds(v: &[f64], default: (f64, f64)) -> (f64, f64) {
    if v.is_empty() {
        return default;
    }
    let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if hi > lo { (lo, hi) } else { (lo - 0.5, hi + 0.5) }
}

fn pad((lo, hi): (f64, f64)) -> (f64, f64) {
    let d = (hi - lo) * 0.05;
    (lo - d, hi + d)
}
