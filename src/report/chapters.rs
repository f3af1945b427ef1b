//! The Markdown of each study's chapters, mirroring the article's sections
//! (目的, 条件, 結果の予想, 結果, 考察) and then going past them. Every number
//! comes from the artifacts; every judgement from a stated rule.

use super::artifacts::{self, StudyData};
use super::messages::{fill, Messages};
use super::factorial;
use super::charts::{Band, LineChart, Series, PALETTE};
use super::stats::{self, describe, verdict, welch_diff, Describe};
use crate::activation::{kernels::curve, Activation};
use crate::io::write_atomic;
use crate::nn::arch::ACTIVATED;
use crate::train::config::Protocol;
use crate::study::spec::{Direction, Metric};
use crate::study::state::RunState;
use anyhow::Result;
use std::fmt::Write as _;
use std::path::Path;

/// Diagnostics drawn in the book: (column, its title, what it shows).
fn diagnostics(m: &Messages) -> [(&'static str, &str, &str); 6] {
    [
        ("pre_mean", &m.diag_pre_mean, &m.diag_pre_mean_what),
        ("post_mean", &m.diag_post_mean, &m.diag_post_mean_what),
        ("sparsity", &m.diag_sparsity, &m.diag_sparsity_what),
        ("zero_slope", &m.diag_zero_slope, &m.diag_zero_slope_what),
        ("dead_units", &m.diag_dead_units, &m.diag_dead_units_what),
        ("grad_in_mean_abs", &m.diag_grad, &m.diag_grad_what),
    ]
}

pub fn verdict_label(m: &Messages, v: stats::Verdict) -> &str {
    match v {
        stats::Verdict::Supported => &m.verdict_supported,
        stats::Verdict::Contradicted => &m.verdict_contradicted,
        stats::Verdict::Inconclusive => &m.verdict_inconclusive,
    }
}

/// A run's state in words.
pub fn state_text(m: &Messages, state: &RunState) -> String {
    match state {
        RunState::Missing => m.state_missing.clone(),
        RunState::Partial(k) => fill(&m.state_partial, &[("epoch", &k.to_string())]),
        RunState::Running(who) => fill(&m.state_running, &[("who", who)]),
        RunState::Finished(_) => m.state_done.clone(),
        RunState::Diverged(_, e) => fill(&m.state_diverged, &[("epoch", &e.to_string())]),
        RunState::Corrupt(why) => fill(&m.state_corrupt, &[("why", why)]),
    }
}

/// A run's state, or why its artifacts are not used.
pub fn run_text(m: &Messages, run: &artifacts::Run) -> String {
    match &run.problem {
        Some(p) => fill(&m.state_unusable, &[("why", p)]),
        None => state_text(m, &run.state),
    }
}

/// The activated layers, as named in diagnostics.csv.
pub const LAYERS: [&str; ACTIVATED.len()] = {
    let mut out = [""; ACTIVATED.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = ACTIVATED[i].name;
        i += 1;
    }
    out
};

/// Per-function measures over seeds, from the per-run table.
pub struct FunctionSummary {
    pub activation: Activation,
    pub runs_total: usize,
    pub runs_usable: usize,
    pub best: Describe,
    pub best_epoch: Describe,
    pub final_acc: Describe,
    pub gap: Describe,
    pub final_loss: Describe,
    pub wall_seconds: Describe,
    pub first_val_accuracy: Describe,
    /// Per-seed values, for verdicts.
    pub best_values: Vec<f64>,
    pub final_values: Vec<f64>,
    pub gap_values: Vec<f64>,
}

impl FunctionSummary {
    pub fn metric(&self, m: Metric) -> &[f64] {
        match m {
            Metric::BestValAccuracy => &self.best_values,
            Metric::FinalValAccuracy => &self.final_values,
            Metric::OverfitGap => &self.gap_values,
        }
    }
}

pub fn summarise(data: &StudyData) -> Result<Vec<FunctionSummary>> {
    let runs = artifacts::per_run(&data.histories)?;
    let mut out = Vec::new();
    for f in &data.study.functions {
        let a = f.activation;
        let mine: Vec<_> = data.runs.iter().filter(|r| r.activation == a).collect();
        let wall: Vec<f64> = mine.iter().filter(|r| r.usable()).filter_map(|r| r.record()).map(|r| r.wall_seconds).collect();
        let first: Vec<f64> = mine
            .iter()
            .filter(|r| r.usable())
            .filter_map(|r| artifacts::run_values(&data.histories, a, r.seed, "val_accuracy").ok().and_then(|v| v.first().copied()))
            .collect();
        let best_values = artifacts::values(&runs, a, "best_val_accuracy")?;
        let final_values = artifacts::values(&runs, a, "final_val_accuracy")?;
        let gap_values = artifacts::values(&runs, a, "overfit_gap")?;
        out.push(FunctionSummary {
            activation: a,
            runs_total: mine.len(),
            runs_usable: mine.iter().filter(|r| r.usable()).count(),
            best: describe(&best_values),
            best_epoch: describe(&artifacts::values(&runs, a, "best_epoch")?),
            final_acc: describe(&final_values),
            gap: describe(&gap_values),
            final_loss: describe(&artifacts::values(&runs, a, "final_val_loss")?),
            wall_seconds: describe(&wall),
            first_val_accuracy: describe(&first),
            best_values,
            final_values,
            gap_values,
        });
    }
    Ok(out)
}

fn num(v: f64) -> String {
    if v.is_finite() { format!("{v:.4}") } else { "–".into() }
}

fn mean_sd(d: &Describe) -> String {
    match d.n {
        0 => "–".into(),
        1 => num(d.mean),
        _ => format!("{} ± {}", num(d.mean), num(d.sd)),
    }
}

fn ci(d: &Describe) -> String {
    if d.n < 2 { "–".into() } else { format!("[{}, {}]", num(d.ci_low), num(d.ci_high)) }
}

/// The protocol of these runs, when it is a reduction of the study's own.
pub fn reduced_protocol(data: &StudyData) -> Option<&Protocol> {
    (data.protocol != data.study.protocol).then_some(&data.protocol)
}

/// The "reduced protocol" warning, when the runs used one.
pub fn protocol_note(m: &Messages, data: &StudyData) -> Option<String> {
    let c = reduced_protocol(data)?;
    Some(fill(
        &m.reduced_protocol,
        &[
            ("epochs", &c.epochs.to_string()),
            ("train", &c.train_limit.map_or(m.all_train.clone(), |n| n.to_string())),
            ("test", &c.test_limit.map_or(m.all_test.clone(), |n| n.to_string())),
            ("full", &data.study.protocol.epochs.to_string()),
            ("study", &data.study.name),
        ],
    ))
}

pub fn formula(a: Activation) -> String {
    let text = match a {
        Activation::Custom(_) => {
            let d = a.definition().unwrap();
            return match d.grad {
                Some(g) => format!("`{}`, slope `{g}`", d.expr),
                None => format!("`{}`", d.expr),
            };
        }
        Activation::Relu => "max(x, 0)",
        Activation::Tanh => "tanh(x)",
        Activation::SignedSqrt => "sign(x)·√|x|",
        Activation::SoftplusLinear => "2·softplus(x) for x ≤ 0; x + 2·ln 2 for x > 0",
        Activation::ReflectionLinear => "−x for x ≤ 0; x for x > 0",
        Activation::ZeroFitLinear => "x − min(x) over the layer (per sample and channel after a conv, per sample after dense)",
    };
    text.to_string()
}

fn claim_text(m: &Messages, metric: Metric, expect: Direction, than: Activation) -> String {
    let metric = match metric {
        Metric::BestValAccuracy => &m.metric_best,
        Metric::FinalValAccuracy => &m.metric_final,
        Metric::OverfitGap => &m.metric_gap,
    };
    let template = match expect {
        Direction::Higher => &m.expect_higher,
        Direction::Lower => &m.expect_lower,
        Direction::Similar => &m.expect_similar,
    };
    fill(template, &[("metric", metric), ("than", than.name())])
}

/// Writes every chart and page of one study under `dir` (book/src/generated/<study>).
pub struct StudyPages<'a> {
    pub m: &'a Messages,
    pub data: &'a StudyData,
    pub summary: Vec<FunctionSummary>,
    pub dir: &'a Path,
    /// [`artifacts::curves`] of the histories.
    curves: polars::prelude::DataFrame,
    /// [`artifacts::diagnostics_mean`] of the diagnostics.
    diag: polars::prelude::DataFrame,
}

