//! What the article *observed*, checked against our runs at its own
//! protocol, seed by seed: each observation of a study file
//! (`[[observations]]`) is reproduced (on every seed, or on k of n), not
//! reproduced, or not testable with the reason, by the rules below and the
//! thresholds of [`super::rules`]. The author saw one run; where our seeds
//! split, the outcome says on how many it holds.

use super::data::StudyData;
use super::rules::{self, AT_CHANCE_MAX, OVERFIT_GAP, Overfitting, Split};
use crate::activation::Activation;
use super::stats::{ALPHA, Describe, Difference, difference};
use crate::study::spec::{Metric, Observation, ObservationKind};
use crate::train::config::Protocol;

/// Why an observation cannot be checked on these runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Untestable {
    NoRuns,
    /// The runs are shorter than the article's and have not shown it yet.
    Shorter {
        epochs: usize,
        article: usize,
    },
    Rule(rules::NotApplicable),
    /// The seeds do not resolve it (an interval straddling the bound, or one seed).
    Unresolved,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Reproduced,
    /// Reproduced on `k` of `n` seeds, not on the others.
    Partly { k: usize, n: usize },
    NotReproduced,
    NotTestable(Untestable),
}

/// One seed's stall: the epoch it left chance (val_accuracy above
/// [`AT_CHANCE_MAX`]), if it stalled at all and if it left.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedStall {
    pub seed: u64,
    pub stalled: bool,
    pub left_at: Option<usize>,
}

/// What was measured for an observation.
#[derive(Clone, Debug, PartialEq)]
pub enum Measured {
    None,
    /// Each seed's first epoch and when it left chance, over `epochs`.
    Stall { seeds: Vec<SeedStall>, epochs: usize },
    /// The gap at the end (train − val accuracy, last epochs) of the seeds that learned.
    Gap(Describe, Option<Split>),
    /// Where the seeds' interval does not resolve the gap: each learned seed's
    /// smallest and largest gap over the last epochs.
    GapBySeed { seeds: Vec<SeedGap>, window: usize, split: Option<Split> },
    /// Each learned seed's plateau, and the seeds that did not learn.
    Levels(Vec<(u64, f64)>, Option<Split>),
    /// The difference on the seeds where both learned, and the seeds set aside.
    Difference(Difference, Vec<Split>),
}

/// The outcome of a check that holds on `k` of `n` seeds.
/// One learned seed's train − val accuracy gap over the last epochs.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedGap {
    pub seed: u64,
    pub min: f64,
    pub max: f64,
}

/// The gap range of each seed of `a` that learned, over the plateau window.
fn gap_by_seed(data: &StudyData, a: Activation, sp: &Option<Split>) -> Vec<SeedGap> {
    let window = data.plateau_window();
    data.usable(a)
        .filter(|r| !sp.as_ref().is_some_and(|sp| sp.did_not_learn.iter().any(|x| x.0 == r.seed)))
        .filter(|r| r.history.len() >= window && window > 0)
        .map(|r| {
            let gaps: Vec<f64> = r.history[r.history.len() - window..].iter().map(|e| e.accuracy - e.val_accuracy).collect();
            SeedGap { seed: r.seed, min: gaps.iter().cloned().fold(f64::INFINITY, f64::min), max: gaps.iter().cloned().fold(f64::NEG_INFINITY, f64::max) }
        })
        .collect()
}

fn of_seeds(k: usize, n: usize) -> Outcome {
    match k {
        0 => Outcome::NotReproduced,
        k if k == n => Outcome::Reproduced,
        k => Outcome::Partly { k, n },
    }
}

