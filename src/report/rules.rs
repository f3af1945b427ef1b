//! The judgement: every verdict and every generated sentence of the book
//! comes from a rule here, with its thresholds named once. A rule first says
//! whether it applies (a model at chance has no overfitting gap; a curve
//! still rising has no peak), then decides from an interval, never from a
//! bare difference of means.
//!
//! Claims are tested as follows. Each function's value per seed is compared
//! with the other side's: paired by seed when both ran the same seeds (they
//! share the data order and the initial weights), by Welch otherwise.
//! "higher"/"lower" is a two-sided t test of a zero difference; "similar"
//! is two one-sided tests against the study's margin (supported) or a test
//! that the difference lies beyond the margin (contradicted). Each claim
//! contributes the p-value of its decisive test, and Holm's correction over
//! the study's claims keeps the chance of any wrong verdict at or below
//! [`ALPHA`].

use super::data::{Measures, StudyData};
use super::stats::{self, ALPHA, Difference, difference, holm, seeds_for_equivalence};
use crate::activation::Activation;
use crate::study::spec::{Claim, Direction, Metric};

/// CIFAR-10 has ten classes: a model that has learned nothing scores 0.1.
pub const CHANCE_ACCURACY: f64 = 0.1;
/// A run whose plateau val_accuracy is at most this has learned nothing
/// worth measuring (a constant predictor scores 0.1).
pub const AT_CHANCE_MAX: f64 = 0.15;
/// A curve is still rising when its plateau exceeds the window before it by
/// more than this (half an accuracy point).
pub const STILL_RISING: f64 = 0.005;
/// A train − validation accuracy gap beyond this is overfitting.
pub const OVERFIT_GAP: f64 = 0.05;
/// A best val_accuracy this far above the plateau is a peak that fell back.
const PEAK_DROP: f64 = 0.01;
/// No study suggests running more seeds than this.
const MAX_SEEDS: usize = 100;

/// Why a rule does not apply to a function's runs.
#[derive(Clone, Debug, PartialEq)]
pub enum NotApplicable {
    /// A run's plateau val_accuracy is at chance.
    AtChance { function: Activation, seed: u64, value: f64 },
    /// A run's val_accuracy is still rising at its last epoch.
    StillRising { function: Activation, seed: u64, rise: f64 },
    /// Too few epochs to tell whether a curve has levelled off.
    TooShort { function: Activation, epochs: usize },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Supported,
    Contradicted,
    /// The interval allows both; more seeds could decide.
    Inconclusive,
    /// "similar" cannot be reached with this many seeds at the spread seen:
    /// `needed` seeds would be (None: more than [`MAX_SEEDS`], or unknown).
    TooFewSeeds {
        have: usize,
        needed: Option<usize>,
    },
    NotApplicable(NotApplicable),
}

impl Verdict {
    pub fn key(&self) -> &'static str {
        match self {
            Verdict::Supported => "supported",
            Verdict::Contradicted => "contradicted",
            Verdict::Inconclusive => "inconclusive",
            Verdict::TooFewSeeds { .. } => "too_few_seeds",
            Verdict::NotApplicable(_) => "not_applicable",
        }
    }
}

pub fn value(m: &Measures, metric: Metric) -> f64 {
    match metric {
        Metric::PlateauValAccuracy => m.plateau_val_accuracy,
        Metric::BestValAccuracy => m.best_val_accuracy,
        Metric::FinalValAccuracy => m.final_val_accuracy,
        Metric::OverfitGap => m.overfit_gap,
        Metric::FirstValAccuracy => m.first_val_accuracy,
    }
}

/// (seed, value) of a metric for each usable run of `a`.
pub fn values(data: &StudyData, a: Activation, metric: Metric) -> Vec<(u64, f64)> {
    data.measures(a).into_iter().map(|(s, m)| (s, value(&m, metric))).collect()
}

