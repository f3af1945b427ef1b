//! A study's gradient-intervention design (`[design]` in its file): two
//! properties of a function's negative side, each present or absent, one
//! function (or intervention on its training slope) per combination. The
//! section shows the four cells, the effect of removing each property, and
//! the verdict on the hypothesis, computed from the per-seed plateau
//! val_accuracy by the rule in [`hypothesis_verdict`].

use super::data::StudyData;
use super::messages::{Messages, fill};
use super::rules::{NotApplicable, Verdict, cohort, comparable};
use super::stats::{ALPHA, Difference, describe, difference};
use super::text;
use crate::activation::Activation;
use crate::nn::arch::ACTIVATED;
use crate::study::spec::{Design, Metric};
use std::fmt::Write as _;

/// The metric every cell is compared on.
const METRIC: Metric = Metric::PlateauValAccuracy;

/// The hypothesis "the credited property is what makes the full function
/// work" predicts that removing it lowers accuracy. Supported when the
/// interval of (with − without) lies above 0; contradicted when it lies
/// below 0, or when two one-sided tests show the removal changes nothing
/// beyond the study's margin; inconclusive otherwise.
pub fn hypothesis_verdict(d: Option<&Difference>, margin: f64) -> Verdict {
    let Some(d) = d else { return Verdict::TooFewSeeds { have: 0, needed: None } };
    let (lo, hi) = d.interval(ALPHA);
    if lo > 0.0 {
        Verdict::Supported
    } else if hi < 0.0 || d.p_equivalent(margin) <= ALPHA {
        Verdict::Contradicted
    } else {
        Verdict::Inconclusive
    }
}

/// (with − without) of plateau val_accuracy, paired by seed where it can
/// be, on the seeds where both learned when either side's seeds split;
/// none with fewer than two seeds a side. Not applicable where a side
/// diverged on any seed.
fn effect(data: &StudyData, with: Activation, without: Activation) -> Result<Option<Difference>, NotApplicable> {
    let (a, b, _) = comparable(data, with, without, METRIC)?;
    Ok(difference(&a, &b))
}


/// A removal's (difference, interval) cells: "–" where there is none to
/// show, and the seeds that diverged where that is why.
fn difference_text(m: &Messages, e: &Result<Option<Difference>, NotApplicable>) -> (String, String) {
    match e {
        Ok(Some(d)) => (text::signed(d.estimate), fill(&m.interval_method, &[("interval", &text::interval(d.interval(ALPHA))), ("method", &text::method(m, d))])),
        Err(NotApplicable::Diverged { function, seeds, of }) => ("–".into(), fill(&m.label_value, &[("label", &format!("`{function}`")), ("value", &text::diverged(m, seeds, *of))])),
        Ok(None) | Err(_) => ("–".into(), "–".into()),
    }
}

/// The verdict on the design's hypothesis: the effect of removing the
/// credited property, judged by [`hypothesis_verdict`] — where the design
/// can tell anything at all. The cell with neither property (for ReLU's
/// negative side: a linear network) must score below the function with
/// both; where the interval of that difference does not lie above 0, these
/// runs are too short or small for the properties to matter, and no
/// verdict applies.
pub fn verdict(data: &StudyData, d: &Design) -> Verdict {
    let (both, neither) = (d.cell(true, true), d.cell(false, false));
    let removal = |with, without| effect(data, with, without).map_err(Verdict::NotApplicable);
    let judged = removal(both, neither).and_then(|control| {
        if let Some(e) = control {
            let (low, high) = e.interval(ALPHA);
            if low <= 0.0 {
                return Err(Verdict::NotApplicable(NotApplicable::ControlMatches { control: neither, baseline: both, low: -high, high: -low }));
            }
        }
        let (both, without) = d.removing(d.credited);
        removal(both, without).map(|e| hypothesis_verdict(e.as_ref(), data.study.similar_margin))
    });
    judged.unwrap_or_else(|not_judged| not_judged)
}

