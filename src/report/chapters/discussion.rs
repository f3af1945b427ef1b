//! 考察 (discussion): sentences drawn from the numbers by the rules, each
//! pointing to the table its numbers come from, then the hand-written notes.

use super::StudyPages;
use super::results::{DIAGNOSTICS_ANCHOR, SUMMARY_ANCHOR};
use crate::activation::Activation;
use crate::nn::arch::ACTIVATED;
use crate::report::messages::fill;
use crate::report::rules::{self, NotApplicable, OVERFIT_GAP, Overfitting, Peak, Start};
use crate::report::stats::{ALPHA, difference};
use crate::report::text;
use crate::study::spec::Metric;
use anyhow::Result;
use std::fmt::Write as _;

/// A post-activation mean this far from the baseline's is worth a sentence.
const MEAN_SHIFT_NOTABLE: f64 = 0.5;
/// A gradient this many times larger (or smaller) than the baseline's is.
const GRADIENT_RATIO_NOTABLE: f64 = 3.0;
/// A layer with more than this fraction of dead units is.
const DEAD_UNITS_NOTABLE: f64 = 0.05;
/// A layer with more than this fraction of exact zeros is.
const SPARSITY_NOTABLE: f64 = 0.3;

impl StudyPages<'_> {
    pub fn discussion(&self, notes: Option<&str>) -> Result<String> {
        let (m, data) = (self.m, self.data);
        let mut p = format!("# {}\n\n{}## {}\n\n", m.title_discussion, self.banners(), m.title_numbers);
        let summary = format!("[{}](results.md#{SUMMARY_ANCHOR})", m.link_summary);
        let diagnostics = format!("[{}](results.md#{DIAGNOSTICS_ANCHOR})", m.link_diagnostics);
        let f3 = |v: f64| format!("{v:.3}");
        let window = text::epochs(m, data.plateau_window());

        // The ranking (of the seeds that learned, where a function's seeds
        // split), and whether the top two are told apart.
        let test = data.test_images();
        let mut ranked: Vec<(Activation, f64)> = self
            .acts()
            .into_iter()
            .filter_map(|a| {
                let v = rules::cohort(data, a, Metric::PlateauValAccuracy);
                (!v.is_empty()).then(|| (a, v.iter().map(|x| x.1).sum::<f64>() / v.len() as f64))
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        if ranked.is_empty() {
            let _ = writeln!(p, "{}", m.no_finished_runs);
            return Ok(p);
        }
        let measure = text::last_epochs_measure(m, data.protocol.epochs);
        let order: Vec<String> = ranked
            .iter()
            .map(|(a, v)| match rules::split(data, *a, Metric::PlateauValAccuracy) {
                Some(sp) => fill(&m.ranking_split_entry, &[("function", a.name()), ("value", &f3(*v)), ("learned", &(sp.of - sp.did_not_learn.len()).to_string()), ("n", &sp.of.to_string())]),
                None => format!("{a} ({})", f3(*v)),
            })
            .collect();
        // Values equal as printed are joined by "=", not ranked.
        let mut ranking = order[0].clone();
        for (i, entry) in order.iter().enumerate().skip(1) {
            ranking.push_str(if f3(ranked[i].1) == f3(ranked[i - 1].1) { " = " } else { " > " });
            ranking.push_str(entry);
        }
        if let [(first, _), (next, _), ..] = ranked.as_slice() {
            let _ = write!(p, "- {}", fill(&m.ranking, &[("function", first.name()), ("measure", &measure), ("ranking", &ranking), ("window", &window), ("table", &summary)]));
            let compared = rules::comparable(data, *first, *next, Metric::PlateauValAccuracy).ok().and_then(|(a, b, splits)| Some((difference(&a, &b)?, splits)));
            match compared {
                Some((d, splits)) => {
                    let (lo, hi) = d.interval(ALPHA);
                    let key = if lo > 0.0 { &m.ranking_resolved } else { &m.ranking_unresolved };
                    let mut method = text::method(m, &d);
                    for sp in &splits {
                        method.push_str(&m.clause_separator);
                        method.push_str(&text::split(m, sp, test));
                    }
                    let _ = write!(p, " {}", fill(key, &[("next", next.name()), ("d", &text::signed(d.estimate)), ("interval", &text::interval((lo, hi))), ("method", &method)]));
                }
                None => p.push_str(&format!(" {}", m.ranking_one_seed)),
            }
            p.push('\n');
        }
        // A function whose seeds split is said to, with the rate of not learning.
        for a in self.acts() {
            if let Some(sp) = rules::split(data, a, Metric::PlateauValAccuracy) {
                let seeds = text::seed_values(m, &sp.did_not_learn, test);
                let _ = writeln!(p, "- {}", fill(&m.split_sentence, &[("function", a.name()), ("rate", &text::rate(m, sp.did_not_learn.len(), sp.of)), ("seeds", &seeds), ("table", &summary)]));
            }
        }

        let overfitting: Vec<(Activation, Option<Overfitting>)> = self.acts().into_iter().map(|a| (a, rules::overfitting(data, a))).collect();
        // One-epoch runs have no overfitting gap at all: said once, not per function.
        if let Some(why) = overfitting.iter().find_map(|(_, o)| match o {
            Some(Overfitting::NotApplicable(why @ NotApplicable::OneEpoch { .. })) => Some(why),
            _ => None,
        }) {
            let _ = writeln!(p, "- {}", fill(&m.overfit_not_judged_any, &[("why", &text::not_applicable(m, why))]));
        }
        for (a, overfits) in overfitting {
            let name = a.name();
            match overfits {
                Some(Overfitting::NotApplicable(NotApplicable::OneEpoch { .. })) => {}
                Some(Overfitting::Overfits(d)) => {
                    let _ = writeln!(
                        p,
                        "- {}",
                        fill(&m.overfits, &[("function", name), ("gap", &f3(d.mean)), ("interval", &text::signed_ci(&d)), ("threshold", &OVERFIT_GAP.to_string()), ("window", &window), ("table", &summary)])
                    );
                }
                Some(Overfitting::Little(d)) => {
                    let _ = writeln!(
                        p,
                        "- {}",
                        fill(&m.little_overfitting, &[("function", name), ("gap", &f3(d.mean)), ("interval", &text::signed_ci(&d)), ("threshold", &OVERFIT_GAP.to_string()), ("table", &summary)])
                    );
                }
                Some(Overfitting::Unclear(d)) if d.n == 1 => {
                    let _ = writeln!(p, "- {}", fill(&m.overfit_one_seed, &[("function", name), ("gap", &f3(d.mean)), ("threshold", &OVERFIT_GAP.to_string()), ("table", &summary)]));
                }
                Some(Overfitting::Unclear(d)) => {
                    let _ = writeln!(
                        p,
                        "- {}",
                        fill(&m.overfit_unclear, &[("function", name), ("gap", &f3(d.mean)), ("interval", &text::signed_ci(&d)), ("threshold", &OVERFIT_GAP.to_string()), ("table", &summary)])
                    );
                }
                Some(Overfitting::NotApplicable(why)) => {
                    let _ = writeln!(p, "- {}", fill(&m.overfit_not_judged, &[("function", name), ("why", &text::not_applicable(m, &why))]));
                }
                None => {}
            }
            if let Some(Peak::FellBack { drop, epoch }) = rules::peak(data, a) {
                let _ = writeln!(p, "  {}", fill(&m.peaked, &[("epoch", &format!("{epoch:.0}")), ("drop", &f3(drop.mean)), ("interval", &text::signed_ci(&drop))]));
            }
        }

        let base = data.study.baseline;
        for a in self.acts() {
            let Some(start) = rules::slow_start(data, a) else { continue };
            let sentence = match &start {
                Start::Stalled { low, high, seeds } => {
                    let range = if low == high { f3(*low) } else { format!("{}–{}", f3(*low), f3(*high)) };
                    let what = if rules::at_chance(*low, test) && rules::at_chance(*high, test) { m.at_chance_words.clone() } else { fill(&m.did_not_learn_words, &[("chance", &rules::AT_CHANCE_MAX.to_string())]) };
                    fill(&m.starts_stalled, &[("function", a.name()), ("range", &range), ("n", &seeds.to_string()), ("what", &what)])
                }
                Start::SomeStalled(sp) => {
                    let seeds = text::seed_values(m, &sp.did_not_learn, test);
                    let learned: Vec<u64> = rules::cohort(data, a, Metric::FirstValAccuracy).iter().map(|(s, _)| *s).collect();
                    fill(
                        &m.starts_some_stalled,
                        &[("function", a.name()), ("k", &sp.did_not_learn.len().to_string()), ("n", &sp.of.to_string()), ("seeds", &seeds), ("learned", &text::seeds(m, &learned))],
                    )
                }
                Start::Behind { own, baseline, difference } => fill(
                    &m.starts_behind,
                    &[("function", a.name()), ("baseline", base.name()), ("value", &f3(own.mean)), ("base_value", &f3(baseline.mean)), ("d", &text::signed(difference.estimate)), ("interval", &text::interval(difference.interval(ALPHA))), ("method", &text::method(m, difference))],
                ),
            };
            let _ = write!(p, "- {sentence}");
            // The diagnostics below compare with the baseline, averaged over
            // the seeds that learned: nothing to say of the baseline itself,
            // nor of a stall that only other seeds of the function had.
            if a == base || matches!(start, Start::SomeStalled(_)) {
                let _ = writeln!(p, "{}", m.sentence_end);
                continue;
            }
            p.push_str(&fill(&m.diagnostics_show, &[("table", &diagnostics)]));
            let mut facts = Vec::new();
            // After epoch 1: what the diagnostics measured then.
            for layer in ACTIVATED.iter().map(|l| l.name) {
                let at = |f: Activation, c: &str| data.diagnostic_at(f, layer, c, 1);
                if let (Some(v), Some(r)) = (at(a, "post_mean"), at(base, "post_mean"))
                    && (v - r).abs() > MEAN_SHIFT_NOTABLE
                {
                    facts.push(fill(&m.fact_mean_shift, &[("layer", layer), ("value", &format!("{v:.2}")), ("baseline", base.name()), ("base_value", &format!("{r:.2}"))]));
                }
                if let (Some(g), Some(r)) = (at(a, "grad_in_mean_abs"), at(base, "grad_in_mean_abs"))
                    && r > 0.0
                    && (g / r > GRADIENT_RATIO_NOTABLE || g / r < 1.0 / GRADIENT_RATIO_NOTABLE)
                {
                    let ratio = g / r;
                    facts.push(if ratio == 0.0 {
                        fill(&m.fact_gradient_zero, &[("layer", layer)])
                    } else {
                        let ratio = if ratio < 0.1 { format!("{ratio:.1e}") } else { format!("{ratio:.1}") };
                        fill(&m.fact_gradient, &[("layer", layer), ("ratio", &ratio), ("baseline", base.name())])
                    });
                }
            }
            if facts.is_empty() {
                let _ = writeln!(p, "{}", fill(&m.no_large_difference, &[("baseline", base.name()), ("shift", &MEAN_SHIFT_NOTABLE.to_string()), ("ratio", &GRADIENT_RATIO_NOTABLE.to_string())]));
            } else {
                let _ = writeln!(p, "{}", fill(&m.facts_sentence, &[("facts", &facts.join(&m.fact_separator))]));
            }
        }
        for a in self.acts() {
            let last = |l: &str, c: &str| data.diagnostic_last(a, l, c);
            let dead: Vec<String> =
                ACTIVATED.iter().filter_map(|l| last(l.name, "dead_units").map(|v| (l.name, v))).filter(|(_, v)| *v > DEAD_UNITS_NOTABLE).map(|(l, v)| format!("{l} {:.0} %", v * 100.0)).collect();
            let (cohort, set_aside) = data.cohorts(a);
            let seeds = |runs: &[&crate::report::data::Run]| text::seeds(m, &runs.iter().map(|r| r.seed).collect::<Vec<_>>());
            if !dead.is_empty() {
                let _ = writeln!(p, "- {}", fill(&m.dead_units_end, &[("function", a.name()), ("layers", &dead.join(&m.list_separator)), ("seeds", &seeds(&cohort)), ("table", &diagnostics)]));
            }
            // Each seed set aside on its own: never averaged with the others.
            for r in &set_aside {
                let dead: Vec<String> = ACTIVATED
                    .iter()
                    .filter_map(|l| r.diagnostic(l.name, "dead_units").last().map(|x| (l.name, x.1)))
                    .filter(|(_, v)| *v > DEAD_UNITS_NOTABLE)
                    .map(|(l, v)| format!("{l} {:.0} %", v * 100.0))
                    .collect();
                if !dead.is_empty() {
                    let _ = writeln!(p, "- {}", fill(&m.dead_units_end_seed, &[("function", a.name()), ("seed", &r.seed.to_string()), ("layers", &dead.join(&m.list_separator)), ("table", &diagnostics)]));
                }
            }
            let sparse = ACTIVATED.iter().filter_map(|l| last(l.name, "sparsity")).fold(0.0f64, f64::max);
            if sparse > SPARSITY_NOTABLE {
                let _ = writeln!(p, "- {}", fill(&m.exact_zeros, &[("function", a.name()), ("percent", &format!("{:.0}", sparse * 100.0)), ("seeds", &seeds(&cohort)), ("table", &diagnostics)]));
            }
        }
        if let Some(n) = notes {
            let _ = writeln!(p, "\n## {}\n\n{n}", m.title_notes);
        }
        Ok(p)
    }
}
