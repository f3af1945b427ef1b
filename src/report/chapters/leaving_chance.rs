//! 結果 (results), for functions whose seeds stall at first: the epoch each
//! seed left chance, or that it did not, and whether the first steps
//! foretold which ([`rules::predicts`]).

use super::StudyPages;
use crate::nn::arch::ACTIVATED;
use crate::report::data::Run;
use crate::report::messages::fill;
use crate::report::rules::{self, AT_CHANCE_MAX, Prediction};
use crate::report::stats::ALPHA;
use crate::report::text;
use anyhow::Result;

/// The layers whose first-steps state is tabled: the two deepest activated
/// ones (in the stall study, where a stalled network goes flat first).
fn deepest() -> &'static [crate::nn::arch::Activated] {
    &ACTIVATED[ACTIVATED.len() - 2..]
}

/// The epoch (from 1) at which `run` first scored above chance, if it did.
fn left_chance(run: &Run) -> Option<usize> {
    run.history.iter().position(|e| e.val_accuracy > AT_CHANCE_MAX).map(|i| i + 1)
}

/// What the section shows of one run, read once.
struct Stalled<'a> {
    run: &'a Run,
    /// The epoch it left chance, if it did.
    left: Option<usize>,
    /// Each of [`deepest`]'s mean pre-activations at the section's step, if logged.
    means: Vec<Option<f64>>,
}

