//! A study's 2x2 design (`[design]` in its file): the table of the four
//! cells, the effect of removing each property, and the verdict on the
//! hypothesis, all computed from the per-seed best val_accuracy.

use super::chapters::{verdict_label, FunctionSummary, LAYERS};
use super::messages::{fill, Messages};
use super::stats::{self, describe, welch_diff, Verdict};
use crate::activation::Activation;
use crate::study::spec::{Design, Direction};
use std::fmt::Write as _;

/// The verdict on "the credited property is what makes the full function
/// work": removing it must lower accuracy. It is contradicted when removing
/// it does not (interval above 0, or within the similarity margin).
pub fn hypothesis_verdict(interval: Option<(f64, f64, f64)>) -> Verdict {
    match stats::verdict(Direction::Higher, interval) {
        Verdict::Inconclusive if stats::verdict(Direction::Similar, interval) == Verdict::Supported => Verdict::Contradicted,
        v => v,
    }
}

/// The per-seed best val_accuracy of one function (empty if it has none).
fn best(summary: &[FunctionSummary], a: Activation) -> &[f64] {
    summary.iter().find(|s| s.activation == a).map_or(&[], |s| s.best_values.as_slice())
}

/// Welch interval of best val_accuracy, `with` − `without`.
fn effect(summary: &[FunctionSummary], with: Activation, without: Activation) -> Option<(f64, f64, f64)> {
    welch_diff(best(summary, with), best(summary, without))
}

fn interval_text(iv: Option<(f64, f64, f64)>) -> (String, String) {
    match iv {
        Some((d, lo, hi)) => (format!("{d:+.4}"), format!("[{lo:+.4}, {hi:+.4}]")),
        None => ("–".into(), "–".into()),
    }
}

/// One sentence: the verdict and the two removals it rests on.
pub fn verdict_sentence(m: &Messages, d: &Design, summary: &[FunctionSummary]) -> String {
    let other = 1 - d.credited;
    let (both, without) = d.removing(d.credited);
    let (_, other_without) = d.removing(other);
    let iv = effect(summary, both, without);
    let (diff, interval) = interval_text(iv);
    let (diff2, interval2) = interval_text(effect(summary, both, other_without));
    fill(
        &m.design_verdict,
        &[
            ("verdict", verdict_label(m, hypothesis_verdict(iv))),
            ("hypothesis", &d.hypothesis),
            ("credited", &d.factors[d.credited]),
            ("other", &d.factors[other]),
            ("both", both.name()),
            ("without", without.name()),
            ("other_without", other_without.name()),
            ("d", &diff),
            ("interval", &interval),
            ("d2", &diff2),
            ("interval2", &interval2),
        ],
    )
}

/// Per-epoch values of a diagnostic: (function, layer, column) → one value per epoch.
pub type DiagnosticLookup<'a> = &'a dyn Fn(Activation, &str, &str) -> Option<Vec<f64>>;