/// Whether the runs of `a` have levelled off: the first run that has not.
pub fn levelled_off(data: &StudyData, a: Activation) -> Result<(), NotApplicable> {
    for (seed, m) in data.measures(a) {
        if m.previous_val_accuracy.is_nan() {
            return Err(NotApplicable::TooShort { function: a, epochs: m.epochs });
        }
        let rise = m.plateau_val_accuracy - m.previous_val_accuracy;
        if rise > STILL_RISING {
            return Err(NotApplicable::StillRising { function: a, seed, rise });
        }
    }
    Ok(())
}

/// Whether every run of `a` learned something: the first that did not.
fn above_chance(data: &StudyData, a: Activation) -> Result<(), NotApplicable> {
    match data.measures(a).into_iter().find(|(_, m)| m.plateau_val_accuracy <= AT_CHANCE_MAX) {
        Some((seed, m)) => Err(NotApplicable::AtChance { function: a, seed, value: m.plateau_val_accuracy }),
        None => Ok(()),
    }
}

/// When a metric means something for a function's runs. Accuracies always
/// do (being at chance is a result); an overfitting gap needs a model that
/// learned and a curve that has stopped rising.
pub fn applies(data: &StudyData, a: Activation, metric: Metric) -> Result<(), NotApplicable> {
    match metric {
        Metric::OverfitGap => above_chance(data, a).and_then(|_| levelled_off(data, a)),
        _ => Ok(()),
    }
}

/// One claim, judged.
#[derive(Clone, Debug)]
pub struct Judged {
    pub function: Activation,
    pub claim: Claim,
    pub difference: Option<Difference>,
    /// The p-value of the decisive test, before and after Holm.
    pub p: Option<f64>,
    pub p_holm: Option<f64>,
    pub verdict: Verdict,
}

impl Judged {
    /// The raw 95 % interval of the difference.
    pub fn interval(&self) -> Option<(f64, f64)> {
        self.difference.map(|d| d.interval(ALPHA))
    }
}

/// The decisive p-value of a claim and the verdict it gives when it is
/// significant.
fn decisive(expect: Direction, d: &Difference, margin: f64) -> (f64, Verdict) {
    let two_sided = (2.0 * d.p_above(0.0).min(d.p_below(0.0))).min(1.0);
    let right_way = |up: bool| if (d.estimate > 0.0) == up { Verdict::Supported } else { Verdict::Contradicted };
    match expect {
        Direction::Higher => (two_sided, right_way(true)),
        Direction::Lower => (two_sided, right_way(false)),
        Direction::Similar => {
            let equivalent = d.p_equivalent(margin);
            let beyond = (2.0 * d.p_above(margin).min(d.p_below(-margin))).min(1.0);
            if equivalent <= beyond { (equivalent, Verdict::Supported) } else { (beyond, Verdict::Contradicted) }
        }
    }
}

/// Judge every claim of the study at once (Holm over those that can be tested).
pub fn judge(data: &StudyData) -> Vec<Judged> {
    let margin = data.study.similar_margin;
    let mut out = Vec::new();
    let mut significant = Vec::new();
    for f in &data.study.functions {
        for c in &f.claims {
            let mut j = Judged { function: f.activation, claim: c.clone(), difference: None, p: None, p_holm: None, verdict: Verdict::Inconclusive };
            let applicable = applies(data, f.activation, c.metric).and_then(|_| applies(data, c.than, c.metric));
            match applicable {
                Err(why) => j.verdict = Verdict::NotApplicable(why),
                Ok(()) => {
                    let (a, b) = (values(data, f.activation, c.metric), values(data, c.than, c.metric));
                    j.difference = difference(&a, &b);
                    match &j.difference {
                        None => j.verdict = Verdict::TooFewSeeds { have: a.len().min(b.len()), needed: None },
                        Some(d) => {
                            let (p, v) = decisive(c.expect, d, margin);
                            j.p = Some(p);
                            significant.push((out.len(), v));
                        }
                    }
                }
            }
            out.push(j);
        }
    }
    let adjusted = holm(&significant.iter().map(|(i, _)| out[*i].p.unwrap()).collect::<Vec<_>>());
    for ((i, v), p) in significant.into_iter().zip(adjusted) {
        let j = &mut out[i];
        j.p_holm = Some(p);
        let d = j.difference.unwrap();
        j.verdict = if p <= ALPHA {
            v
        } else if j.claim.expect == Direction::Similar && v == Verdict::Supported && !equivalence_reachable(&d, margin) {
            // Only where the difference leans towards similar: more seeds
            // could show it. A difference leaning beyond the margin is
            // inconclusive, and "too few seeds to show similarity" would
            // point the reader the wrong way.
            Verdict::TooFewSeeds { have: d.n, needed: seeds_for_equivalence(d.sd, margin, MAX_SEEDS).filter(|&n| n > d.n) }
        } else {
            Verdict::Inconclusive
        };
    }
    out
}

