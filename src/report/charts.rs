//! Charts as SVG (plotters): text stays text, so no system fonts are needed
//! at build time and the browser renders the labels.
//!
//! Readability rules, applied to every chart: text sizes are chosen for the
//! narrowest width the book displays a chart at: 320 px, a 390 px
//! phone's column inside the answer's box (`book/actlab.css` never
//! shows a chart wider than its own size, and in a table at 300 px): a
//! chart's text scaled to that width stays at least 11 px (the test below
//! checks every size); the legend sits in a strip beside
//! the data or below it, never over it; epochs are whole numbers; a
//! function keeps its colour on every chart of the book (see
//! [`super::colors`]); and training vs validation is told by the dash, not
//! by colour.

use super::messages::{Messages, fill};
use super::rules::CHANCE_ACCURACY;
use crate::activation::Activation;
use anyhow::{Result, anyhow};
use plotters::prelude::*;

pub type Rgb = RGBColor;

/// Reference lines (chance, the baseline's level): grey, apart from every
/// function's colour.
pub const REFERENCE_GREY: RGBColor = RGBColor(90, 90, 90);


/// Font families tried in order by the browser.
const FONT: &str = "Noto Sans CJK JP, Hiragino Sans, Yu Gothic, Meiryo, sans-serif";
/// The standard chart: 340 × 270 with 14 px text (three side by side fill a desktop column).
const SIZE: (u32, u32) = (340, 270);
const TEXT: u32 = 14;
/// A chart of every function at once (overlays, the answer's seeds chart).
pub const WIDE: (u32, u32) = (480, 360);
pub const WIDE_TEXT: u32 = 18;


/// How heavily a line is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stroke {
    /// A mean over seeds, or one run's own curve.
    Thick,
    /// A seed set aside (it did not learn): drawn on its own, and visible
    /// where it lies on a reference line such as chance.
    Medium,
    /// A noisy per-step curve over its band.
    Thin,
}

impl Stroke {
    /// (width in pixels, opacity)
    fn look(self) -> (u32, f64) {
        match self {
            Stroke::Thick => (3, 1.0),
            Stroke::Medium => (2, 0.9),
            Stroke::Thin => (1, 0.4),
        }
    }
}

#[derive(Clone)]
pub struct Series {
    pub name: String,
    pub xs: Vec<f64>,
    pub ys: Vec<f64>,
    pub color: RGBColor,
    pub stroke: Stroke,
    /// Dashed: validation (the test set); solid: training.
    pub dashed: bool,
    /// Shown in the legend.
    pub legend: bool,
}

/// A shaded band (e.g. min–max over seeds).
#[derive(Clone)]
pub struct Band {
    pub xs: Vec<f64>,
    pub lo: Vec<f64>,
    pub hi: Vec<f64>,
    pub color: RGBColor,
}

pub struct LineChart {
    pub title: String,
    pub x_label: String,
    y_label: String,
    /// The y axis's title when [`log_y`](Self::log_y) is set: the label
    /// with a mark that the scale is logarithmic, in the book's language.
    pub y_label_log: String,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
    /// Fixed y range; None fits the data.
    pub y_range: Option<(f64, f64)>,
    /// Horizontal reference lines (chance, relu's level), drawn thin and
    /// grey under the curves, each labelled at its left end.
    pub references: Vec<Reference>,
    /// A logarithmic y axis (for curves spanning orders of magnitude).
    pub log_y: bool,
    /// x counts epochs: whole-number ticks.
    pub integer_x: bool,
    pub size: (u32, u32),
    /// Text size in SVG pixels (the title is 1 px larger).
    pub text: u32,
}

fn finite(v: impl Iterator<Item = f64>) -> Vec<f64> {
    v.filter(|x| x.is_finite()).collect()
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("chart: {e}")
}

impl LineChart {
    pub fn new(title: &str, x_label: &str, y_label: &str) -> LineChart {
        LineChart { title: title.into(), x_label: x_label.into(), y_label: y_label.into(), y_label_log: format!("{y_label} (log)"), series: vec![], bands: vec![], references: vec![], y_range: None, log_y: false, integer_x: true, size: SIZE, text: TEXT }
    }

