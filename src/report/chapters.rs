//! The Markdown of each study's chapters, mirroring the article's sections
//! (目的, 条件, 結果の予想, 結果, 考察) and then going past them. Every number
//! comes from the artifacts; every judgement from a stated rule.

use super::artifacts::{self, StudyData};
use super::charts::{Band, LineChart, Series, PALETTE};
use super::stats::{self, describe, verdict, welch_diff, Describe};
use crate::activation::{kernels::curve, Activation};
use crate::io::write_atomic;
use crate::study::spec::{Direction, Metric};
use crate::study::state::RunState;
use anyhow::Result;
use std::fmt::Write as _;
use std::path::Path;

/// Diagnostics drawn in the book: (column, title, what it shows).
pub const DIAGNOSTICS: [(&str, &str, &str); 6] = [
    ("pre_mean", "Pre-activation mean", "mean shift entering the activation"),
    ("post_mean", "Post-activation mean", "mean shift passed to the next layer"),
    ("sparsity", "Sparsity", "fraction of outputs exactly 0"),
    ("zero_slope", "Zero slope", "fraction of inputs where f′ = 0"),
    ("dead_units", "Dead units", "units with f′ = 0 on the whole probe batch"),
    ("grad_in_mean_abs", "Gradient reaching the layer", "mean |∂loss/∂input|"),
];

const LAYERS: [&str; 5] = ["conv1", "conv2", "conv3", "conv4", "dense1"];

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

/// What protocol the runs actually used, compared with the study's.
pub fn protocol_note(data: &StudyData) -> Option<String> {
    let s = &data.study;
    let recs: Vec<_> = data.runs.iter().filter_map(|r| r.record()).collect();
    let c = &recs.first()?.config;
    let reduced = c.epochs != s.epochs || c.train_limit.is_some() || c.test_limit.is_some();
    reduced.then(|| {
        format!(
            "**Reduced protocol.** These runs used {} epochs on {} training images, evaluated on {} test images — \
             not the article's {} epochs on all 50,000 / 10,000. Numbers are indicative; run \
             `actlab study run {}` for the full protocol.",
            c.epochs,
            c.train_limit.map_or("all 50,000".to_string(), |n| format!("{n}")),
            c.test_limit.map_or("all 10,000".to_string(), |n| format!("{n}")),
            s.epochs,
            s.name
        )
    })
}

pub fn formula(a: Activation) -> &'static str {
    match a {
        Activation::Relu => "max(x, 0)",
        Activation::Tanh => "tanh(x)",
        Activation::SignedSqrt => "sign(x)·√|x|",
        Activation::SoftplusLinear => "2·softplus(x) for x ≤ 0; x + 2·ln 2 for x > 0",
        Activation::ReflectionLinear => "−x for x ≤ 0; x for x > 0",
        Activation::ZeroFitLinear => "x − min(x) over the layer (per sample and channel after a conv, per sample after dense)",
    }
}

fn claim_text(metric: Metric, expect: Direction, than: Activation) -> String {
    let m = match metric {
        Metric::BestValAccuracy => "best val_accuracy",
        Metric::FinalValAccuracy => "final val_accuracy",
        Metric::OverfitGap => "overfitting (final accuracy − val_accuracy)",
    };
    let e = match expect {
        Direction::Higher => "higher than",
        Direction::Lower => "lower than",
        Direction::Similar => "similar to",
    };
    format!("{m} {e} {than}")
}

/// Writes every chart and page of one study under `dir` (book/src/generated/<study>).
pub struct StudyPages<'a> {
    pub data: &'a StudyData,
    pub summary: Vec<FunctionSummary>,
    pub dir: &'a Path,
}