/// Whether two one-sided tests could show equivalence at this many seeds,
/// were the observed difference 0: the one-sided t half-width is within the margin.
fn equivalence_reachable(d: &Difference, margin: f64) -> bool {
    d.se.is_finite() && stats::t_quantile_upper(ALPHA, d.df) * d.se < margin
}

/// What the overfitting gap says about a function.
#[derive(Clone, Debug, PartialEq)]
pub enum Overfitting {
    NotApplicable(NotApplicable),
    /// The gap's interval lies above [`OVERFIT_GAP`].
    Overfits(stats::Describe),
    /// The gap's interval lies below it.
    Little(stats::Describe),
    /// The interval straddles it, or there is one seed.
    Unclear(stats::Describe),
}

pub fn overfitting(data: &StudyData, a: Activation) -> Option<Overfitting> {
    let v: Vec<f64> = values(data, a, Metric::OverfitGap).into_iter().map(|x| x.1).collect();
    if v.is_empty() {
        return None;
    }
    if let Err(why) = applies(data, a, Metric::OverfitGap) {
        return Some(Overfitting::NotApplicable(why));
    }
    let d = stats::describe(&v);
    Some(if d.n < 2 {
        Overfitting::Unclear(d)
    } else if d.ci_low > OVERFIT_GAP {
        Overfitting::Overfits(d)
    } else if d.ci_high < OVERFIT_GAP {
        Overfitting::Little(d)
    } else {
        Overfitting::Unclear(d)
    })
}

/// Whether val_accuracy peaked and fell back: per seed, best − plateau.
#[derive(Clone, Debug, PartialEq)]
pub enum Peak {
    NotApplicable(NotApplicable),
    /// The drop's interval lies above [`PEAK_DROP`]; the mean best epoch.
    FellBack {
        drop: stats::Describe,
        epoch: f64,
    },
    /// No drop that the seeds resolve.
    Held(stats::Describe),
}

pub fn peak(data: &StudyData, a: Activation) -> Option<Peak> {
    let m = data.measures(a);
    if m.is_empty() {
        return None;
    }
    if let Err(why) = above_chance(data, a).and_then(|_| levelled_off(data, a)) {
        return Some(Peak::NotApplicable(why));
    }
    let drop = stats::describe(&m.iter().map(|(_, x)| x.best_val_accuracy - x.plateau_val_accuracy).collect::<Vec<_>>());
    let epoch = m.iter().map(|(_, x)| x.best_epoch as f64).sum::<f64>() / m.len() as f64;
    Some(if drop.n >= 2 && drop.ci_low > PEAK_DROP { Peak::FellBack { drop, epoch } } else { Peak::Held(drop) })
}

/// A function's first epoch: at chance, behind the baseline (the paired
/// interval of first-epoch val_accuracy lies below 0), or neither.
#[derive(Clone, Debug, PartialEq)]
pub enum Start {
    AtChance(stats::Describe),
    Behind { own: stats::Describe, baseline: stats::Describe, difference: Difference },
}