pub fn check(data: &StudyData, o: &Observation) -> (Measured, Outcome) {
    let runs: Vec<_> = data.usable(o.function).collect();
    if runs.is_empty() {
        return (Measured::None, Outcome::NotTestable(Untestable::NoRuns));
    }
    let n = runs.len();
    match &o.kind {
        ObservationKind::StallsThenLearns => {
            let seeds: Vec<SeedStall> = runs
                .iter()
                .map(|r| {
                    let stalled = r.history.first().is_some_and(|e| e.val_accuracy <= AT_CHANCE_MAX);
                    let left_at = r.history.iter().position(|e| e.val_accuracy > AT_CHANCE_MAX).map(|i| i + 1).filter(|_| stalled);
                    SeedStall { seed: r.seed, stalled, left_at }
                })
                .collect();
            let both = seeds.iter().filter(|s| s.stalled && s.left_at.is_some()).count();
            let stalled = seeds.iter().filter(|s| s.stalled).count();
            let outcome = if both == 0 && stalled > 0 && data.protocol.epochs < Protocol::ARTICLE.epochs {
                Outcome::NotTestable(Untestable::Shorter { epochs: data.protocol.epochs, article: Protocol::ARTICLE.epochs })
            } else {
                of_seeds(both, n)
            };
            (Measured::Stall { seeds, epochs: data.protocol.epochs }, outcome)
        }
        ObservationKind::Overfits | ObservationKind::NoOverfitting => {
            let want = matches!(o.kind, ObservationKind::Overfits);
            let sp = rules::split(data, o.function, Metric::OverfitGap);
            let seen = |g: Describe, overfits: bool| (Measured::Gap(g, sp.clone()), if overfits == want { Outcome::Reproduced } else { Outcome::NotReproduced });
            match rules::overfitting(data, o.function) {
                Some(Overfitting::Overfits(g)) => seen(g, true),
                Some(Overfitting::Little(g)) => seen(g, false),
                // Too few learned seeds for an interval: the author's words are
                // about one curve, so each seed is read on its own epochs.
                Some(Overfitting::Unclear(g)) => {
                    let seeds = gap_by_seed(data, o.function, &sp);
                    let judged = |over: bool| seeds.iter().filter(|s| if over { s.min > OVERFIT_GAP } else { s.max < OVERFIT_GAP }).count();
                    let (agree, disagree) = (judged(want), judged(!want));
                    if seeds.is_empty() || agree + disagree < seeds.len() {
                        (Measured::Gap(g, sp), Outcome::NotTestable(Untestable::Unresolved))
                    } else {
                        // A seed that never learned shows no overfitting either: counted among the n.
                        (Measured::GapBySeed { seeds, window: data.plateau_window(), split: sp }, of_seeds(agree, n))
                    }
                }
                Some(Overfitting::NotApplicable(why)) => (Measured::None, Outcome::NotTestable(Untestable::Rule(why))),
                None => (Measured::None, Outcome::NotTestable(Untestable::NoRuns)),
            }
        }
        ObservationKind::LevelsOff { near, within } => {
            let sp = rules::split(data, o.function, Metric::PlateauValAccuracy);
            let levels = rules::cohort(data, o.function, Metric::PlateauValAccuracy);
            let measured = Measured::Levels(levels.clone(), sp);
            if levels.iter().all(|x| x.1 <= AT_CHANCE_MAX) {
                return (measured, Outcome::NotReproduced);
            }
            if let Err(why) = rules::levelled_off(data, o.function) {
                return (measured, Outcome::NotTestable(Untestable::Rule(why)));
            }
            let near_it = levels.iter().filter(|x| (x.1 - near).abs() <= *within).count();
            (measured, of_seeds(near_it, n))
        }
        ObservationKind::Below { than } => match rules::comparable(data, o.function, *than, Metric::PlateauValAccuracy) {
            Err(why) => (Measured::None, Outcome::NotTestable(Untestable::Rule(why))),
            Ok((a, b, splits)) => match difference(&a, &b) {
                None => (Measured::None, Outcome::NotTestable(Untestable::Unresolved)),
                Some(diff) => {
                    let (lo, hi) = diff.interval(ALPHA);
                    // A seed of this function that never learned is below one that did.
                    let set_aside = splits.iter().filter(|s| s.function == o.function).map(|s| s.did_not_learn.len()).sum::<usize>();
                    let outcome = if hi < 0.0 {
                        of_seeds(diff.n + set_aside, diff.n + set_aside)
                    } else if lo > 0.0 {
                        Outcome::NotReproduced
                    } else {
                        Outcome::NotTestable(Untestable::Unresolved)
                    };
                    (Measured::Difference(diff, splits), outcome)
                }
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation::{Relu, SignedSqrt, Tanh};
    use crate::report::data::constructed::{STUDY, data_of, run, three};

    /// The constructed study with observations of tanh (and the article's 50 epochs unless `epochs`).
    fn with(observations: &str, epochs: Option<usize>, runs: Vec<crate::report::data::Run>) -> StudyData {
        let study = match epochs {
            Some(e) => STUDY.replace("similar_margin = 0.02", &format!("similar_margin = 0.02\n[protocol]\nepochs = {e}")),
            None => STUDY.to_string(),
        };
        data_of(&format!("{study}{observations}"), runs)
    }

    fn outcomes(d: &StudyData) -> Vec<Outcome> {
        d.study.observations.iter().map(|o| check(d, o).1).collect()
    }

    const ALL: &str = r#"
[[observations]]
function = "tanh"
kind = "stalls_then_learns"
article = "a"
[[observations]]
function = "tanh"
kind = "overfits"
article = "b"
[[observations]]
function = "tanh"
kind = "levels_off"
near = 0.7
within = 0.05
article = "c"
[[observations]]
function = "tanh"
kind = "below"
than = "relu"
article = "d"
"#;

    /// tanh stalls at chance for its first epochs, then learns to `level`.
    fn stalling(seed: u64, level: f64, gap: f64) -> crate::report::data::Run {
        let mut r = run(Tanh, seed, level, gap, 0.0);
        for e in r.history.iter_mut().take(3) {
            e.val_accuracy = 0.1;
        }
        r
    }

    #[test]
    fn the_article_reproduced_and_not() {
        // Stalls, then learns to ~0.70, overfits by 0.1, below relu's ~0.78.
        let mut runs = vec![stalling(1, 0.69, 0.1), stalling(2, 0.70, 0.1), stalling(3, 0.71, 0.1)];
        runs.extend(three(Relu, [0.77, 0.78, 0.79], 0.1, 0.0));
        runs.extend(three(SignedSqrt, [0.5, 0.5, 0.5], 0.0, 0.0));
        let d = with(ALL, None, runs);
        assert_eq!(outcomes(&d), vec![Outcome::Reproduced; 4]);
        let (m, _) = check(&d, &d.study.observations[0]);
        assert!(matches!(m, Measured::Stall { ref seeds, .. } if seeds.iter().all(|s| s.left_at == Some(4))), "{m:?}");
        // Learning from the start, levelling at 0.85 above relu, with no gap: none of it holds.
        let mut runs = three(Tanh, [0.84, 0.85, 0.86], 0.0, 0.0);
        runs.extend(three(Relu, [0.77, 0.78, 0.79], 0.1, 0.0));
        let d = with(ALL, None, runs);
        assert_eq!(outcomes(&d), vec![Outcome::NotReproduced; 4]);
    }

    #[test]
    fn seeds_that_split_are_judged_one_by_one() {
        // Seeds 1 and 3 stall, recover and level off near 0.7 below relu; seed 2 never leaves chance.
        let mut runs = vec![stalling(1, 0.69, 0.1), run(Tanh, 2, 0.1, 0.0, 0.0), stalling(3, 0.70, 0.1)];
        runs.extend(three(Relu, [0.77, 0.78, 0.79], 0.1, 0.0));
        let d = with(ALL, None, runs);
        let o = outcomes(&d);
        assert_eq!(o[0], Outcome::Partly { k: 2, n: 3 }, "stalled on all, recovered on 2");
        assert_eq!(o[1], Outcome::Reproduced, "the overfitting of the two that learned");
        assert_eq!(o[2], Outcome::Partly { k: 2, n: 3 }, "the level of each learned seed");
        assert_eq!(o[3], Outcome::Reproduced, "below relu on every seed: two by their difference, one at chance");
        let (m, _) = check(&d, &d.study.observations[3]);
        assert!(matches!(&m, Measured::Difference(diff, splits) if diff.n == 2 && splits.len() == 1), "{m:?}");
        // Two learned seeds whose gaps differ too much for an interval: each is read on its own epochs.
        let mut runs = vec![stalling(1, 0.69, 0.08), run(Tanh, 2, 0.1, 0.0, 0.0), stalling(3, 0.70, 0.2)];
        runs.extend(three(Relu, [0.77, 0.78, 0.79], 0.1, 0.0));
        let d = with(ALL, None, runs.clone());
        let (m, o) = check(&d, &d.study.observations[1]);
        assert_eq!(o, Outcome::Partly { k: 2, n: 3 }, "{m:?}");
        assert!(matches!(&m, Measured::GapBySeed { seeds, .. } if seeds.len() == 2 && seeds[0].min > 0.05), "{m:?}");
        // One of them below the threshold: the seeds disagree, and it is reproduced on one.
        runs[0] = stalling(1, 0.69, 0.01);
        let d = with(ALL, None, runs);
        assert_eq!(check(&d, &d.study.observations[1]).1, Outcome::Partly { k: 1, n: 3 });
    }

    #[test]
    fn what_these_runs_cannot_show_is_not_testable() {
        // Still at chance after 20 of the article's 50 epochs: the stall may yet end.
        let runs: Vec<_> = (1..=3).map(|s| run(Tanh, s, 0.1, 0.0, 0.0)).chain(three(Relu, [0.77, 0.78, 0.79], 0.1, 0.0)).collect();
        let d = with(ALL, Some(20), runs);
        let o = outcomes(&d);
        assert_eq!(o[0], Outcome::NotTestable(Untestable::Shorter { epochs: 20, article: 50 }));
        assert!(matches!(o[1], Outcome::NotTestable(Untestable::Rule(rules::NotApplicable::DidNotLearn { .. }))), "{o:?}");
        // At the article's length the same runs never learned: not reproduced.
        let runs: Vec<_> = (1..=3).map(|s| run(Tanh, s, 0.1, 0.0, 0.0)).collect();
        assert_eq!(outcomes(&with(ALL, None, runs))[0], Outcome::NotReproduced);
        // A difference the seeds do not resolve, and no runs at all.
        let mut runs = three(Tanh, [0.60, 0.70, 0.80], 0.1, 0.0);
        runs.extend(three(Relu, [0.61, 0.69, 0.81], 0.1, 0.0));
        let o = outcomes(&with(ALL, None, runs));
        assert_eq!((o[2].clone(), o[3].clone()), (Outcome::Partly { k: 1, n: 3 }, Outcome::NotTestable(Untestable::Unresolved)));
        assert_eq!(outcomes(&with(ALL, None, vec![]))[0], Outcome::NotTestable(Untestable::NoRuns));
        // Still rising by a point an epoch: no level yet; its gap is judged all the same.
        let runs = three(Tanh, [0.6, 0.6, 0.6], 0.1, 0.01);
        let o = outcomes(&with(ALL, None, runs));
        assert!(matches!(o[2], Outcome::NotTestable(Untestable::Rule(rules::NotApplicable::StillRising { .. }))), "{o:?}");
        assert_eq!(o[1], Outcome::Reproduced);
    }

    #[test]
    fn a_bad_observation_names_the_field() {
        let bad = ALL.replace("near = 0.7\n", "");
        let e = format!("{:#}", crate::study::Study::parse(&format!("{STUDY}{bad}"), std::path::Path::new("t.toml")).unwrap_err());
        assert!(e.contains("observations.kind") && e.contains("levels_off with `near` and `within`"), "{e}");
        let bad = ALL.replace("than = \"relu\"", "than = \"gelu\"");
        let e = format!("{:#}", crate::study::Study::parse(&format!("{STUDY}{bad}"), std::path::Path::new("t.toml")).unwrap_err());
        assert!(e.contains("`gelu` is not one of the study's functions"), "{e}");
    }
}