impl<'a> StudyPages<'a> {
    pub fn new(m: &'a Messages, data: &'a StudyData, dir: &'a Path) -> Result<StudyPages<'a>> {
        Ok(StudyPages {
            m,
            summary: summarise(data)?,
            curves: artifacts::curves(&data.histories)?,
            diag: artifacts::diagnostics_mean(&data.diagnostics)?,
            data,
            dir,
        })
    }

    fn svg(&self, name: &str, chart: &LineChart) -> Result<String> {
        write_atomic(&self.dir.join("img").join(name), chart.render()?.as_bytes())?;
        Ok(format!("img/{name}"))
    }

    fn acts(&self) -> Vec<Activation> {
        self.data.study.functions.iter().map(|f| f.activation).collect()
    }

    fn function_chart(&self, a: Activation) -> Result<String> {
        let xs: Vec<f32> = (0..=240).map(|i| -3.0 + i as f32 * 0.025).collect();
        // zero_fit's position depends on the layer's minimum; drawn for min = −3.
        let pts = curve(a, &xs, if a.uses_min() { -3.0 } else { 0.0 });
        let m = self.m;
        let mut c = LineChart::new(a.name(), "x", &m.chart_function_axis);
        c.size = (300, 240);
        let x: Vec<f64> = pts.iter().map(|p| p.0 as f64).collect();
        c.series.push(Series { name: m.legend_f.clone(), xs: x.clone(), ys: pts.iter().map(|p| p.1 as f64).collect(), color: PALETTE[0], thick: true, legend: true });
        c.series.push(Series { name: m.legend_df.clone(), xs: x, ys: pts.iter().map(|p| p.2 as f64).collect(), color: PALETTE[1], thick: true, legend: true });
        c.y_range = Some((-3.2, 6.2));
        self.svg(&format!("fn-{}.svg", a.name()), &c)
    }

    /// Per-seed thin lines and the mean over seeds, train and val.
    fn history_chart(&self, a: Activation, metric: &str, y_range: Option<(f64, f64)>) -> Result<String> {
        let h = &self.data.histories;
        let mut c = LineChart::new(&format!("{} — {metric}", a.name()), &self.m.axis_epoch, metric);
        c.y_range = y_range;
        for (k, m) in [metric.to_string(), format!("val_{metric}")].iter().enumerate() {
            for r in self.data.runs.iter().filter(|r| r.activation == a && r.usable()) {
                let ys = artifacts::run_values(h, a, r.seed, m)?;
                let xs = (1..=ys.len()).map(|e| e as f64).collect();
                c.series.push(Series { name: m.clone(), xs, ys, color: PALETTE[k], thick: false, legend: false });
            }
            let ys = artifacts::values(&self.curves, a, &format!("{m}_mean"))?;
            let xs = (1..=ys.len()).map(|e| e as f64).collect();
            c.series.push(Series { name: m.clone(), xs, ys, color: PALETTE[k], thick: true, legend: true });
        }
        self.svg(&format!("{metric}-{}.svg", a.name()), &c)
    }

    fn overlay(&self, metric: &str) -> Result<String> {
        let curves = &self.curves;
        let mut c = LineChart::new(&fill(&self.m.overlay_title, &[("metric", metric)]), &self.m.axis_epoch, metric);
        c.size = (640, 380);
        for (i, a) in self.acts().into_iter().enumerate() {
            let mean = artifacts::values(&curves, a, &format!("{metric}_mean"))?;
            let xs: Vec<f64> = (1..=mean.len()).map(|e| e as f64).collect();
            c.bands.push(Band { xs: xs.clone(), lo: artifacts::values(&curves, a, &format!("{metric}_min"))?, hi: artifacts::values(&curves, a, &format!("{metric}_max"))?, color: PALETTE[i % 8] });
            c.series.push(Series { name: a.name().into(), xs, ys: mean, color: PALETTE[i % 8], thick: true, legend: true });
        }
        self.svg(&format!("overlay-{metric}.svg"), &c)
    }

    fn diagnostic_chart(&self, a: Activation, metric: &str, title: &str) -> Result<String> {
        let d = &self.diag;
        let mut c = LineChart::new(&format!("{} — {title}", a.name()), &self.m.axis_epoch, metric);
        c.size = (320, 240);
        for (i, layer) in LAYERS.iter().enumerate() {
            let ys = artifacts::layer_values(&d, a, layer, metric)?;
            let xs = (1..=ys.len()).map(|e| e as f64).collect();
            c.series.push(Series { name: layer.to_string(), xs, ys, color: PALETTE[i], thick: true, legend: true });
        }
        self.svg(&format!("diag-{metric}-{}.svg", a.name()), &c)
    }

    /// Copy each seed's history.csv for download; returns Markdown links.
    fn csv_links(&self, a: Activation) -> Result<String> {
        let mut links = Vec::new();
        for r in self.data.runs.iter().filter(|r| r.activation == a) {
            if r.usable() {
                let name = format!("{}-seed-{}.csv", a.name(), r.seed);
                write_atomic(&self.dir.join("csv").join(&name), &std::fs::read(r.dir.join("history.csv"))?)?;
                links.push(format!("[{}](csv/{name})", fill(&self.m.seed_link, &[("seed", &r.seed.to_string())])));
            } else {
                links.push(fill(&self.m.seed_state, &[("seed", &r.seed.to_string()), ("state", &run_text(self.m, r))]));
            }
        }
        Ok(links.join("<br>"))
    }

    pub fn purpose(&self) -> Result<String> {
        let (s, m) = (&self.data.study, self.m);
        let mut p = format!("# {}\n\n## {}\n\n{}\n\n## {}\n\n", s.title, m.title_purpose, s.description.trim(), m.title_conditions);
        if let Some(n) = protocol_note(m, self.data) {
            let _ = writeln!(p, "> {n}\n");
        }
        let ds = self.data.runs.iter().find_map(|r| r.record()).map(|r| r.dataset.clone());
        let seeds = s.seeds.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ");
        let dataset = ds.as_ref().map_or(m.no_runs_yet.clone(), |d| fill(&m.dataset_detail, &[("name", &d.dataset), ("source", &d.source_sha256), ("tensors", &d.tensors_sha256)]));
        let optimizer = fill(&m.optimizer_detail, &[("lr", &s.protocol.adam.learning_rate.to_string()), ("b1", &s.protocol.adam.beta1.to_string()), ("b2", &s.protocol.adam.beta2.to_string()), ("eps", &s.protocol.adam.epsilon.to_string())]);
        let _ = writeln!(p, "{}\n\n```text\n{}\n```\n", m.network_intro, crate::nn::arch::describe());
        let rows = [
            (&m.row_epochs, s.protocol.epochs.to_string()),
            (&m.row_batch, fill(&m.batch_detail, &[("batch", &s.protocol.batch_size.to_string())])),
            (&m.row_optimizer, optimizer),
            (&m.row_init, m.init_detail.clone()),
            (&m.row_loss, m.loss_detail.clone()),
            (&m.row_inputs, m.inputs_detail.clone()),
            (&m.row_seeds, seeds),
            (&m.row_dataset, dataset),
        ];
        p.push_str("| | |\n|---|---|\n");
        for (k, v) in rows {
            let _ = writeln!(p, "| {k} | {v} |");
        }
        let _ = writeln!(p, "\n### {}\n\n| {} | {} | {} |\n|---|---|---|", m.title_functions, m.col_function, m.col_definition, m.col_graph);
        for a in self.acts() {
            let img = self.function_chart(a)?;
            let _ = writeln!(p, "| `{}` | {} | ![{}]({img}) |", a.name(), formula(a), a.name());
        }
        if self.acts().iter().any(|a| a.uses_min()) {
            let _ = writeln!(p, "\n{}", m.zero_fit_graph_note);
        }
        Ok(p)
    }

    pub fn predictions(&self) -> String {
        let m = self.m;
        let mut p = format!("# {}\n\n{}\n\n", m.title_predictions, m.predictions_intro);
        for f in &self.data.study.functions {
            let _ = writeln!(p, "- **{}**: {}", f.activation, f.prediction.as_deref().unwrap_or(&m.no_prediction));
            for c in &f.claims {
                let _ = writeln!(p, "  - {}", fill(&m.checked_as, &[("claim", &claim_text(m, c.metric, c.expect, c.than))]));
            }
        }
        p
    }

    pub fn results(&self) -> Result<String> {
        let (acts, m) = (self.acts(), self.m);
        let mut p = format!("# {}\n\n", m.title_results);
        if let Some(n) = protocol_note(m, self.data) {
            let _ = writeln!(p, "> {n}\n");
        }
        // A designed study answers its question first.
        if let Some(d) = &self.data.study.design {
            let diag = |a: Activation, layer: &str, col: &str| artifacts::layer_values(&self.diag, a, layer, col).ok().filter(|v| !v.is_empty());
            p.push_str(&factorial::section(m, d, &self.summary, &diag));
            let _ = writeln!(p, "## {}\n", m.title_article_table);
        }
        // The article's table: one column per function.
        let head: Vec<String> = self
            .summary
            .iter()
            .map(|s| fill(&m.runs_of, &[("function", s.activation.name()), ("usable", &s.runs_usable.to_string()), ("total", &s.runs_total.to_string())]))
            .collect();
        let _ = writeln!(p, "| | {} |\n|---|{}", head.join(" | "), "---|".repeat(acts.len()));
        let max_loss = self.loss_ceiling()?;
        let mut rows = [&m.row_function, &m.row_accuracy, &m.row_loss_curves, &m.row_csv].map(|t| format!("| {t} |"));
        for a in &acts {
            let _ = write!(rows[0], " ![{a}](img/fn-{a}.svg) |");
            let acc = self.history_chart(*a, "accuracy", Some((0.0, 1.0)))?;
            let loss = self.history_chart(*a, "loss", Some((0.0, max_loss)))?;
            let _ = write!(rows[1], " ![{a} accuracy]({acc}) |");
            let _ = write!(rows[2], " ![{a} loss]({loss}) |");
            let _ = write!(rows[3], " {} |", self.csv_links(*a)?);
        }
        for r in rows {
            let _ = writeln!(p, "{r}");
        }
        let _ = writeln!(p, "\n{}\n\n## {}\n", m.curves_caption, m.title_summary);
        let _ = writeln!(
            p,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n|---|---|---|---|---|---|---|---|---|",
            m.col_function, m.col_runs, m.col_best, m.col_ci, m.col_best_epoch, m.col_final_acc, m.col_gap, m.col_final_loss, m.col_wall
        );
        for s in &self.summary {
            let _ = writeln!(
                p,
                "| {} | {}/{} | {} | {} | {} | {} | {} | {} | {} |",
                s.activation,
                s.runs_usable,
                s.runs_total,
                mean_sd(&s.best),
                ci(&s.best),
                if s.best_epoch.n > 0 { format!("{:.1}", s.best_epoch.mean) } else { "–".into() },
                mean_sd(&s.final_acc),
                mean_sd(&s.gap),
                mean_sd(&s.final_loss),
                if s.wall_seconds.n > 0 { format!("{:.0}", s.wall_seconds.mean) } else { "–".into() },
            );
        }
        let _ = writeln!(p, "\n{}\n", m.ci_note);

        let incomplete: Vec<_> = self.data.runs.iter().filter(|r| !r.usable()).collect();
        if !incomplete.is_empty() {
            let _ = writeln!(p, "### {}\n\n| {} | {} | {} |\n|---|---|---|", m.title_not_included, m.col_function, m.col_seed, m.col_state);
            for r in incomplete {
                let _ = writeln!(p, "| {} | {} | {} |", r.activation, r.seed, run_text(m, r));
            }
            p.push('\n');
        }

        let _ = writeln!(p, "## {}\n", m.title_overlays);
        for metric in ["val_accuracy", "val_loss", "accuracy"] {
            let img = self.overlay(metric)?;
            let _ = writeln!(p, "![{metric}]({img})\n");
        }

        let _ = writeln!(p, "## {}\n\n{}\n", m.title_diagnostics, m.diagnostics_intro);
        let _ = writeln!(p, "| | {} |\n|---|{}", acts.iter().map(|a| a.name()).collect::<Vec<_>>().join(" | "), "---|".repeat(acts.len()));
        for (metric, title, what) in diagnostics(m) {
            let mut row = format!("| **{title}**<br>{what} |");
            for a in &acts {
                let img = self.diagnostic_chart(*a, metric, title)?;
                let _ = write!(row, " ![{a} {metric}]({img}) |");
            }
            let _ = writeln!(p, "{row}");
        }
        Ok(p)
    }

    /// A shared loss axis for all functions (the article gave softplus_linear a taller one).
    fn loss_ceiling(&self) -> Result<f64> {
        let curves = &self.curves;
        let mut hi: f64 = 2.5;
        for a in self.acts() {
            for m in ["loss_max", "val_loss_max"] {
                for v in artifacts::values(&curves, a, m)? {
                    if v.is_finite() {
                        hi = hi.max(v);
                    }
                }
            }
        }
        Ok((hi * 1.05).min(8.0))
    }

    pub fn verdicts(&self) -> String {
        let m = self.m;
        let mut p = format!("# {}\n\n{}\n\n", m.title_verdicts, fill(&m.verdicts_intro, &[("margin", &stats::SIMILAR_MARGIN.to_string())]));
        if let Some(n) = protocol_note(m, self.data) {
            let _ = writeln!(p, "> {n}\n");
        }
        if let Some(d) = &self.data.study.design {
            let _ = writeln!(p, "{}\n", factorial::verdict_sentence(m, d, &self.summary));
        }
        let _ = writeln!(p, "| {} | {} | {} | {} | {} | {} |\n|---|---|---|---|---|---|", m.col_function, m.col_prediction, m.col_claim, m.col_difference, m.col_interval, m.col_verdict);
        for f in &self.data.study.functions {
            for c in &f.claims {
                let (Some(me), Some(base)) = (self.summary.iter().find(|s| s.activation == f.activation), self.summary.iter().find(|s| s.activation == c.than)) else { continue };
                let iv = welch_diff(me.metric(c.metric), base.metric(c.metric));
                let label = verdict_label(m, verdict(c.expect, iv));
                let (d, range) = match iv {
                    Some((d, lo, hi)) => (format!("{d:+.4}"), format!("[{lo:+.4}, {hi:+.4}]")),
                    None => ("–".into(), "–".into()),
                };
                let _ = writeln!(p, "| {} | {} | {} | {d} | {range} | **{label}** |", f.activation, f.prediction.as_deref().unwrap_or(""), claim_text(m, c.metric, c.expect, c.than));
            }
        }
        p
    }

    /// Statements drawn from the numbers, then the hand-written notes.
    pub fn discussion(&self, notes: Option<&str>) -> Result<String> {
        let m = self.m;
        let mut p = format!("# {}\n\n## {}\n\n", m.title_discussion, m.title_numbers);
        if let Some(n) = protocol_note(m, self.data) {
            let _ = writeln!(p, "> {n}\n");
        }
        let f3 = |v: f64| format!("{v:.3}");
        let mut ranked: Vec<&FunctionSummary> = self.summary.iter().filter(|s| s.best.n > 0).collect();
        ranked.sort_by(|a, b| b.best.mean.total_cmp(&a.best.mean));
        if ranked.is_empty() {
            let _ = writeln!(p, "{}", m.no_finished_runs);
        } else {
            let order: Vec<String> = ranked.iter().map(|s| format!("{} ({:.3})", s.activation, s.best.mean)).collect();
            let _ = writeln!(p, "- {}", fill(&m.best_function, &[("function", ranked[0].activation.name()), ("ranking", &order.join(" > "))]));
        }
        for s in &self.summary {
            let name = s.activation.name();
            if s.gap.n > 0 && s.gap.mean > 0.05 {
                let _ = writeln!(p, "- {}", fill(&m.overfits, &[("function", name), ("gap", &f3(s.gap.mean))]));
            } else if s.gap.n > 0 {
                let _ = writeln!(p, "- {}", fill(&m.little_overfitting, &[("function", name), ("gap", &f3(s.gap.mean))]));
            }
            if s.best_epoch.n > 0 && s.final_acc.n > 0 && s.best.mean - s.final_acc.mean > 0.01 {
                let _ = writeln!(p, "  {}", fill(&m.peaked, &[("epoch", &format!("{:.0}", s.best_epoch.mean)), ("drop", &f3(s.best.mean - s.final_acc.mean))]));
            }
        }
        let baseline = self.summary.iter().find(|s| s.activation == Activation::Relu);
        let d1 = &self.diag;
        for s in &self.summary {
            if s.first_val_accuracy.n == 0 {
                continue;
            }
            let slow = s.first_val_accuracy.mean < 0.2;
            let behind = baseline.is_some_and(|b| b.first_val_accuracy.n > 0 && s.activation != Activation::Relu && b.first_val_accuracy.mean - s.first_val_accuracy.mean > 0.1);
            if !(slow || behind) {
                continue;
            }
            let _ = write!(p, "- {}", fill(&m.starts_slowly, &[("function", s.activation.name()), ("value", &f3(s.first_val_accuracy.mean))]));
            if let Some(b) = baseline {
                p.push_str(&fill(&m.relu_at_start, &[("value", &f3(b.first_val_accuracy.mean))]));
            }
            p.push_str(&m.diagnostics_show);
            let mut facts = Vec::new();
            for layer in LAYERS {
                let first = |a: Activation, c: &str| artifacts::layer_values(&d1, a, layer, c).ok().and_then(|v| v.first().copied());
                if let (Some(v), Some(r)) = (first(s.activation, "post_mean"), first(Activation::Relu, "post_mean")) {
                    if (v - r).abs() > 0.5 {
                        facts.push(fill(&m.fact_mean_shift, &[("layer", layer), ("value", &format!("{v:.2}")), ("relu", &format!("{r:.2}"))]));
                    }
                }
                if let (Some(g), Some(r)) = (first(s.activation, "grad_in_mean_abs"), first(Activation::Relu, "grad_in_mean_abs")) {
                    if r > 0.0 && (g / r > 3.0 || g / r < 1.0 / 3.0) {
                        let ratio = g / r;
                        let ratio = if ratio < 0.1 { format!("{ratio:.1e}") } else { format!("{ratio:.1}") };
                        facts.push(fill(&m.fact_gradient, &[("layer", layer), ("ratio", &ratio)]));
                    }
                }
            }
            if facts.is_empty() {
                let _ = writeln!(p, "{}", m.no_large_difference);
            } else {
                let _ = writeln!(p, " {}.", facts.join("; "));
            }
        }
        for s in &self.summary {
            let last = |l: &str, c: &str| artifacts::layer_values(&d1, s.activation, l, c).ok().and_then(|v| v.last().copied());
            let dead: Vec<String> = LAYERS.iter().filter_map(|l| last(l, "dead_units").map(|v| (l, v))).filter(|(_, v)| *v > 0.05).map(|(l, v)| format!("{l} {:.0} %", v * 100.0)).collect();
            if !dead.is_empty() {
                let _ = writeln!(p, "- {}", fill(&m.dead_units_end, &[("function", s.activation.name()), ("layers", &dead.join(", "))]));
            }
            let sparse = LAYERS.iter().filter_map(|l| last(l, "sparsity")).fold(0.0f64, f64::max);
            if sparse > 0.3 {
                let _ = writeln!(p, "- {}", fill(&m.exact_zeros, &[("function", s.activation.name()), ("percent", &format!("{:.0}", sparse * 100.0))]));
            }
        }
        let _ = writeln!(p, "\n## {}\n", m.title_notes);
        match notes {
            Some(n) => p.push_str(n),
            None => p.push_str(&fill(&m.no_notes, &[("lang", &m.lang), ("study", &self.data.study.name)])),
        }
        Ok(p)
    }

    /// Runs that are not finished, for the reproducibility chapter.
    pub fn missing(&self) -> Vec<String> {
        self.data.runs.iter().filter(|r| !matches!(r.state, RunState::Finished(_))).map(|r| format!("{} seed {}: {}", r.activation, r.seed, state_text(self.m, &r.state))).collect()
    }
}
