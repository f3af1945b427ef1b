//! 考察 (discussion): sentences drawn from the numbers by the rules, each
//! pointing to the table its numbers come from, then the hand-written notes.

use super::StudyPages;
use super::results::{DIAGNOSTICS_ANCHOR, SUMMARY_ANCHOR};
use crate::activation::Activation;
use crate::nn::arch::ACTIVATED;
use crate::report::messages::fill;
use crate::report::rules::{self, CHANCE_ACCURACY, OVERFIT_GAP, Overfitting, Peak, Start};
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

        // The ranking, and whether the top two are told apart.
        let mut ranked: Vec<(Activation, f64)> = self
            .acts()
            .into_iter()
            .filter_map(|a| {
                let v = rules::values(data, a, Metric::PlateauValAccuracy);
                (!v.is_empty()).then(|| (a, v.iter().map(|x| x.1).sum::<f64>() / v.len() as f64))
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        if ranked.is_empty() {
            let _ = writeln!(p, "{}", m.no_finished_runs);
            return Ok(p);
        }
        let order: Vec<String> = ranked.iter().map(|(a, v)| format!("{a} ({})", f3(*v))).collect();
        if let [(first, _), (next, _), ..] = ranked.as_slice() {
            let _ = write!(p, "- {}", fill(&m.ranking, &[("function", first.name()), ("ranking", &order.join(" > ")), ("window", &window), ("table", &summary)]));
            let plateau = |a| rules::values(data, a, Metric::PlateauValAccuracy);
            match difference(&plateau(*first), &plateau(*next)) {
                Some(d) => {
                    let (lo, hi) = d.interval(ALPHA);
                    let key = if lo > 0.0 { &m.ranking_resolved } else { &m.ranking_unresolved };
                    let _ = write!(p, " {}", fill(key, &[("next", next.name()), ("d", &text::signed(d.estimate)), ("interval", &text::interval((lo, hi))), ("method", &text::method(m, &d))]));
                }
                None => p.push_str(&format!(" {}", m.ranking_one_seed)),
            }
            p.push('\n');
        }

        for a in self.acts() {
            let name = a.name();
            match rules::overfitting(data, a) {
                Some(Overfitting::Overfits(d)) => {
                    let _ = writeln!(
                        p,
                        "- {}",
                        fill(&m.overfits, &[("function", name), ("gap", &f3(d.mean)), ("interval", &text::ci(&d)), ("threshold", &OVERFIT_GAP.to_string()), ("window", &window), ("table", &summary)])
                    );
                }
                Some(Overfitting::Little(d)) => {
                    let _ = writeln!(
                        p,
                        "- {}",
                        fill(&m.little_overfitting, &[("function", name), ("gap", &f3(d.mean)), ("interval", &text::ci(&d)), ("threshold", &OVERFIT_GAP.to_string()), ("table", &summary)])
                    );
                }
                Some(Overfitting::Unclear(d)) => {
                    let _ = writeln!(
                        p,
                        "- {}",
                        fill(&m.overfit_unclear, &[("function", name), ("gap", &f3(d.mean)), ("interval", &text::ci(&d)), ("threshold", &OVERFIT_GAP.to_string()), ("table", &summary)])
                    );
                }
                Some(Overfitting::NotApplicable(why)) => {
                    let _ = writeln!(p, "- {}", fill(&m.overfit_not_judged, &[("function", name), ("why", &text::not_applicable(m, &why))]));
                }
                None => {}
            }
            if let Some(Peak::FellBack { drop, epoch }) = rules::peak(data, a) {
                let _ = writeln!(p, "  {}", fill(&m.peaked, &[("epoch", &format!("{epoch:.0}")), ("drop", &f3(drop.mean)), ("interval", &text::ci(&drop))]));
            }
        }

        let base = data.study.baseline;
        for a in self.acts() {
            let Some(start) = rules::slow_start(data, a) else { continue };
            let sentence = match &start {
                Start::AtChance(d) => fill(&m.starts_at_chance, &[("function", a.name()), ("value", &f3(d.mean)), ("chance", &CHANCE_ACCURACY.to_string())]),
                Start::Behind { own, baseline, difference } => fill(
                    &m.starts_behind,
                    &[("function", a.name()), ("baseline", base.name()), ("value", &f3(own.mean)), ("base_value", &f3(baseline.mean)), ("interval", &text::interval(difference.interval(ALPHA)))],
                ),
            };
            let _ = write!(p, "- {sentence}");
            if a == base {
                // The diagnostics below compare with the baseline: nothing to say of itself.
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
                    let ratio = if ratio < 0.1 { format!("{ratio:.1e}") } else { format!("{ratio:.1}") };
                    facts.push(fill(&m.fact_gradient, &[("layer", layer), ("ratio", &ratio), ("baseline", base.name())]));
                }
            }
            if facts.is_empty() {
                let _ = writeln!(p, "{}", fill(&m.no_large_difference, &[("baseline", base.name())]));
            } else {
                let _ = writeln!(p, "{}", fill(&m.facts_sentence, &[("facts", &facts.join(&m.fact_separator))]));
            }
        }
        for a in self.acts() {
            let last = |l: &str, c: &str| data.diagnostic_last(a, l, c);
            let dead: Vec<String> =
                ACTIVATED.iter().filter_map(|l| last(l.name, "dead_units").map(|v| (l.name, v))).filter(|(_, v)| *v > DEAD_UNITS_NOTABLE).map(|(l, v)| format!("{l} {:.0} %", v * 100.0)).collect();
            if !dead.is_empty() {
                let _ = writeln!(p, "- {}", fill(&m.dead_units_end, &[("function", a.name()), ("layers", &dead.join(", ")), ("table", &diagnostics)]));
            }
            let sparse = ACTIVATED.iter().filter_map(|l| last(l.name, "sparsity")).fold(0.0f64, f64::max);
            if sparse > SPARSITY_NOTABLE {
                let _ = writeln!(p, "- {}", fill(&m.exact_zeros, &[("function", a.name()), ("percent", &format!("{:.0}", sparse * 100.0)), ("table", &diagnostics)]));
            }
        }
        if let Some(n) = notes {
            let _ = writeln!(p, "\n## {}\n\n{n}", m.title_notes);
        }
        Ok(p)
    }
}