/// What each cell's negative side did: exact zeros and zero slopes (mean over
/// layers, last epoch) and the gradient reaching conv1 after epoch 1.
fn why_table(m: &Messages, d: &Design, diag: DiagnosticLookup) -> String {
    let mean_last = |a: Activation, col: &str| {
        let v: Vec<f64> = LAYERS.iter().filter_map(|l| diag(a, l, col).and_then(|v| v.last().copied())).collect();
        (v.len() == LAYERS.len()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let first_grad = |a: Activation| diag(a, "conv1", "grad_in_mean_abs").and_then(|v| v.first().copied());
    let (full, _) = d.removing(0);
    let pct = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{:.1} %", v * 100.0));
    let mut p = format!("{}\n\n| {} | {} | {} | {} |\n|---|---|---|---|\n", m.design_why_intro, m.col_function, m.diag_sparsity, m.diag_zero_slope, fill(&m.col_grad_vs, &[("function", full.name())]));
    for a in [d.cell(true, true), d.cell(true, false), d.cell(false, true), d.cell(false, false)] {
        let ratio = match (first_grad(a), first_grad(full)) {
            (Some(g), Some(r)) if r > 0.0 => format!("{:.2}×", g / r),
            _ => "–".into(),
        };
        let _ = writeln!(p, "| `{a}` | {} | {} | {ratio} |", pct(mean_last(a, "sparsity")), pct(mean_last(a, "zero_slope")));
    }
    p
}

/// The section that opens the results chapter of a study with a design.
pub fn section(m: &Messages, d: &Design, summary: &[FunctionSummary], diag: DiagnosticLookup) -> String {
    let mut p = format!("## {}\n\n{}\n\n", m.title_design, fill(&m.design_intro, &[("hypothesis", &d.hypothesis)]));
    let cell = |a: Activation| {
        let s = describe(best(summary, a));
        let value = match s.n {
            0 => "–".to_string(),
            1 => format!("{:.4}", s.mean),
            _ => format!("{:.4} ± {:.4}<br>[{:.4}, {:.4}]", s.mean, s.sd, s.ci_low, s.ci_high),
        };
        format!("`{a}`<br>{value}")
    };
    let level = |present: bool| if present { &m.design_present } else { &m.design_absent };
    let _ = writeln!(p, "| {} ↓ · {} → | {} | {} |\n|---|---|---|", d.factors[0], d.factors[1], level(true), level(false));
    for row in [true, false] {
        let _ = writeln!(p, "| **{}** | {} | {} |", level(row), cell(d.cell(row, true)), cell(d.cell(row, false)));
    }
    let _ = writeln!(p, "\n{}\n", verdict_sentence(m, d, summary));
    let _ = writeln!(p, "{}\n", fill(&m.design_rule, &[("margin", &stats::SIMILAR_MARGIN.to_string())]));

    // Every removal: each property, with the other present and absent.
    let _ = writeln!(p, "| {} | {} | {} | {} |\n|---|---|---|---|", m.col_removed, m.col_comparison, m.col_difference, m.col_interval);
    for factor in [d.credited, 1 - d.credited] {
        for other_present in [true, false] {
            let at = |present: bool| if factor == 0 { d.cell(present, other_present) } else { d.cell(other_present, present) };
            let (with, without) = (at(true), at(false));
            let (diff, interval) = interval_text(effect(summary, with, without));
            let while_other = fill(if other_present { &m.design_other_present } else { &m.design_other_absent }, &[("other", &d.factors[1 - factor])]);
            let _ = writeln!(p, "| {} {while_other} | `{with}` − `{without}` | {diff} | {interval} |", d.factors[factor]);
        }
    }
    let _ = writeln!(p, "\n{}", why_table(m, d, diag));
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::{define, Definition};

    fn summary(a: Activation, best: &[f64]) -> FunctionSummary {
        let d = describe(best);
        FunctionSummary {
            activation: a,
            runs_total: best.len(),
            runs_usable: best.len(),
            best: d,
            best_epoch: d,
            final_acc: d,
            gap: d,
            final_loss: d,
            wall_seconds: d,
            first_val_accuracy: d,
            best_values: best.to_vec(),
            final_values: best.to_vec(),
            gap_values: best.to_vec(),
        }
    }

    #[test]
    fn the_table_and_verdict_come_from_the_seeds() {
        let def = |name: &str, expr: &str, grad: Option<&str>| define(name, &Definition { expr: expr.into(), grad: grad.map(String::from) }).unwrap();
        let st = def("t_straight_through", "max(x, 0)", Some("1"));
        let lin = def("t_linear_relu_grad", "x", Some("where(x > 0, 1, 0)"));
        let id = def("t_identity", "x", None);
        let d = Design { hypothesis: "H.".into(), factors: ["zeros".into(), "flat".into()], cells: [[Activation::Relu, st], [lin, id]], credited: 1 };
        assert_eq!(d.removing(1), (Activation::Relu, st));
        assert_eq!(d.removing(0), (Activation::Relu, lin));
        let s = [
            summary(Activation::Relu, &[0.60, 0.61, 0.62]),
            summary(st, &[0.50, 0.51, 0.52]),
            summary(lin, &[0.40, 0.41, 0.42]),
            summary(id, &[0.40, 0.41, 0.42]),
        ];
        let m = crate::report::messages::Messages::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/book/i18n")), "en").unwrap();
        // Diagnostics: only the straight-through variant's gradient differs (twice relu's).
        let diag = |a: Activation, layer: &str, col: &str| -> Option<Vec<f64>> {
            let zeros = a == Activation::Relu || a == st;
            Some(match (col, layer) {
                ("sparsity", _) => vec![0.9, if zeros { 0.5 } else { 0.0 }],
                ("zero_slope", _) => vec![0.0, if a == Activation::Relu || a == lin { 0.25 } else { 0.0 }],
                ("grad_in_mean_abs", "conv1") => vec![if a == st { 2e-3 } else { 1e-3 }],
                _ => return None,
            })
        };
        let text = section(&m, &d, &s, &diag);
        assert!(text.contains("| `relu` | 50.0 % | 25.0 % | 1.00× |"), "{text}");
        assert!(text.contains("| `t_straight_through` | 50.0 % | 0.0 % | 2.00× |"), "{text}");
        assert!(text.contains("| `t_identity` | 0.0 % | 0.0 % | 1.00× |"), "{text}");
        // relu − straight-through = 0.1 exactly; both sd 0.01, so the Welch half-width is 2.776·sqrt(2e-4/3) = 0.02267.
        assert!(text.contains("**The hypothesis is supported.**"), "{text}");
        assert!(text.contains("`relu` − `t_straight_through` = +0.1000 (95 % Welch interval [+0.0773, +0.1227])"), "{text}");
        // The other removal, relu − linear_relu_grad = 0.2; within the no-zeros row the flat slope changes nothing.
        assert!(text.contains("`relu` − `t_linear_relu_grad` = +0.2000 ([+0.1773, +0.2227])"), "{text}");
        assert!(text.contains("| flat (without zeros) | `t_linear_relu_grad` − `t_identity` | +0.0000 | [-0.0227, +0.0227] |"), "{text}");
        assert!(text.contains("| **yes** | `relu`<br>0.6100 ± 0.0100"), "{text}");
        // If removing the flat slope changed nothing, the hypothesis falls.
        let s2 = [summary(Activation::Relu, &[0.605, 0.61, 0.615]), summary(st, &[0.605, 0.61, 0.615]), summary(lin, &[0.4, 0.41, 0.42]), summary(id, &[0.4, 0.41, 0.42])];
        assert!(verdict_sentence(&m, &d, &s2).starts_with("**The hypothesis is contradicted.**"));
        // With missing seeds nothing is claimed.
        let s3 = [summary(Activation::Relu, &[0.60]), summary(st, &[]), summary(lin, &[]), summary(id, &[])];
        assert!(verdict_sentence(&m, &d, &s3).starts_with("**The hypothesis is inconclusive.**"));
    }

    #[test]
    fn removing_the_credited_property_must_lower_accuracy() {
        // Removing it costs 0.1 ± a little: supported.
        assert_eq!(hypothesis_verdict(Some((0.1, 0.08, 0.12))), Verdict::Supported);
        // Removing it helps: contradicted.
        assert_eq!(hypothesis_verdict(Some((-0.1, -0.12, -0.08))), Verdict::Contradicted);
        // Removing it changes nothing beyond the margin: contradicted.
        assert_eq!(hypothesis_verdict(Some((0.0, -0.01, 0.01))), Verdict::Contradicted);
        // Too noisy to tell.
        assert_eq!(hypothesis_verdict(Some((0.01, -0.05, 0.07))), Verdict::Inconclusive);
        assert_eq!(hypothesis_verdict(None), Verdict::Inconclusive);
    }
}