impl<'a> StudyPages<'a> {
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
        let mut c = LineChart::new(a.name(), "x", "f(x), f′(x)");
        c.size = (300, 240);
        let x: Vec<f64> = pts.iter().map(|p| p.0 as f64).collect();
        c.series.push(Series { name: "f(x)".into(), xs: x.clone(), ys: pts.iter().map(|p| p.1 as f64).collect(), color: PALETTE[0], thick: true, legend: true });
        c.series.push(Series { name: "f′(x)".into(), xs: x, ys: pts.iter().map(|p| p.2 as f64).collect(), color: PALETTE[1], thick: true, legend: true });
        c.y_range = Some((-3.2, 6.2));
        self.svg(&format!("fn-{}.svg", a.name()), &c)
    }

    /// Per-seed thin lines and the mean over seeds, train and val.
    fn history_chart(&self, a: Activation, metric: &str, y_range: Option<(f64, f64)>) -> Result<String> {
        let h = &self.data.histories;
        let mut c = LineChart::new(&format!("{} — {metric}", a.name()), "epoch", metric);
        c.y_range = y_range;
        for (k, m) in [metric.to_string(), format!("val_{metric}")].iter().enumerate() {
            for r in self.data.runs.iter().filter(|r| r.activation == a && r.usable()) {
                let ys = artifacts::run_values(h, a, r.seed, m)?;
                let xs = (1..=ys.len()).map(|e| e as f64).collect();
                c.series.push(Series { name: m.clone(), xs, ys, color: PALETTE[k], thick: false, legend: false });
            }
            let curves = artifacts::curves(h)?;
            let ys = artifacts::values(&curves, a, &format!("{m}_mean"))?;
            let xs = (1..=ys.len()).map(|e| e as f64).collect();
            c.series.push(Series { name: m.clone(), xs, ys, color: PALETTE[k], thick: true, legend: true });
        }
        self.svg(&format!("{metric}-{}.svg", a.name()), &c)
    }

    fn overlay(&self, metric: &str) -> Result<String> {
        let curves = artifacts::curves(&self.data.histories)?;
        let mut c = LineChart::new(&format!("{metric}: mean over seeds, band = min–max"), "epoch", metric);
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
        let d = artifacts::diagnostics_mean(&self.data.diagnostics)?;
        let mut c = LineChart::new(&format!("{} — {title}", a.name()), "epoch", metric);
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
                links.push(format!("[seed {}](csv/{name})", r.seed));
            } else {
                links.push(format!("seed {}: {}", r.seed, r.state.label()));
            }
        }
        Ok(links.join("<br>"))
    }

    pub fn purpose(&self) -> Result<String> {
        let s = &self.data.study;
        let mut p = format!("# {}\n\n## Purpose (目的)\n\n{}\n\n", s.title, s.description.trim());
        p.push_str("## Conditions (条件)\n\n");
        if let Some(n) = protocol_note(self.data) {
            let _ = writeln!(p, "> {n}\n");
        }
        let ds = self.data.runs.iter().find_map(|r| r.record()).map(|r| r.dataset.clone());
        let _ = writeln!(
            p,
            "The network is the article's Keras model, trained by actlab's own engine with Keras semantics:\n\n\
             ```text\nConv2D(32, 3×3, same) → act → Conv2D(32, 3×3, valid) → act → MaxPool 2×2 → Dropout 0.25\n\
             → Conv2D(64, 3×3, same) → act → Conv2D(64, 3×3, valid) → act → MaxPool 2×2 → Dropout 0.25\n\
             → Flatten → Dense(512) → act → Dropout 0.5 → Dense(10) → softmax\n```\n\n\
             | | |\n|---|---|\n| Epochs | {} |\n| Batch size | {} (last batch partial; reshuffled every epoch) |\n\
             | Optimizer | Adam, learning rate {}, β₁ {}, β₂ {}, ε {} (Keras form) |\n\
             | Initialisation | Glorot-uniform kernels, zero biases |\n| Loss | categorical cross-entropy on softmax |\n\
             | Inputs | pixels / 255 |\n| Seeds | {} |\n| Dataset | {} |\n",
            s.epochs,
            s.batch_size,
            s.adam.learning_rate,
            s.adam.beta1,
            s.adam.beta2,
            s.adam.epsilon,
            s.seeds.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", "),
            ds.as_ref().map_or("no runs yet".to_string(), |d| format!("{} — source sha256 `{}`, decoded tensors sha256 `{}`", d.dataset, d.source_sha256, d.tensors_sha256)),
        );
        p.push_str("### The functions\n\n| function | definition | graph (f and f′) |\n|---|---|---|\n");
        for a in self.acts() {
            let img = self.function_chart(a)?;
            let _ = writeln!(p, "| `{}` | {} | ![{} and its derivative]({img}) |", a.name(), formula(a), a.name());
        }
        if self.acts().iter().any(|a| a.uses_min()) {
            p.push_str("\nThe `zero_fit_linear` graph is only indicative: its position moves with every input (drawn for a layer minimum of −3).\n");
        }
        Ok(p)
    }

    pub fn predictions(&self) -> String {
        let mut p = String::from("# Predictions (結果の予想)\n\nWritten before the runs, as in the article.\n\n");
        for f in &self.data.study.functions {
            let _ = writeln!(p, "- **{}**: {}", f.activation, f.prediction.as_deref().unwrap_or("(no prediction)"));
            for c in &f.claims {
                let _ = writeln!(p, "  - checked as: {}", claim_text(c.metric, c.expect, c.than));
            }
        }
        p
    }

    pub fn results(&self) -> Result<String> {
        let acts = self.acts();
        let mut p = String::from("# Results (結果)\n\n");
        if let Some(n) = protocol_note(self.data) {
            let _ = writeln!(p, "> {n}\n");
        }
        // The article's table: one column per function.
        let head: Vec<String> = self.summary.iter().map(|s| format!("{} ({}/{} runs)", s.activation, s.runs_usable, s.runs_total)).collect();
        let _ = writeln!(p, "| | {} |\n|---|{}", head.join(" | "), "---|".repeat(acts.len()));
        let max_loss = self.loss_ceiling()?;
        let mut rows = vec![String::from("| function |"), String::from("| accuracy |"), String::from("| loss |"), String::from("| CSV |")];
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
        p.push_str("\nThin lines: single seeds; thick: the mean over seeds. Blue: training, orange: validation (the test set, as in the article).\n\n");

        p.push_str("## Summary over seeds\n\n");
        p.push_str("| function | runs | best val_accuracy (mean ± sd) | 95 % CI | epoch of best | final val_accuracy | final train − val accuracy | final val_loss | wall time per run (s) |\n|---|---|---|---|---|---|---|---|---|\n");
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
        p.push_str("\nThe 95 % confidence interval uses Student's t with n − 1 degrees of freedom over the seeds.\n\n");

        let incomplete: Vec<_> = self.data.runs.iter().filter(|r| !r.usable()).collect();
        if !incomplete.is_empty() {
            p.push_str("### Runs not included\n\n| function | seed | state |\n|---|---|---|\n");
            for r in incomplete {
                let _ = writeln!(p, "| {} | {} | {} |", r.activation, r.seed, r.problem.clone().unwrap_or_else(|| r.state.label()));
            }
            p.push('\n');
        }

        p.push_str("## All functions on one chart\n\n");
        for m in ["val_accuracy", "val_loss", "accuracy"] {
            let img = self.overlay(m)?;
            let _ = writeln!(p, "![{m} of every function]({img})\n");
        }

        p.push_str("## Diagnostics: why\n\nStatistics of each activated layer on a fixed probe batch of 256 test images after every epoch (inference mode), averaged over seeds; one line per layer. Definitions are in `src/train/diagnostics.rs`.\n\n");
        let _ = writeln!(p, "| | {} |\n|---|{}", acts.iter().map(|a| a.name()).collect::<Vec<_>>().join(" | "), "---|".repeat(acts.len()));
        for (metric, title, what) in DIAGNOSTICS {
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
        let curves = artifacts::curves(&self.data.histories)?;
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
        let mut p = String::from("# Verdicts\n\nEach prediction's checkable parts, against the measurements. ");
        let _ = writeln!(
            p,
            "The rule: take the 95 % Welch interval of the difference (function − baseline) over seeds. \
             *higher* is supported when the whole interval is above 0 and contradicted when it is below; *lower* mirrors it; \
             *similar* is supported when the interval lies within ±{m} and contradicted when it lies wholly outside. \
             Anything else — or fewer than two finished seeds on either side — is inconclusive.\n",
            m = stats::SIMILAR_MARGIN
        );
        if let Some(n) = protocol_note(self.data) {
            let _ = writeln!(p, "> {n}\n");
        }
        p.push_str("| function | prediction | claim | difference (mean) | 95 % interval | verdict |\n|---|---|---|---|---|---|\n");
        for f in &self.data.study.functions {
            for c in &f.claims {
                let (Some(me), Some(base)) = (self.summary.iter().find(|s| s.activation == f.activation), self.summary.iter().find(|s| s.activation == c.than)) else { continue };
                let iv = welch_diff(me.metric(c.metric), base.metric(c.metric));
                let v = verdict(c.expect, iv);
                let (d, range) = match iv {
                    Some((d, lo, hi)) => (format!("{d:+.4}"), format!("[{lo:+.4}, {hi:+.4}]")),
                    None => ("–".into(), "–".into()),
                };
                let _ = writeln!(p, "| {} | {} | {} | {d} | {range} | **{}** |", f.activation, f.prediction.as_deref().unwrap_or(""), claim_text(c.metric, c.expect, c.than), v.label());
            }
        }
        p
    }

    /// Statements drawn from the numbers, then the hand-written notes.
    pub fn discussion(&self, notes: Option<&str>) -> Result<String> {
        let mut p = String::from("# Discussion (考察)\n\n## What the numbers say\n\n");
        if let Some(n) = protocol_note(self.data) {
            let _ = writeln!(p, "> {n}\n");
        }
        let mut ranked: Vec<&FunctionSummary> = self.summary.iter().filter(|s| s.best.n > 0).collect();
        ranked.sort_by(|a, b| b.best.mean.total_cmp(&a.best.mean));
        if ranked.is_empty() {
            p.push_str("No finished runs yet.\n");
        } else {
            let order: Vec<String> = ranked.iter().map(|s| format!("{} ({:.3})", s.activation, s.best.mean)).collect();
            let _ = writeln!(p, "- **Best function**: {} reached the highest mean best val_accuracy. Ranking: {}.", ranked[0].activation, order.join(" > "));
        }
        for s in &self.summary {
            if s.gap.n > 0 && s.gap.mean > 0.05 {
                let _ = writeln!(p, "- **{} overfits**: at the last epoch its training accuracy exceeds val_accuracy by {:.3} on average.", s.activation, s.gap.mean);
            } else if s.gap.n > 0 {
                let _ = writeln!(p, "- **{}** shows little overfitting: final train − val accuracy {:.3}.", s.activation, s.gap.mean);
            }
            if s.best_epoch.n > 0 && s.final_acc.n > 0 && s.best.mean - s.final_acc.mean > 0.01 {
                let _ = writeln!(p, "  Its val_accuracy peaked around epoch {:.0} and ended {:.3} lower.", s.best_epoch.mean, s.best.mean - s.final_acc.mean);
            }
        }
        let baseline = self.summary.iter().find(|s| s.activation == Activation::Relu);
        let d1 = artifacts::diagnostics_mean(&self.data.diagnostics)?;
        for s in &self.summary {
            if s.first_val_accuracy.n == 0 {
                continue;
            }
            let slow = s.first_val_accuracy.mean < 0.2;
            let behind = baseline.is_some_and(|b| b.first_val_accuracy.n > 0 && s.activation != Activation::Relu && b.first_val_accuracy.mean - s.first_val_accuracy.mean > 0.1);
            if !(slow || behind) {
                continue;
            }
            let _ = write!(p, "- **{} starts slowly**: after epoch 1 its val_accuracy is {:.3}", s.activation, s.first_val_accuracy.mean);
            if let Some(b) = baseline {
                let _ = write!(p, " (relu: {:.3})", b.first_val_accuracy.mean);
            }
            p.push_str(". At that point the diagnostics show");
            let mut facts = Vec::new();
            for layer in LAYERS {
                let post = artifacts::layer_values(&d1, s.activation, layer, "post_mean")?.first().copied();
                let base = artifacts::layer_values(&d1, Activation::Relu, layer, "post_mean")?.first().copied();
                if let (Some(m), Some(r)) = (post, base) {
                    if (m - r).abs() > 0.5 {
                        facts.push(format!("{layer} outputs averaging {m:.2} (relu {r:.2})"));
                    }
                }
                let grad = artifacts::layer_values(&d1, s.activation, layer, "grad_in_mean_abs")?.first().copied();
                let gbase = artifacts::layer_values(&d1, Activation::Relu, layer, "grad_in_mean_abs")?.first().copied();
                if let (Some(g), Some(r)) = (grad, gbase) {
                    if r > 0.0 && (g / r > 3.0 || g / r < 1.0 / 3.0) {
                        facts.push(format!("the gradient reaching {layer} at {:.1}× relu's", g / r));
                    }
                }
            }
            if facts.is_empty() {
                p.push_str(" no large difference from relu in mean shift or gradient flow.\n");
            } else {
                let _ = writeln!(p, " {}.", facts.join("; "));
            }
        }
        for s in &self.summary {
            let dead = LAYERS
                .iter()
                .filter_map(|l| artifacts::layer_values(&d1, s.activation, l, "dead_units").ok().and_then(|v| v.last().copied()).map(|v| (l, v)))
                .filter(|(_, v)| *v > 0.05)
                .map(|(l, v)| format!("{l} {:.0} %", v * 100.0))
                .collect::<Vec<_>>();
            if !dead.is_empty() {
                let _ = writeln!(p, "- **{}** ends with dead units (f′ = 0 on the whole probe batch): {}.", s.activation, dead.join(", "));
            }
            let sparse = LAYERS
                .iter()
                .filter_map(|l| artifacts::layer_values(&d1, s.activation, l, "sparsity").ok().and_then(|v| v.last().copied()))
                .fold(0.0f64, f64::max);
            if sparse > 0.3 {
                let _ = writeln!(p, "- **{}** produces exact zeros: up to {:.0} % of a layer's outputs at the last epoch.", s.activation, sparse * 100.0);
            }
        }
        p.push_str("\n## Notes\n\n");
        p.push_str(notes.unwrap_or("(No hand-written notes for this study yet: add them to `book/src/notes/<study>.md`.)\n"));
        Ok(p)
    }

    /// Runs that are not finished, for the reproducibility chapter.
    pub fn missing(&self) -> Vec<String> {
        self.data.runs.iter().filter(|r| !matches!(r.state, RunState::Finished(_))).map(|r| format!("{} seed {}: {}", r.activation, r.seed, r.state.label())).collect()
    }
}
