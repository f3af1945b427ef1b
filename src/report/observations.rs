//! What the article *observed*, checked against our runs: each observation
//! of a study file (`[[observations]]`) is reproduced, not reproduced, or
//! not testable at this protocol, by the rules below and the thresholds of
//! [`super::rules`].

use super::data::StudyData;
use super::rules::{self, AT_CHANCE_MAX, Overfitting};
use super::stats::{ALPHA, Describe, Difference, describe, difference};
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
    /// The seeds do not resolve it (an interval straddling the bound, one seed, or seeds that disagree).
    Unresolved,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Reproduced,
    NotReproduced,
    NotTestable(Untestable),
}

/// What was measured for an observation.
#[derive(Clone, Debug, PartialEq)]
pub enum Measured {
    None,
    /// First-epoch and plateau val_accuracy over seeds.
    Stall {
        first: Describe,
        plateau: Describe,
    },
    Gap(Describe),
    Plateau(Describe),
    Difference(Difference),
}

pub fn check(data: &StudyData, o: &Observation) -> (Measured, Outcome) {
    let ms: Vec<_> = data.measures(o.function).into_iter().map(|x| x.1).collect();
    if ms.is_empty() {
        return (Measured::None, Outcome::NotTestable(Untestable::NoRuns));
    }
    let d = |f: fn(&super::data::Measures) -> f64| describe(&ms.iter().map(f).collect::<Vec<_>>());
    match &o.kind {
        ObservationKind::StallsThenLearns => {
            let (first, plateau) = (d(|m| m.first_val_accuracy), d(|m| m.plateau_val_accuracy));
            let measured = Measured::Stall { first, plateau };
            let stalled = ms.iter().filter(|m| m.first_val_accuracy <= AT_CHANCE_MAX).count();
            let learned = ms.iter().filter(|m| m.first_val_accuracy <= AT_CHANCE_MAX && m.plateau_val_accuracy > AT_CHANCE_MAX).count();
            let outcome = if stalled == 0 {
                Outcome::NotReproduced
            } else if learned == ms.len() {
                Outcome::Reproduced
            } else if data.protocol.epochs < Protocol::ARTICLE.epochs {
                Outcome::NotTestable(Untestable::Shorter { epochs: data.protocol.epochs, article: Protocol::ARTICLE.epochs })
            } else if learned == 0 && stalled == ms.len() {
                Outcome::NotReproduced
            } else {
                Outcome::NotTestable(Untestable::Unresolved)
            };
            (measured, outcome)
        }
        ObservationKind::Overfits | ObservationKind::NoOverfitting => {
            let want = matches!(o.kind, ObservationKind::Overfits);
            match rules::overfitting(data, o.function) {
                Some(Overfitting::Overfits(g)) => (Measured::Gap(g), if want { Outcome::Reproduced } else { Outcome::NotReproduced }),
                Some(Overfitting::Little(g)) => (Measured::Gap(g), if want { Outcome::NotReproduced } else { Outcome::Reproduced }),
                Some(Overfitting::Unclear(g)) => (Measured::Gap(g), Outcome::NotTestable(Untestable::Unresolved)),
                Some(Overfitting::NotApplicable(why)) => (Measured::Gap(d(|m| m.overfit_gap)), Outcome::NotTestable(Untestable::Rule(why))),
                None => (Measured::None, Outcome::NotTestable(Untestable::NoRuns)),
            }
        }
        ObservationKind::LevelsOff { near, within } => {
            let p = d(|m| m.plateau_val_accuracy);
            if let Err(why) = rules::levelled_off(data, o.function) {
                return (Measured::Plateau(p), Outcome::NotTestable(Untestable::Rule(why)));
            }
            let (lo, hi) = (near - within, near + within);
            let outcome = if p.n < 2 {
                Outcome::NotTestable(Untestable::Unresolved)
            } else if p.ci_low >= lo && p.ci_high <= hi {
                Outcome::Reproduced
            } else if p.ci_high < lo || p.ci_low > hi {
                Outcome::NotReproduced
            } else {
                Outcome::NotTestable(Untestable::Unresolved)
            };
            (Measured::Plateau(p), outcome)
        }
        ObservationKind::Below { than } => {
            let v = |a| rules::values(data, a, Metric::PlateauValAccuracy);
            match difference(&v(o.function), &v(*than)) {
                None => (Measured::Plateau(d(|m| m.plateau_val_accuracy)), Outcome::NotTestable(Untestable::Unresolved)),
                Some(diff) => {
                    let (lo, hi) = diff.interval(ALPHA);
                    let outcome = if hi < 0.0 {
                        Outcome::Reproduced
                    } else if lo > 0.0 {
                        Outcome::NotReproduced
                    } else {
                        Outcome::NotTestable(Untestable::Unresolved)
                    };
                    (Measured::Difference(diff), outcome)
                }
            }
        }
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
        // Learning from the start, levelling at 0.85 above relu, with no gap: none of it holds.
        let mut runs = three(Tanh, [0.84, 0.85, 0.86], 0.0, 0.0);
        runs.extend(three(Relu, [0.77, 0.78, 0.79], 0.1, 0.0));
        let d = with(ALL, None, runs);
        assert_eq!(outcomes(&d), vec![Outcome::NotReproduced; 4]);
    }

    #[test]
    fn what_these_runs_cannot_show_is_not_testable() {
        // Still at chance after 20 of the article's 50 epochs: the stall may yet end.
        let runs: Vec<_> = (1..=3).map(|s| run(Tanh, s, 0.1, 0.0, 0.0)).chain(three(Relu, [0.77, 0.78, 0.79], 0.1, 0.0)).collect();
        let d = with(ALL, Some(20), runs);
        let o = outcomes(&d);
        assert_eq!(o[0], Outcome::NotTestable(Untestable::Shorter { epochs: 20, article: 50 }));
        assert!(matches!(o[1], Outcome::NotTestable(Untestable::Rule(rules::NotApplicable::AtChance { .. }))), "{o:?}");
        // At the article's length the same runs never learned: not reproduced.
        let runs: Vec<_> = (1..=3).map(|s| run(Tanh, s, 0.1, 0.0, 0.0)).collect();
        assert_eq!(outcomes(&with(ALL, None, runs))[0], Outcome::NotReproduced);
        // A level straddling the range, and no runs at all.
        let mut runs = three(Tanh, [0.60, 0.70, 0.80], 0.1, 0.0);
        runs.extend(three(Relu, [0.61, 0.69, 0.81], 0.1, 0.0));
        let o = outcomes(&with(ALL, None, runs));
        assert_eq!((o[2].clone(), o[3].clone()), (Outcome::NotTestable(Untestable::Unresolved), Outcome::NotTestable(Untestable::Unresolved)));
        assert_eq!(outcomes(&with(ALL, None, vec![]))[0], Outcome::NotTestable(Untestable::NoRuns));
        // Still rising: no level yet.
        let runs = three(Tanh, [0.6, 0.6, 0.6], 0.1, 0.01);
        assert!(matches!(outcomes(&with(ALL, None, runs))[2], Outcome::NotTestable(Untestable::Rule(rules::NotApplicable::StillRising { .. }))));
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