impl StudyPages<'_> {
    /// A table of every seed at chance after its first epoch that trained
    /// longer, and per function and layer, whether that layer's mean
    /// pre-activation at the last logged step predicts which seeds stayed.
    pub(super) fn leaving_chance(&self) -> Result<String> {
        let m = self.m;
        let stalled = |r: &&Run| r.history.len() > 1 && r.history[0].val_accuracy <= AT_CHANCE_MAX;
        let runs: Vec<&Run> = self.acts().into_iter().flat_map(|a| self.data.usable(a).filter(stalled)).collect();
        if runs.is_empty() {
            return Ok(String::new());
        }
        let last_step = |r: &Run| r.step_column("step").last().copied();
        let step = runs.iter().filter_map(|r| last_step(r)).fold(None, |s: Option<f64>, v| Some(s.map_or(v, |s| s.min(v))));
        let dense = ACTIVATED.last().expect("activated layers").name;
        let mut columns = vec![m.col_function.clone(), m.col_seed.clone(), m.col_epochs.clone(), m.col_left_chance.clone()];
        if let Some(step) = step {
            columns.extend(deepest().iter().map(|l| fill(&m.col_pre_mean_at, &[("layer", l.name), ("step", &format!("{step:.0}"))])));
        }
        columns.push(fill(&m.col_dead_from, &[("layer", dense)]));
        let mut table = text::header(&columns);
        let seeds: Vec<Stalled> = runs
            .iter()
            .map(|r| {
                let row = step.and_then(|step| r.step_column("step").iter().position(|s| *s == step));
                let means = deepest().iter().map(|l| row.map(|i| r.step_column(&format!("{}_pre_mean", l.name))[i])).collect();
                Stalled { run: r, left: left_chance(r), means }
            })
            .collect();
        for Stalled { run: r, left, means } in &seeds {
            let left = left.map_or_else(|| fill(&m.not_left, &[("epochs", &text::epochs(m, r.history.len()))]), |e| e.to_string());
            let mut cells = vec![format!("`{}`", r.activation), r.seed.to_string(), r.history.len().to_string(), left];
            if step.is_some() {
                cells.extend(means.iter().map(|v| v.map_or("–".into(), |v| format!("{v:.1}"))));
            }
            let dead = r.diagnostic(dense, "weight_grad_norm").into_iter().find(|(_, v)| *v == 0.0).map(|(e, _)| e);
            cells.push(dead.map_or("–".into(), |e| e.to_string()));
            table.push_str(&text::row(&cells));
        }
        let mut items = Vec::new();
        for a in self.acts() {
            let own: Vec<&Stalled> = seeds.iter().filter(|x| x.run.activation == a).collect();
            let stayed_seeds = own.iter().filter(|x| x.left.is_none()).count();
            let texts = if own.is_empty() {
                continue;
            } else if stayed_seeds == 0 {
                vec![m.predict_all_left.clone()]
            } else if stayed_seeds == own.len() {
                vec![m.predict_all_stayed.clone()]
            } else {
                let Some(step) = step else { continue };
                let mut parts = Vec::new();
                for (i, l) in deepest().iter().enumerate() {
                    let values: Option<Vec<(bool, f64)>> = own.iter().map(|x| x.means[i].map(|v| (x.left.is_some(), v))).collect();
                    let Some(values) = values else { continue }; // a seed without that step: no statement
                    let group = |left: bool| values.iter().filter(|x| x.0 == left).map(|x| x.1).collect::<Vec<_>>();
                    let (stayed, left) = (group(false), group(true));
                    let range = |v: &[f64]| {
                        let (lo, hi) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| (l.min(*x), h.max(*x)));
                        if lo == hi { format!("{lo:.1}") } else { fill(&m.value_range, &[("lo", &format!("{lo:.1}")), ("hi", &format!("{hi:.1}"))]) }
                    };
                    let (key, chance) = match rules::predicts(&stayed, &left) {
                        Prediction::Separates { chance } => (&m.predict_separates, chance),
                        Prediction::TooFewToTell { chance } => (&m.predict_too_few, chance),
                        Prediction::Overlaps | Prediction::OneOutcome => (&m.predict_overlaps, 1.0),
                    };
                    let (k, n) = (stayed.len().to_string(), values.len().to_string());
                    let vars = [("layer", l.name), ("step", &format!("{step:.0}")), ("stayed", &range(&stayed)), ("left", &range(&left)), ("k", &k), ("n", &n), ("chance", &format!("{chance:.3}"))];
                    parts.push(fill(key, &vars));
                }
                parts
            };
            // One item per statement: each is a sentence of its own.
            items.extend(texts.iter().map(|t| format!("- {}", fill(&m.function_item, &[("function", a.name()), ("text", t)]))));
        }
        let intro = fill(&m.leaving_chance_intro, &[("chance", &AT_CHANCE_MAX.to_string()), ("step", &step.map_or("–".into(), |s| format!("{s:.0}"))), ("layer", dense), ("alpha", &ALPHA.to_string())]);
        Ok(format!("\n## {}\n\n{intro}\n\n{table}\n{}\n\n", m.title_leaving_chance, items.join("\n")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;
    use crate::report::charts::REFERENCE_GREY;
    use crate::report::data::Epoch;
    use crate::report::data::constructed::{data, run};
    use crate::report::messages::Messages;

    /// A tanh run at chance after epoch 1 that leaves it at `left` (or
    /// never, in 4 epochs), with conv4's and dense1's means at step 499.
    fn stalled(seed: u64, left: Option<usize>, conv4: f64, dense1: f64) -> Run {
        let mut r = run(Activation::Tanh, seed, 0.5, 0.0, 0.0);
        r.history = (1..=4).map(|e| Epoch { loss: 2.3, accuracy: 0.1, val_loss: 2.3, val_accuracy: if left.is_some_and(|l| e >= l) { 0.4 } else { 0.1 } }).collect();
        let header = crate::train::steps::header();
        let row = |step: f64| header.split(',').map(|c| match c { "step" => step, "conv4_pre_mean" => conv4, "dense1_pre_mean" => dense1, _ => 0.0 }).collect();
        r.steps = vec![row(0.0), row(499.0)];
        r
    }

    fn section(runs: Vec<Run>) -> String {
        let m = Messages::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("book/i18n"), "en").unwrap();
        let d = data(runs);
        let pages = StudyPages { m: &m, data: &d, peers: &[], dir: std::path::Path::new("unused"), colors: &|_| REFERENCE_GREY };
        pages.leaving_chance().unwrap()
    }

    #[test]
    fn each_stalled_seed_gets_its_epoch_and_the_rule_judges_the_first_steps() {
        // Two stayed, three left: dense1 splits them, but 2 of 5 split so by chance 2/10 of the time.
        let s = section(vec![stalled(1, None, -8.0, -30.0), stalled(2, Some(3), -7.0, -3.0), stalled(3, None, -6.0, -20.0), stalled(4, Some(2), -9.0, -2.0), stalled(5, Some(4), -1.0, -4.0)]);
        assert!(s.contains("| `tanh` | 1 | 4 | not within 4 epochs | -8.0 | -30.0 | – |") && s.contains("| `tanh` | 2 | 4 | 3 |"), "{s}");
        assert!(s.contains("dense1 at step 499 splits them cleanly (stayed: -30.0 to -20.0; left: -4.0 to -2.0), but with 2 of 5 seeds staying a split this clean happens by chance with probability 0.200"), "{s}");
        assert!(s.contains("conv4 at step 499 does not tell them apart"), "{s}");
        // Three stayed of fifteen: a clean split is 2/455 by chance.
        let mut runs: Vec<Run> = (1..=3).map(|s| stalled(s, None, -8.0, -40.0 - s as f64)).collect();
        runs.extend((4..=15).map(|s| stalled(s, Some(2 + s as usize % 3), -8.0, -(s as f64) / 4.0)));
        assert!(section(runs).contains("**dense1 at step 499 predicts it**"));
        // Seeds that never stalled are not in it; one outcome is said once.
        assert_eq!(section(vec![run(Activation::Tanh, 1, 0.5, 0.0, 0.0)]), "");
        let s = section(vec![stalled(1, Some(2), -8.0, -3.0), stalled(2, Some(3), -8.0, -3.0)]);
        assert_eq!(s.matches("every seed left chance").count(), 1, "{s}");
    }
}