    /// Whether one curve would flatten the rest on a linear axis: the
    /// highest curve's peak is over `ratio` times the lowest curve's
    /// (curves: the series in the legend, i.e. the means; peaks of |y|).
    pub fn flattened(&self, ratio: f64) -> bool {
        let mut peaks: Vec<f64> = self.series.iter().filter(|s| s.legend).map(|s| finite(s.ys.iter().map(|v| v.abs())).into_iter().fold(0.0, f64::max)).filter(|v| *v > 0.0).collect();
        if peaks.len() < 2 {
            return false;
        }
        peaks.sort_by(f64::total_cmp);
        peaks[peaks.len() - 1] > ratio * peaks[0]
    }

    /// Whether a logarithmic axis is the cure: the highest peak is over
    /// `ratio` times the lowest curve's typical level (its median), which
    /// covers one curve flattening the others and one flattening itself (a
    /// first loss of 30 over a curve that lies at 2.3); and every value is
    /// positive (a log axis cannot show 0).
    pub fn needs_log(&self, ratio: f64) -> bool {
        let curves: Vec<Vec<f64>> = self.series.iter().filter(|s| s.legend).map(|s| finite(s.ys.iter().copied())).filter(|v| !v.is_empty()).collect();
        let peak = curves.iter().flatten().copied().fold(0.0, f64::max);
        let median = |c: &[f64]| {
            let mut c = c.to_vec();
            c.sort_by(f64::total_cmp);
            c[c.len() / 2]
        };
        let lowest = curves.iter().map(|c| median(c)).fold(f64::INFINITY, f64::min);
        lowest > 0.0 && lowest.is_finite() && peak > ratio * lowest && self.series.iter().flat_map(|s| finite(s.ys.iter().copied())).all(|v| v > 0.0)
    }

    fn y(&self, v: f64) -> f64 {
        if self.log_y { if v > 0.0 { v.log10() } else { f64::NAN } } else { v }
    }