pub fn slow_start(data: &StudyData, a: Activation) -> Option<Start> {
    let first = |f: Activation| data.measures(f).into_iter().map(|(s, m)| (s, m.first_val_accuracy)).collect::<Vec<_>>();
    let own = first(a);
    let d = stats::describe(&own.iter().map(|x| x.1).collect::<Vec<_>>());
    if own.is_empty() {
        return None;
    }
    if d.mean <= AT_CHANCE_MAX {
        return Some(Start::AtChance(d));
    }
    let base = data.study.baseline;
    if a == base {
        return None;
    }
    let b = first(base);
    let diff = difference(&own, &b)?;
    (diff.interval(ALPHA).1 < 0.0).then(|| Start::Behind { own: d, baseline: stats::describe(&b.iter().map(|x| x.1).collect::<Vec<_>>()), difference: diff })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::data::constructed::{data, run, three};

    fn verdicts(d: &StudyData) -> Vec<Verdict> {
        judge(d).into_iter().map(|j| j.verdict).collect()
    }

    use Activation::{Relu, SignedSqrt, Tanh};

    #[test]
    fn supported_contradicted_and_similar() {
        // tanh 0.05 above relu on every seed (paired differences 0.049–0.051): higher is supported;
        // its gap 0.02 against relu's 0.10 is lower; signed_sqrt within ±0.003 is similar.
        let mut runs = three(Relu, [0.60, 0.70, 0.65], 0.10, 0.0);
        runs.extend(three(Tanh, [0.649, 0.751, 0.70], 0.02, 0.0));
        runs.extend(three(SignedSqrt, [0.601, 0.699, 0.652], 0.10, 0.0));
        let d = data(runs);
        let j = judge(&d);
        assert_eq!(j[0].difference.unwrap().method, stats::Method::Paired);
        assert_eq!(verdicts(&d), [Verdict::Supported, Verdict::Supported, Verdict::Supported]);
        assert!(j.iter().all(|j| j.p_holm.unwrap() >= j.p.unwrap()));
        // The same numbers the other way round are contradicted.
        let mut runs = three(Relu, [0.649, 0.751, 0.70], 0.02, 0.0);
        runs.extend(three(Tanh, [0.60, 0.70, 0.65], 0.10, 0.0));
        runs.extend(three(SignedSqrt, [0.70, 0.80, 0.75], 0.10, 0.0));
        assert_eq!(verdicts(&data(runs)), [Verdict::Contradicted, Verdict::Contradicted, Verdict::Contradicted]);
    }

    #[test]
    fn noise_is_inconclusive_and_similar_says_how_many_seeds() {
        // Paired differences +0.06, −0.05, +0.01: the interval spans 0 widely.
        let mut runs = three(Relu, [0.60, 0.70, 0.65], 0.10, 0.0);
        runs.extend(three(Tanh, [0.66, 0.65, 0.66], 0.10, 0.0));
        runs.extend(three(SignedSqrt, [0.66, 0.65, 0.66], 0.10, 0.0));
        let v = verdicts(&data(runs));
        assert_eq!(v[0], Verdict::Inconclusive);
        // sd of the differences 0.055: t(0.95, n−1)·0.055/√n < 0.02 needs n = 23.
        assert_eq!(v[2], Verdict::TooFewSeeds { have: 3, needed: Some(23) });
        // A difference leaning beyond the margin (paired −0.10, −0.40, −0.05) that the
        // seeds do not resolve is inconclusive: more seeds would not show it similar.
        let mut runs = three(Relu, [0.60, 0.70, 0.65], 0.10, 0.0);
        runs.extend(three(Tanh, [0.66, 0.65, 0.66], 0.10, 0.0));
        runs.extend(three(SignedSqrt, [0.50, 0.30, 0.60], 0.10, 0.0));
        assert_eq!(verdicts(&data(runs))[2], Verdict::Inconclusive);
        // Fewer than two seeds a side: nothing to test.
        let mut runs = vec![run(Relu, 1, 0.6, 0.1, 0.0)];
        runs.extend(three(Tanh, [0.66, 0.65, 0.66], 0.10, 0.0));
        runs.extend(three(SignedSqrt, [0.66, 0.65, 0.66], 0.10, 0.0));
        assert_eq!(verdicts(&data(runs))[0], Verdict::TooFewSeeds { have: 1, needed: None });
    }

    #[test]
    fn a_gap_at_chance_or_still_rising_is_not_judged() {
        // relu at chance on seed 2: its overfitting gap means nothing.
        let mut runs = vec![run(Relu, 1, 0.6, 0.1, 0.0), run(Relu, 2, 0.1, 0.0, 0.0), run(Relu, 3, 0.6, 0.1, 0.0)];
        runs.extend(three(Tanh, [0.66, 0.65, 0.66], 0.02, 0.0));
        runs.extend(three(SignedSqrt, [0.66, 0.65, 0.66], 0.10, 0.0));
        let d = data(runs);
        let v = verdicts(&d);
        assert!(matches!(&v[1], Verdict::NotApplicable(NotApplicable::AtChance { function: Relu, seed: 2, .. })), "{v:?}");
        assert!(matches!(overfitting(&d, Relu), Some(Overfitting::NotApplicable(_))));
        assert!(slow_start(&d, Tanh).is_none());
        // tanh still rising by 0.01 an epoch: no gap verdict, no peak.
        let mut runs = three(Relu, [0.60, 0.70, 0.65], 0.10, 0.0);
        runs.extend(three(Tanh, [0.3, 0.3, 0.3], 0.02, 0.01));
        runs.extend(three(SignedSqrt, [0.66, 0.65, 0.66], 0.10, 0.0));
        let d = data(runs);
        assert!(matches!(&verdicts(&d)[1], Verdict::NotApplicable(NotApplicable::StillRising { function: Tanh, seed: 1, .. })));
        assert!(matches!(peak(&d, Tanh), Some(Peak::NotApplicable(_))));
        assert!(matches!(overfitting(&d, Relu), Some(Overfitting::Overfits(_))));
        assert!(matches!(peak(&d, Relu), Some(Peak::Held(_))));
    }

    #[test]
    fn starts_and_peaks() {
        // tanh's first epoch is far behind relu's on every seed.
        let mut runs = three(Relu, [0.60, 0.70, 0.65], 0.0, 0.0);
        runs.extend(three(Tanh, [0.50, 0.60, 0.55], 0.0, 0.0));
        runs.extend(three(SignedSqrt, [0.60, 0.70, 0.65], 0.0, 0.0));
        let d = data(runs);
        assert!(matches!(slow_start(&d, Tanh), Some(Start::Behind { .. })));
        assert!(slow_start(&d, SignedSqrt).is_none() && slow_start(&d, Relu).is_none());
        assert!(matches!(overfitting(&d, Relu), Some(Overfitting::Little(_))));
        // A curve that peaks at epoch 10 and falls back by 0.05 levels off lower.
        let mut r = run(Tanh, 1, 0.6, 0.0, 0.0);
        for e in r.history.iter_mut().skip(10) {
            e.val_accuracy -= 0.05;
        }
        let mut runs = vec![r];
        for s in [2, 3] {
            let mut r = run(Tanh, s, 0.6 + s as f64 * 0.01, 0.0, 0.0);
            for e in r.history.iter_mut().skip(10) {
                e.val_accuracy -= 0.04 + s as f64 * 0.001;
            }
            runs.push(r);
        }
        let d = data(runs);
        assert!(matches!(peak(&d, Tanh), Some(Peak::FellBack { epoch, .. }) if epoch == 10.0), "{:?}", peak(&d, Tanh));
        let slow = data(three(Tanh, [0.1, 0.1, 0.1], 0.0, 0.0));
        assert!(matches!(slow_start(&slow, Tanh), Some(Start::AtChance(_))));
    }
}