/// One sentence: the verdict and the two removals it rests on.
pub fn verdict_sentence(m: &Messages, data: &StudyData, d: &Design) -> String {
    let (_, factors) = data.study.design_words_in(&m.lang).expect("a study with a design");
    let other = 1 - d.credited;
    let (both, without) = d.removing(d.credited);
    let (_, other_without) = d.removing(other);
    // "relu − x = d, 95 % interval [..]", or why there is no difference.
    let removal = |without: Activation| match effect(data, both, without) {
        Err(NotApplicable::Diverged { seeds, of, .. }) => text::diverged(m, &seeds, of),
        e => {
            let (d, interval) = difference_text(m, &e);
            fill(&m.design_difference, &[("both", both.name()), ("without", without.name()), ("d", &d), ("interval", &interval)])
        }
    };
    fill(
        &m.design_verdict,
        &[
            ("verdict", &text::verdict(m, &verdict(data, d))),
            ("credited", factors[d.credited]),
            ("other", factors[other]),
            ("both", both.name()),
            ("without", without.name()),
            ("other_without", other_without.name()),
            ("removal", &removal(without)),
            ("other_removal", &removal(other_without)),
        ],
    )
}

/// What each cell's negative side did: exact zeros and zero slopes (mean over
/// layers, last epoch) and the gradient reaching conv1 after epoch 1.
fn why_table(m: &Messages, data: &StudyData, d: &Design) -> String {
    let mean_last = |a: Activation, col: &str| {
        let v: Vec<f64> = ACTIVATED.iter().filter_map(|l| data.diagnostic_last(a, l.name, col)).collect();
        (v.len() == ACTIVATED.len()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let first_grad = |a: Activation| data.diagnostic_at(a, ACTIVATED[0].name, "grad_in_mean_abs", 1);
    let (full, _) = d.removing(0);
    let pct = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{:.1} %", v * 100.0));
    let mut p = format!("{}\n\n", m.design_why_intro);
    p.push_str(&text::header(&[m.col_function.as_str(), &m.diag_sparsity, &m.diag_zero_slope, &fill(&m.col_grad_vs, &[("function", full.name())])]));
    for a in [d.cell(true, true), d.cell(true, false), d.cell(false, true), d.cell(false, false)] {
        let ratio = match (first_grad(a), first_grad(full)) {
            (Some(g), Some(r)) if r > 0.0 => format!("{:.2}×", g / r),
            _ => "–".into(),
        };
        p.push_str(&text::row(&[format!("`{a}`"), pct(mean_last(a, "sparsity")), pct(mean_last(a, "zero_slope")), ratio]));
    }
    p
}

/// The section that opens the results chapter of a study with a design.
pub fn section(m: &Messages, data: &StudyData, d: &Design) -> String {
    let (hypothesis, factors) = data.study.design_words_in(&m.lang).expect("a study with a design");
    let mut p = format!("## {}\n\n{}\n\n", m.title_design, fill(&m.design_intro, &[("hypothesis", hypothesis), ("measure", &text::last_epochs_measure(m, data.protocol.epochs))]));
    let cell = |a: Activation| {
        let diverged = data.diverged(a);
        if !diverged.is_empty() {
            return format!("`{a}`<br>{}", text::diverged(m, &diverged, data.usable(a).count()));
        }
        let s = describe(&cohort(data, a, METRIC).into_iter().map(|x| x.1).collect::<Vec<_>>());
        let value = match s.n {
            0 => "–".to_string(),
            1 => text::num(s.mean),
            _ => format!("{}<br>{}", text::mean_sd(&s), text::ci(&s)),
        };
        format!("`{a}`<br>{value}")
    };
    let level = |present: bool| if present { m.design_present.as_str() } else { m.design_absent.as_str() };
    p.push_str(&text::header(&[format!("{} ↓ · {} →", factors[0], factors[1]), level(true).into(), level(false).into()]));
    for r in [true, false] {
        p.push_str(&text::row(&[format!("**{}**", level(r)), cell(d.cell(r, true)), cell(d.cell(r, false))]));
    }
    let _ = writeln!(p, "\n{}\n", verdict_sentence(m, data, d));
    let _ = writeln!(p, "{}\n", fill(&m.design_rule, &[("margin", &data.study.similar_margin.to_string()), ("measure", &text::last_epochs_measure(m, data.protocol.epochs))]));

    // Every removal: each property, with the other present and absent.
    p.push_str(&text::header(&[&m.col_removed, &m.col_comparison, &m.col_difference, &m.col_interval]));
    for factor in [d.credited, 1 - d.credited] {
        for other_present in [true, false] {
            let at = |present: bool| if factor == 0 { d.cell(present, other_present) } else { d.cell(other_present, present) };
            let (with, without) = (at(true), at(false));
            let (diff, interval) = difference_text(m, &effect(data, with, without));
            let while_other = fill(if other_present { &m.design_other_present } else { &m.design_other_absent }, &[("other", factors[1 - factor])]);
            p.push_str(&text::row(&[format!("{} {while_other}", factors[factor]), format!("`{with}` − `{without}`"), diff, interval]));
        }
    }
    let _ = writeln!(p, "\n{}", why_table(m, data, d));
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::stats::Method;

    fn diff(estimate: f64, se: f64) -> Difference {
        Difference { method: Method::Paired, n: 3, estimate, se, df: 2.0, sd: se * 3f64.sqrt() }
    }

    #[test]
    fn removing_the_credited_property_must_lower_accuracy() {
        let margin = 0.02;
        // Removing it costs 0.1 ± a little: supported.
        assert_eq!(hypothesis_verdict(Some(&diff(0.1, 0.005)), margin), Verdict::Supported);
        // Removing it helps: contradicted.
        assert_eq!(hypothesis_verdict(Some(&diff(-0.1, 0.005)), margin), Verdict::Contradicted);
        // Removing it changes nothing within the margin (t(0.95, 2)·0.002 = 0.006): contradicted.
        assert_eq!(hypothesis_verdict(Some(&diff(0.0, 0.002)), margin), Verdict::Contradicted);
        // Too noisy to tell.
        assert_eq!(hypothesis_verdict(Some(&diff(0.01, 0.03)), margin), Verdict::Inconclusive);
        assert!(matches!(hypothesis_verdict(None, margin), Verdict::TooFewSeeds { .. }));
    }

    /// A cell that diverged is a result: the design says so where it would
    /// have compared it, in the verdict, the cell and the sentence.
    #[test]
    fn a_cell_that_diverged_is_named_not_averaged() {
        use crate::activation::Activation::{Relu, SignedSqrt, SoftplusLinear, Tanh};
        use crate::report::data::constructed::{STUDY, data_of, three};
        use crate::train::state::RunState;
        // The report tests' study, with a fourth function and a design.
        let study = format!(
            "{STUDY}[[functions]]\nname = \"softplus_linear\"\n[design]\nhypothesis = \"h\"\nrows = \"a\"\ncolumns = \"b\"\n\
             cells = [[\"relu\", \"tanh\"], [\"signed_sqrt\", \"softplus_linear\"]]\ncredits = \"columns\"\n"
        );
        let mut runs = three(Relu, [0.70, 0.72, 0.71], 0.0, 0.0);
        let mut tanh = three(Tanh, [0.30, 0.31, 0.32], 0.0, 0.0);
        for (r, e) in tanh.iter_mut().zip([3, 4, 3]) {
            let RunState::Finished(rec) = r.state.clone() else { unreachable!() };
            r.state = RunState::Diverged(rec, e);
        }
        runs.extend(tanh);
        runs.extend(three(SignedSqrt, [0.60, 0.61, 0.62], 0.0, 0.0));
        runs.extend(three(SoftplusLinear, [0.40, 0.41, 0.42], 0.0, 0.0));
        let data = data_of(&study, runs);
        let d = data.study.design.clone().unwrap();
        assert_eq!(verdict(&data, &d), Verdict::NotApplicable(NotApplicable::Diverged { function: Tanh, seeds: vec![(1, 3), (2, 4), (3, 3)], of: 3 }));
        let m = Messages::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("book/i18n"), "en").unwrap();
        let page = section(&m, &data, &d);
        assert!(page.contains("`tanh`<br>diverged on 3 of 3 seeds (seed 1 at epoch 3, seed 2 at epoch 4, seed 3 at epoch 3)"), "{page}");
        assert!(!page.contains("0.3100"), "tanh's accuracy before it diverged is averaged nowhere: {page}");
        // The other removal is still measured.
        assert!(page.contains("`relu` − `signed_sqrt` = +0.1000"), "{page}");
    }
}