    pub fn render(&self) -> Result<String> {
        let mut svg = String::new();
        {
            let legends: Vec<&Series> = self.series.iter().filter(|s| s.legend).collect();
            let (text, title) = (self.text, self.text + 1);
            // The legend strip: as wide as its longest label.
            let label_width = |s: &str| ems(s) * text as f64;
            let strip_width = legends.iter().map(|s| label_width(&s.name)).fold(0.0, f64::max) as u32 + 44;
            // Beside the plot, or below it in columns when that would leave the plot too narrow.
            let below = strip_width * 3 > self.size.0;
            let columns = if below { (self.size.0 / strip_width).max(1) as usize } else { 1 };
            let line_height = text as i32 + 8;
            let legend_rows = legends.len().div_ceil(columns);
            // A legend below adds its height to the chart's: the plot keeps its size.
            let legend_height = if below && !legends.is_empty() { legend_rows as u32 * line_height as u32 + 8 } else { 0 };
            let root = SVGBackend::with_string(&mut svg, (self.size.0, self.size.1 + legend_height)).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            // The title over plot and legend together, on two lines where one
            // would run off the chart's edges.
            let mut area = root.clone();
            for line in title_lines(&self.title, self.size.0, title) {
                area = area.titled(line, (FONT, title)).map_err(err)?;
            }
            let (plot, strip) = if legends.is_empty() {
                (area, None)
            } else if below {
                let (a, b) = area.split_vertically(area.dim_in_pixel().1 as i32 - legend_height as i32);
                (a, Some(b))
            } else {
                let (a, b) = area.split_horizontally(self.size.0.saturating_sub(strip_width));
                (a, Some(b))
            };
            let xs = finite(self.series.iter().flat_map(|s| s.xs.iter().copied()).chain(self.bands.iter().flat_map(|b| b.xs.iter().copied())));
            let ys = finite(self.series.iter().flat_map(|s| s.ys.iter().map(|v| self.y(*v))).chain(self.bands.iter().flat_map(|b| b.lo.iter().chain(&b.hi).map(|v| self.y(*v)))));
            let (x0, x1) = bounds(&xs, (0.0, 1.0));
            let (y0, y1) = match self.y_range {
                Some((a, b)) => (self.y(a), self.y(b)),
                None => pad(bounds(&ys, (0.0, 1.0))),
            };
            let mut chart = ChartBuilder::on(&plot).margin(10).x_label_area_size(2 * text + 12).y_label_area_size(3 * text + 18).build_cartesian_2d(x0..x1, y0..y1).map_err(err)?;
            let span = (x1 - x0).round().max(1.0) as usize;
            let log = self.log_y;
            // Enough decimals that ticks a sixth of the range apart differ
            // (a range of 0.0003 read "0 0 0" with two).
            let step = (y1 - y0) / 6.0;
            let decimals = if step > 0.0 { (-step.log10()).ceil().clamp(2.0, 6.0) as usize } else { 2 };
            let y_fmt = move |v: &f64| if log { format_log(*v) } else { tick(*v, decimals) };
            let x_fmt = |v: &f64| if (v - v.round()).abs() < 1e-9 { format!("{}", v.round()) } else { String::new() };
            let mut mesh = chart.configure_mesh();
            mesh.x_desc(&self.x_label)
                .y_desc(if self.log_y { &self.y_label_log } else { &self.y_label })
                .label_style((FONT, text))
                .axis_desc_style((FONT, text))
                .light_line_style(RGBColor(235, 235, 235))
                .y_label_formatter(&y_fmt)
                .y_labels(6);
            if self.integer_x {
                mesh.x_labels(if span <= 10 { span + 1 } else { 6 }).x_label_formatter(&x_fmt);
            }
            mesh.draw().map_err(err)?;
            for r in &self.references {
                let y = self.y(r.at);
                if !(y0..=y1).contains(&y) {
                    continue;
                }
                let style = ShapeStyle { color: r.color.to_rgba(), filled: false, stroke_width: 1 };
                chart.draw_series(DashedLineSeries::new(vec![(x0, y), (x1, y)], 4, 4, style)).map_err(err)?;
                let label = Text::new(r.label.clone(), (x0 + (x1 - x0) * 0.02, y), (FONT, text).into_font().color(&r.color).pos(plotters::style::text_anchor::Pos::new(plotters::style::text_anchor::HPos::Left, plotters::style::text_anchor::VPos::Bottom)));
                chart.draw_series(std::iter::once(label)).map_err(err)?;
            }
            for b in &self.bands {
                let mut pts: Vec<(f64, f64)> = b.xs.iter().zip(&b.hi).map(|(x, y)| (*x, self.y(*y))).collect();
                pts.extend(b.xs.iter().zip(&b.lo).rev().map(|(x, y)| (*x, self.y(*y))));
                let pts: Vec<_> = pts.into_iter().filter(|(x, y)| x.is_finite() && y.is_finite()).map(|(x, y)| (x, y.clamp(y0, y1))).collect();
                chart.draw_series(std::iter::once(Polygon::new(pts, b.color.mix(0.15).filled()))).map_err(err)?;
            }
            // Seeds set aside first, means last: a mean is never hidden under
            // a seed's line (one-epoch charts draw rings on the same spot).
            let mut order: Vec<&Series> = self.series.iter().collect();
            order.sort_by_key(|s| match s.stroke {
                Stroke::Medium => 0,
                Stroke::Thin => 1,
                Stroke::Thick => 2,
            });
            for s in order {
                let (width, opacity) = s.stroke.look();
                let style = ShapeStyle { color: s.color.mix(opacity), filled: false, stroke_width: width };
                let pts: Vec<(f64, f64)> = s.xs.iter().zip(&s.ys).map(|(x, y)| (*x, self.y(*y))).filter(|(x, y)| x.is_finite() && y.is_finite()).map(|(x, y)| (x, y.clamp(y0, y1))).collect();
                if let [only] = pts.as_slice() {
                    // A single point (a one-epoch run) draws no line: a dot,
                    // hollow and larger for a dashed series so both show.
                    let dot = if s.dashed { Circle::new(*only, 7, style) } else { Circle::new(*only, 5, style.filled()) };
                    chart.draw_series(std::iter::once(dot)).map_err(err)?;
                } else if s.dashed {
                    chart.draw_series(DashedLineSeries::new(pts, 9, 6, style)).map_err(err)?;
                } else {
                    chart.draw_series(LineSeries::new(pts, style)).map_err(err)?;
                }
            }
            if let Some(strip) = strip {
                // One line per entry, with its dash.
                let top = if below { line_height / 2 } else { line_height / 2 + 10 };
                for (i, s) in legends.iter().enumerate() {
                    let (row, column) = if below { (i / columns, i % columns) } else { (i, 0) };
                    let x = column as i32 * strip_width as i32 + if below { 40 } else { 0 };
                    let y = top + row as i32 * line_height;
                    let style = ShapeStyle { color: s.color.to_rgba(), filled: false, stroke_width: if s.stroke == Stroke::Medium { 2 } else { 3 } };
                    if s.dashed {
                        strip.draw(&plotters::element::DashedPathElement::new(vec![(x + 4, y), (x + 34, y)], 7, 4, style)).map_err(err)?;
                    } else {
                        strip.draw(&PathElement::new(vec![(x + 4, y), (x + 34, y)], style)).map_err(err)?;
                    }
                    strip.draw(&Text::new(s.name.clone(), (x + 40, y - text as i32 / 2), (FONT, text).into_font())).map_err(err)?;
                }
            }
            root.present().map_err(err)?;
        }
        Ok(svg)
    }
}

/// A text's width in ems: about 0.6 a character, 1 for CJK.
fn ems(s: &str) -> f64 {
    s.chars().map(|c| if c.is_ascii() { 0.6 } else { 1.0 }).sum()
}

/// The title's lines: the whole title where it fits `width` pixels at font
/// size `size`, else split after its dash (`who — what`).
fn title_lines(title: &str, width: u32, size: u32) -> Vec<&str> {
    let fits = |s: &str| ems(s) * size as f64 <= width as f64 - 16.0;
    match title.split_once(" — ") {
        Some((who, what)) if !fits(title) => vec![&title[..who.len() + " —".len()], what],
        _ => vec![title],
    }
}

/// A tick of a linear axis with `decimals` decimals, trailing zeros dropped
/// and no "-0".
fn tick(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
    if s == "-0" { "0".to_string() } else { s.to_string() }
}

/// A tick of a log10 axis as the value it stands for.
fn format_log(v: f64) -> String {
    let x = 10f64.powf(v);
    if x >= 1.0 {
        format!("{x:.0}")
    } else if x >= 0.01 {
        format!("{x:.2}")
    } else {
        format!("{x:.0e}")
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

/// One row of a [`SeedsChart`]: a function's value on each seed.
pub struct SeedRow {
    pub label: String,
    /// (value, learned): a filled dot for a seed that learned, a hollow one for one that did not.
    pub points: Vec<(f64, bool)>,
    pub color: RGBColor,
}

/// A labelled vertical line (relu's level, chance).
pub struct Reference {
    pub label: String,
    pub at: f64,
    pub color: RGBColor,
}

impl Reference {
    /// Chance accuracy, grey: every accuracy chart is read against it.
    pub fn chance(m: &Messages) -> Reference {
        Reference { label: fill(&m.answer_reference_chance, &[("value", &CHANCE_ACCURACY.to_string())]), at: CHANCE_ACCURACY, color: REFERENCE_GREY }
    }

    /// `function`'s mean over `values` (its seeds that learned), labelled
    /// with it; None without any.
    pub fn mean_level(m: &Messages, function: Activation, values: &[f64], color: RGBColor) -> Option<Reference> {
        if values.is_empty() {
            return None;
        }
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        Some(Reference { label: fill(&m.answer_reference_baseline, &[("function", function.name()), ("value", &format!("{mean:.3}"))]), at: mean, color })
    }
}

/// Every seed's value, one row per function, labelled on the left, with
/// reference lines: nothing is averaged, so seeds that split show as such.
pub struct SeedsChart {
    pub title: String,
    pub x_label: String,
    pub rows: Vec<SeedRow>,
    pub references: Vec<Reference>,
    pub x_range: (f64, f64),
}

impl SeedsChart {
    pub fn render(&self) -> Result<String> {
        // As wide as an overlay, so the same text.
        let text = WIDE_TEXT;
        let label_width = self.rows.iter().map(|r| r.label.chars().count()).max().unwrap_or(4) as u32 * text * 6 / 10 + 16;
        let height = 110 + 34 * self.rows.len() as u32 + 26 * self.references.len() as u32;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDE.0, height)).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let (plot, strip) = root.split_vertically(height as i32 - 26 * self.references.len() as i32 - 6);
            let n = self.rows.len();
            let labels: Vec<String> = self.rows.iter().map(|r| r.label.clone()).collect();
            let mut chart = ChartBuilder::on(&plot)
                .caption(&self.title, (FONT, text + 1))
                .margin(10)
                .x_label_area_size(2 * text + 12)
                .y_label_area_size(label_width)
                .build_cartesian_2d(self.x_range.0..self.x_range.1, -0.5..(n as f64 - 0.5))
                .map_err(err)?;
            let y_fmt = |v: &f64| {
                let i = v.round();
                if (v - i).abs() < 1e-9 && i >= 0.0 && (i as usize) < n { labels[n - 1 - i as usize].clone() } else { String::new() }
            };
            chart
                .configure_mesh()
                .x_desc(&self.x_label)
                .label_style((FONT, text))
                .axis_desc_style((FONT, text))
                .light_line_style(RGBColor(235, 235, 235))
                .y_labels(2 * n + 1)
                .y_label_formatter(&y_fmt)
                // As many x ticks as fit beside the row labels (about 2.5 em each), never run together.
                .x_labels(((WIDE.0.saturating_sub(label_width + 20)) / (text * 5 / 2)).clamp(3, 11) as usize)
                .x_label_formatter(&|v: &f64| if self.x_range.1 - self.x_range.0 > 10.0 { format!("{v:.0}") } else { format!("{v:.1}") })
                .disable_y_mesh()
                .draw()
                .map_err(err)?;
            for r in &self.references {
                let style = ShapeStyle { color: r.color.to_rgba(), filled: false, stroke_width: 2 };
                chart.draw_series(DashedLineSeries::new(vec![(r.at, -0.5), (r.at, n as f64 - 0.5)], 8, 5, style)).map_err(err)?;
            }
            for (i, r) in self.rows.iter().enumerate() {
                let y = (n - 1 - i) as f64;
                let k = r.points.len();
                for (j, (v, learned)) in r.points.iter().enumerate() {
                    // Seeds side by side within the row, so equal values stay visible.
                    let dy = if k > 1 { (j as f64 / (k - 1) as f64 - 0.5) * 0.4 } else { 0.0 };
                    let style = ShapeStyle { color: r.color.to_rgba(), filled: *learned, stroke_width: 2 };
                    chart.draw_series(std::iter::once(Circle::new((v.clamp(self.x_range.0, self.x_range.1), y + dy), 6, style))).map_err(err)?;
                }
            }
            for (i, r) in self.references.iter().enumerate() {
                let y = 12 + i as i32 * 26;
                let style = ShapeStyle { color: r.color.to_rgba(), filled: false, stroke_width: 2 };
                strip.draw(&plotters::element::DashedPathElement::new(vec![(label_width as i32 + 4, y), (label_width as i32 + 34, y)], 7, 4, style)).map_err(err)?;
                strip.draw(&Text::new(r.label.clone(), (label_width as i32 + 40, y - text as i32 / 2), (FONT, text).into_font())).map_err(err)?;
            }
            root.present().map_err(err)?;
        }
        Ok(svg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The narrowest a chart is shown at, and the smallest its text may then be.
    const PHONE_COLUMN: u32 = 320;
    const MIN_TEXT_ON_SCREEN: f64 = 11.0;

    /// A title wider than its chart goes on two lines, split after the dash.
    #[test]
    fn a_long_title_is_split_at_its_dash() {
        assert_eq!(title_lines("relu — Sparsity", SIZE.0, TEXT + 1), ["relu — Sparsity"]);
        let long = "softplus_linear seed 5 (did not learn) — Pre-activation mean";
        assert_eq!(title_lines(long, SIZE.0, TEXT + 1), ["softplus_linear seed 5 (did not learn) —", "Pre-activation mean"]);
        assert_eq!(title_lines("a very long title without any dash in it at all, none", SIZE.0, TEXT + 1).len(), 1);
    }

    /// Ticks of a tiny range differ; none reads "-0".
    #[test]
    fn ticks_keep_the_decimals_their_range_needs() {
        assert_eq!([tick(0.0001, 4), tick(0.0002, 4), tick(-0.00001, 4), tick(0.5, 2), tick(10.0, 2)], ["0.0001", "0.0002", "0", "0.5", "10"]);
    }

    #[test]
    fn chart_text_stays_readable_at_a_phone_column() {
        for (width, text) in [(SIZE.0, TEXT), (WIDE.0, WIDE_TEXT)] {
            let shown = text as f64 * PHONE_COLUMN.min(width) as f64 / width as f64;
            assert!(shown >= MIN_TEXT_ON_SCREEN, "{text} px text on a {width} px chart shows at {shown:.1} px in a {PHONE_COLUMN} px column");
        }
    }
}
