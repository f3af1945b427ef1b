//! The judgement: every verdict and every generated sentence of the book
//! comes from a rule here, with its thresholds named once. A rule first says
//! whether it applies (a model that never learned has no overfitting gap; a
//! curve still rising has no peak), then decides from an interval, never
//! from a bare difference of means.
//!
//! Claims are tested as follows. Each function's value per seed is compared
//! with the other side's: paired by seed when both ran the same seeds (they
//! share the data order and the initial weights), by Welch otherwise.
//! "higher"/"lower" is a two-sided t test of a zero difference; "similar"
//! is two one-sided tests against the study's margin (supported) or a test
//! that the difference lies beyond it (contradicted). Each claim
//! contributes the p-value of its decisive test, and Holm's correction over
//! the study's claims keeps the chance of any wrong verdict at or below
//! [`ALPHA`].
//!
//! Seeds that split — some learned, some never left chance — are never
//! averaged together: a claim is judged on the seeds where both sides
//! learned, and the seeds that did not are reported beside it ([`Split`]).
//! Values identical on every seed are reported as such, without a test.

use super::data::{Measures, StudyData};
use super::stats::{self, ALPHA, Describe, Difference, difference, holm, seeds_for_equivalence};
use crate::activation::Activation;
use crate::study::spec::{Claim, Direction, Metric};

/// CIFAR-10 has ten classes: a model that has learned nothing scores 0.1.
pub const CHANCE_ACCURACY: f64 = 0.1;
/// A run whose accuracy is at most this has learned nothing worth
/// measuring: it "did not learn" (a constant predictor scores 0.1).
pub const AT_CHANCE_MAX: f64 = 0.15;
/// The z of a two-sided 95 % normal interval.
const Z95: f64 = 1.959_964;
/// A curve is still rising when the 95 % interval of its val_accuracy
/// slope over the last [`TREND_EPOCHS`](super::data::TREND_EPOCHS) epochs lies above this per epoch
/// (half an accuracy point per plateau window).
pub const RISING_SLOPE: f64 = 0.001;
/// A train − validation accuracy gap beyond this is overfitting.
pub const OVERFIT_GAP: f64 = 0.05;
/// A layer has gone flat when its mean pre-activation is below this: there
/// 2·softplus's slope, 2σ(x), is under 0.014 (its slope at 0 is 1), and
/// relu's is exactly 0 for most units.
pub const FLAT_PRE_MEAN: f64 = -5.0;
/// The step at which each activated layer's mean pre-activation is first
/// below [`FLAT_PRE_MEAN`] in a run's steps.csv (`None`: not in the steps
/// logged), in layer order.
pub fn flat_steps(run: &super::data::Run) -> Vec<Option<f64>> {
    let steps = run.step_column("step");
    crate::nn::arch::ACTIVATED.iter().map(|l| run.step_column(&format!("{}_pre_mean", l.name)).iter().position(|v| *v < FLAT_PRE_MEAN).map(|i| steps[i])).collect()
}

/// The layers (indices into `ACTIVATED`) that go flat first in a run: those
/// at the earliest of [`flat_steps`] (a tie gives each). Empty where none does.
pub fn flat_first(flat: &[Option<f64>]) -> Vec<usize> {
    let Some(first) = flat.iter().flatten().copied().reduce(f64::min) else { return vec![] };
    flat.iter().enumerate().filter(|(_, s)| **s == Some(first)).map(|(i, _)| i).collect()
}

/// A best val_accuracy this far above the plateau is a peak that fell back.
const PEAK_DROP: f64 = 0.01;
/// No study suggests running more seeds than this.
pub const MAX_SEEDS: usize = 100;

/// Whether an accuracy measured on `test_images` images is at chance: within
/// the binomial 95 % band around 0.1 (±0.0059 on 10,000 images). Values
/// above the band but at most [`AT_CHANCE_MAX`] did not learn, and are not
/// called "at chance".
pub fn at_chance(v: f64, test_images: usize) -> bool {
    (v - CHANCE_ACCURACY).abs() <= chance_band(test_images)
}

/// The half-width of the binomial 95 % band around chance.
pub fn chance_band(test_images: usize) -> f64 {
    Z95 * (CHANCE_ACCURACY * (1.0 - CHANCE_ACCURACY) / test_images.max(1) as f64).sqrt()
}

/// Why a rule does not apply to a function's runs.
#[derive(Clone, Debug, PartialEq)]
pub enum NotApplicable {
    /// No run of the function learned (each at most [`AT_CHANCE_MAX`]).
    DidNotLearn { function: Activation, seeds: usize },
    /// The function's val_accuracy is still rising at the end: the 95 %
    /// interval of its slope per epoch, (low, high), lies above [`RISING_SLOPE`].
    StillRising { function: Activation, slope: f64, low: f64, high: f64 },
    /// Too few epochs to tell whether a curve has levelled off.
    TooShort { function: Activation, epochs: usize },
    /// Runs of one epoch: their training accuracy is the running mean over
    /// that epoch, from untrained weights and with dropout on, so training −
    /// validation accuracy measures the start of training, not overfitting.
    OneEpoch { function: Activation },
    /// Some seeds of the function diverged: training stopped at the first
    /// epoch whose loss or val_loss was not finite (seed, epoch), of `of`
    /// seeds. A diverged run is a result, shown as such; it is not averaged
    /// with the others or left out, so the function is not compared.
    Diverged { function: Activation, seeds: Vec<(u64, usize)>, of: usize },
    /// A design's control (the cell with neither property) is not told
    /// apart from the function with both: (low, high) is the 95 % interval
    /// of control − function.
    ControlMatches { control: Activation, baseline: Activation, low: f64, high: f64 },
}

/// A function whose seeds split: those that did not learn (with the value
/// that says so), of how many.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub function: Activation,
    pub did_not_learn: Vec<(u64, f64)>,
    pub of: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Supported,
    Contradicted,
    /// The interval allows both; more seeds could decide.
    Inconclusive,
    /// "similar" cannot be shown with this many seeds at the spread seen:
    /// `needed` seeds would give an 80 % chance (None: more than
    /// [`MAX_SEEDS`], or unknown).
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

/// Whether a run learned, as a metric sees it: its accuracy by that metric
/// (the plateau, for an overfitting gap) is above [`AT_CHANCE_MAX`].
pub fn learned(m: &Measures, metric: Metric) -> bool {
    let by = if metric == Metric::OverfitGap { m.plateau_val_accuracy } else { value(m, metric) };
    by > AT_CHANCE_MAX
}

/// (seed, value) of a metric for each usable run of `a`.
pub fn values(data: &StudyData, a: Activation, metric: Metric) -> Vec<(u64, f64)> {
    data.measures(a).into_iter().map(|(s, m)| (s, value(&m, metric))).collect()
}

/// The seeds of `a` that did not learn by `metric`, when others did.
pub fn split(data: &StudyData, a: Activation, metric: Metric) -> Option<Split> {
    let ms = data.measures(a);
    let did_not: Vec<(u64, f64)> = ms.iter().filter(|(_, m)| !learned(m, metric)).map(|(s, m)| (*s, if metric == Metric::OverfitGap { m.plateau_val_accuracy } else { value(m, metric) })).collect();
    (!did_not.is_empty() && did_not.len() < ms.len()).then_some(Split { function: a, did_not_learn: did_not, of: ms.len() })
}

/// The values of `a` that may be averaged by `metric`: those of the seeds
/// that learned when its seeds split, all of them otherwise.
pub fn cohort(data: &StudyData, a: Activation, metric: Metric) -> Vec<(u64, f64)> {
    let sp = split(data, a, metric);
    values(data, a, metric).into_iter().filter(|(s, _)| !sp.as_ref().is_some_and(|sp| sp.did_not_learn.iter().any(|x| x.0 == *s))).collect()
}

/// What [`comparable`] gives: `a`'s (seed, value) pairs, `b`'s, and the
/// splits that set seeds aside.
pub type Comparable = (Vec<(u64, f64)>, Vec<(u64, f64)>, Vec<Split>);

/// The values of `a` and `b` that one comparison may use: the seeds where
/// both learned when either side splits (paired on the seeds both have, as
/// far as two are left), and the splits that set seeds aside. An
/// overfitting gap of a function that never learned is no comparison.
pub fn comparable(data: &StudyData, a: Activation, b: Activation, metric: Metric) -> Result<Comparable, NotApplicable> {
    for f in [a, b] {
        let seeds = data.diverged(f);
        if !seeds.is_empty() {
            return Err(NotApplicable::Diverged { function: f, seeds, of: data.usable(f).count() });
        }
    }
    if metric == Metric::OverfitGap {
        for f in [a, b] {
            let ms = data.measures(f);
            if ms.iter().any(|(_, m)| m.epochs < 2) {
                return Err(NotApplicable::OneEpoch { function: f });
            }
            if !ms.is_empty() && ms.iter().all(|(_, m)| !learned(m, metric)) {
                return Err(NotApplicable::DidNotLearn { function: f, seeds: ms.len() });
            }
        }
    }
    let splits: Vec<Split> = [split(data, a, metric), split(data, b, metric)].into_iter().flatten().collect();
    let (mut va, mut vb) = (cohort(data, a, metric), cohort(data, b, metric));
    if !splits.is_empty() {
        let common: Vec<u64> = va.iter().map(|x| x.0).filter(|s| vb.iter().any(|y| y.0 == *s)).collect();
        if common.len() >= 2 {
            va.retain(|x| common.contains(&x.0));
            vb.retain(|x| common.contains(&x.0));
        }
    }
    Ok((va, vb, splits))
}

/// Whether the runs of `a` (those that learned, if its seeds split) have
/// levelled off: the 95 % interval of the mean val_accuracy slope over the
/// last [`TREND_EPOCHS`] epochs — over seeds with a t interval, or from the
/// one seed's residuals — must not lie above [`RISING_SLOPE`].
pub fn levelled_off(data: &StudyData, a: Activation) -> Result<(), NotApplicable> {
    let sp = split(data, a, Metric::PlateauValAccuracy);
    let ms: Vec<Measures> = data.measures(a).into_iter().filter(|(s, _)| !sp.as_ref().is_some_and(|sp| sp.did_not_learn.iter().any(|x| x.0 == *s))).map(|x| x.1).collect();
    let Some(first) = ms.first() else { return Ok(()) };
    if first.trend.0.is_nan() {
        return Err(NotApplicable::TooShort { function: a, epochs: first.epochs });
    }
    let (slope, low, high) = match ms.as_slice() {
        [one] => {
            let (b, se, df) = one.trend;
            let half = stats::t_quantile_upper(ALPHA / 2.0, df) * se;
            (b, b - half, b + half)
        }
        many => {
            let d = stats::describe(&many.iter().map(|m| m.trend.0).collect::<Vec<_>>());
            (d.mean, d.ci_low, d.ci_high)
        }
    };
    if low > RISING_SLOPE {
        return Err(NotApplicable::StillRising { function: a, slope, low, high });
    }
    Ok(())
}

/// When a metric means something for a function's runs. Accuracies always
/// do (not learning is a result); an overfitting gap needs a model that
/// learned (a run that never left chance has none) and more than one epoch,
/// whether or not its curve still rises: a gap seen is a gap, and a rising
/// curve is not overfitting.
pub fn applies(data: &StudyData, a: Activation, metric: Metric) -> Result<(), NotApplicable> {
    comparable(data, a, a, metric).map(|_| ())
}

/// One claim, judged.
#[derive(Clone, Debug)]
pub struct Judged {
    pub function: Activation,
    pub claim: Claim,
    pub difference: Option<Difference>,
    /// The p-value of the decisive test, before and after Holm (None for
    /// values identical on every seed, which need no test).
    pub p: Option<f64>,
    pub p_holm: Option<f64>,
    pub verdict: Verdict,
    /// Seeds set aside because they did not learn (on either side).
    pub splits: Vec<Split>,
    /// Every seed gave the same difference (zero spread): decided without a test.
    pub exact: bool,
    /// Both sides at chance on every seed (an accuracy at most
    /// [`AT_CHANCE_MAX`]): the claim compares two stalls, and says so.
    pub both_at_chance: bool,
}

impl Judged {
    /// The raw 95 % interval of the difference.
    pub fn interval(&self) -> Option<(f64, f64)> {
        self.difference.filter(|_| !self.exact).map(|d| d.interval(ALPHA))
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

/// The verdict on a difference that is the same on every seed: no test,
/// the values themselves decide.
fn exact(expect: Direction, d: &Difference, margin: f64) -> Verdict {
    let holds = match expect {
        Direction::Higher => d.estimate > 0.0,
        Direction::Lower => d.estimate < 0.0,
        Direction::Similar => d.estimate.abs() < margin,
    };
    if holds { Verdict::Supported } else { Verdict::Contradicted }
}

/// Judge the claims of the study's functions (its predictions) at once.
pub fn judge(data: &StudyData) -> Vec<Judged> {
    let claims: Vec<(Activation, &Claim)> = data.study.functions.iter().flat_map(|f| f.claims.iter().map(move |c| (f.activation, c))).collect();
    judge_claims(data, &claims)
}

/// Judge a family of claims (function, claim) at once: Holm over those that
/// can be tested.
pub fn judge_claims(data: &StudyData, claims: &[(Activation, &Claim)]) -> Vec<Judged> {
    let margin = data.study.similar_margin;
    let mut out = Vec::new();
    let mut significant = Vec::new();
    for &(function, c) in claims {
        let mut j = Judged { function, claim: c.clone(), difference: None, p: None, p_holm: None, verdict: Verdict::Inconclusive, splits: vec![], exact: false, both_at_chance: false };
        match comparable(data, function, c.than, c.metric) {
            Err(why) => j.verdict = Verdict::NotApplicable(why),
            Ok((a, b, splits)) => {
                j.both_at_chance = c.metric != Metric::OverfitGap && a.iter().chain(&b).all(|x| x.1 <= AT_CHANCE_MAX);
                j.splits = splits;
                j.difference = difference(&a, &b);
                match &j.difference {
                    None => j.verdict = Verdict::TooFewSeeds { have: a.len().min(b.len()), needed: None },
                    Some(d) if d.se == 0.0 => {
                        j.exact = true;
                        j.verdict = exact(c.expect, d, margin);
                    }
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
    let adjusted = holm(&significant.iter().map(|(i, _)| out[*i].p.unwrap()).collect::<Vec<_>>());
    // Seeds for similarity are counted at Holm's strictest step, α over the
    // claims tested: enough whatever the other claims show.
    let strictest = ALPHA / significant.len().max(1) as f64;
    for ((i, v), p) in significant.into_iter().zip(adjusted) {
        let j = &mut out[i];
        j.p_holm = Some(p);
        let d = j.difference.unwrap();
        j.verdict = if p <= ALPHA {
            v
        } else if j.claim.expect == Direction::Similar && v == Verdict::Supported {
            // Only where the difference leans towards similar: more seeds
            // could show it, and how many give an 80 % chance is said. A
            // difference leaning beyond the margin is inconclusive, and "too
            // few seeds to show similarity" would point the reader the wrong
            // way; so is one these seeds had that chance of showing.
            match seeds_for_equivalence(d.sd, margin, MAX_SEEDS, strictest) {
                Some(n) if n <= d.n => Verdict::Inconclusive,
                needed => Verdict::TooFewSeeds { have: d.n, needed },
            }
        } else {
            Verdict::Inconclusive
        };
    }
    out
}

/// What the overfitting gap says about a function's seeds that learned.
#[derive(Clone, Debug, PartialEq)]
pub enum Overfitting {
    NotApplicable(NotApplicable),
    /// The gap's interval lies above [`OVERFIT_GAP`].
    Overfits(Describe),
    /// The gap's interval lies below it.
    Little(Describe),
    /// The interval straddles it, or there is one seed.
    Unclear(Describe),
}

/// The overfitting gap at the end of the runs (rising or not), over the
/// seeds that learned.
pub fn overfitting(data: &StudyData, a: Activation) -> Option<Overfitting> {
    if data.measures(a).is_empty() {
        return None;
    }
    if let Err(why) = applies(data, a, Metric::OverfitGap) {
        return Some(Overfitting::NotApplicable(why));
    }
    let d = stats::describe(&cohort(data, a, Metric::OverfitGap).into_iter().map(|x| x.1).collect::<Vec<_>>());
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

/// Whether val_accuracy peaked and fell back: per seed that learned, best − plateau.
#[derive(Clone, Debug, PartialEq)]
pub enum Peak {
    NotApplicable(NotApplicable),
    /// The drop's interval lies above [`PEAK_DROP`]; the mean best epoch.
    FellBack {
        drop: Describe,
        epoch: f64,
    },
    /// No drop that the seeds resolve.
    Held(Describe),
}

pub fn peak(data: &StudyData, a: Activation) -> Option<Peak> {
    let sp = split(data, a, Metric::PlateauValAccuracy);
    let m: Vec<Measures> = data.measures(a).into_iter().filter(|(s, _)| !sp.as_ref().is_some_and(|sp| sp.did_not_learn.iter().any(|x| x.0 == *s))).map(|x| x.1).collect();
    if m.is_empty() {
        return None;
    }
    if let Err(why) = applies(data, a, Metric::OverfitGap).and_then(|_| levelled_off(data, a)) {
        return Some(Peak::NotApplicable(why));
    }
    let drop = stats::describe(&m.iter().map(|x| x.best_val_accuracy - x.plateau_val_accuracy).collect::<Vec<_>>());
    let epoch = m.iter().map(|x| x.best_epoch as f64).sum::<f64>() / m.len() as f64;
    Some(if drop.n >= 2 && drop.ci_low > PEAK_DROP { Peak::FellBack { drop, epoch } } else { Peak::Held(drop) })
}

/// A function's first epoch: stalled (at most [`AT_CHANCE_MAX`] after it) on
/// every seed or on some, behind the baseline (the paired interval of
/// first-epoch val_accuracy lies below 0), or neither.
#[derive(Clone, Debug, PartialEq)]
pub enum Start {
    /// After epoch 1 every seed is at most [`AT_CHANCE_MAX`]: the values' range.
    Stalled { low: f64, high: f64, seeds: usize },
    /// Some seeds stalled, the others did not.
    SomeStalled(Split),
    Behind { own: Describe, baseline: Describe, difference: Difference },
}

pub fn slow_start(data: &StudyData, a: Activation) -> Option<Start> {
    let own = values(data, a, Metric::FirstValAccuracy);
    if own.is_empty() {
        return None;
    }
    if own.iter().all(|x| x.1 <= AT_CHANCE_MAX) {
        let (low, high) = own.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| (l.min(x.1), h.max(x.1)));
        return Some(Start::Stalled { low, high, seeds: own.len() });
    }
    if let Some(sp) = split(data, a, Metric::FirstValAccuracy) {
        return Some(Start::SomeStalled(sp));
    }
    let base = data.study.baseline;
    if a == base {
        return None;
    }
    let (own, b, _) = comparable(data, a, base, Metric::FirstValAccuracy).ok()?;
    let diff = difference(&own, &b)?;
    let d = |v: &[(u64, f64)]| stats::describe(&v.iter().map(|x| x.1).collect::<Vec<_>>());
    (diff.interval(ALPHA).1 < 0.0).then(|| Start::Behind { own: d(&own), baseline: d(&b), difference: diff })
}

/// Whether an early measure tells the seeds that stayed at chance from those
/// that left it. The rule: one threshold puts every seed of one group below
/// every seed of the other, and so clean a split would arise by chance with
/// probability at most [`ALPHA`] if the measure had nothing to do with the
/// outcome: `2 / C(n, k)` for `k` of `n` seeds in one group (either group
/// may be the lower).
#[derive(Clone, Debug, PartialEq)]
pub enum Prediction {
    /// A group is empty: nothing to tell apart.
    OneOutcome,
    /// The two groups' ranges overlap.
    Overlaps,
    /// Split cleanly, with the chance of so clean a split.
    Separates { chance: f64 },
    /// Split cleanly, but so few seeds split so by chance more often than [`ALPHA`].
    TooFewToTell { chance: f64 },
}

pub fn predicts(stayed: &[f64], left: &[f64]) -> Prediction {
    if stayed.is_empty() || left.is_empty() {
        return Prediction::OneOutcome;
    }
    let range = |v: &[f64]| v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| (l.min(*x), h.max(*x)));
    let ((lo_s, hi_s), (lo_l, hi_l)) = (range(stayed), range(left));
    if !(hi_s < lo_l || hi_l < lo_s) {
        return Prediction::Overlaps;
    }
    let (k, n) = (stayed.len(), stayed.len() + left.len());
    // C(n, k) as a float: exact for any seed count a study has.
    let ways = (1..=k).fold(1.0, |c, i| c * (n - k + i) as f64 / i as f64);
    let chance = (2.0 / ways).min(1.0);
    if chance <= ALPHA { Prediction::Separates { chance } } else { Prediction::TooFewToTell { chance } }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::data::constructed::{data, run, three};
    use crate::report::data::{Epoch, Run};
    use crate::train::state::RunState;

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
        assert!(j.iter().all(|j| j.splits.is_empty()));
        assert!(j[0].p_holm.unwrap() >= j[0].p.unwrap() && !j[0].exact);
        // The gaps differ by exactly −0.08 on every seed: decided without a test.
        assert!(j[1].exact && j[1].p.is_none());
        // The same numbers the other way round are contradicted.
        let mut runs = three(Relu, [0.649, 0.751, 0.70], 0.02, 0.0);
        runs.extend(three(Tanh, [0.60, 0.70, 0.65], 0.10, 0.0));
        runs.extend(three(SignedSqrt, [0.70, 0.80, 0.75], 0.10, 0.0));
        assert_eq!(verdicts(&data(runs)), [Verdict::Contradicted, Verdict::Contradicted, Verdict::Contradicted]);
    }

    #[test]
    fn noise_is_inconclusive_and_similar_says_how_many_seeds_for_80_percent() {
        // Paired differences +0.06, −0.05, +0.01: the interval spans 0 widely.
        let mut runs = three(Relu, [0.60, 0.70, 0.65], 0.10, 0.0);
        runs.extend(three(Tanh, [0.66, 0.65, 0.66], 0.10, 0.0));
        runs.extend(three(SignedSqrt, [0.66, 0.65, 0.66], 0.10, 0.0));
        let v = verdicts(&data(runs));
        assert_eq!(v[0], Verdict::Inconclusive);
        // sd of the differences 0.055: an 80 % chance of showing it (true difference 0)
        // needs n = 67 at α = 0.05, and n = 82 at α/2, Holm's strictest step over the two
        // claims tested (the overfitting gaps differ by the same amount on every seed: no
        // test). The approximation gives 0.795 at 81 and 0.802 at 82; a simulation of
        // 20,000 studies of normal differences, 0.798 and 0.803.
        assert_eq!(v[2], Verdict::TooFewSeeds { have: 3, needed: Some(82) });
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
    fn seeds_that_split_are_judged_apart() {
        // tanh learns on seeds 1 and 3 (0.05 above relu there) and never leaves chance on seed 2.
        let mut runs = three(Relu, [0.60, 0.70, 0.65], 0.10, 0.0);
        runs.extend([run(Tanh, 1, 0.651, 0.02, 0.0), run(Tanh, 2, 0.1, 0.0, 0.0), run(Tanh, 3, 0.699, 0.02, 0.0)]);
        runs.extend(three(SignedSqrt, [0.601, 0.699, 0.652], 0.10, 0.0));
        let d = data(runs);
        let j = judge(&d);
        // "higher": on the two seeds that learned, paired, +0.051 and +0.049.
        let diff = j[0].difference.unwrap();
        assert_eq!((diff.method, diff.n), (stats::Method::Paired, 2));
        assert!((diff.estimate - 0.05).abs() < 1e-9, "{diff:?}");
        assert_eq!(j[0].verdict, Verdict::Supported);
        assert_eq!(j[0].splits, vec![Split { function: Tanh, did_not_learn: vec![(2, 0.1)], of: 3 }]);
        // The overfitting gap too is that of the seeds that learned.
        assert!(!matches!(j[1].verdict, Verdict::NotApplicable(_)), "{:?}", j[1].verdict);
        assert_eq!(cohort(&d, Tanh, Metric::PlateauValAccuracy).len(), 2);
        // No seed learned: a gap means nothing; accuracies are still compared.
        let mut runs = three(Relu, [0.60, 0.70, 0.65], 0.10, 0.0);
        runs.extend((1..=3).map(|s| run(Tanh, s, 0.1, 0.0, 0.0)));
        runs.extend(three(SignedSqrt, [0.601, 0.699, 0.652], 0.10, 0.0));
        let d = data(runs);
        let v = verdicts(&d);
        assert_eq!(v[0], Verdict::Contradicted);
        assert_eq!(v[1], Verdict::NotApplicable(NotApplicable::DidNotLearn { function: Tanh, seeds: 3 }));
        assert!(split(&d, Tanh, Metric::PlateauValAccuracy).is_none(), "all at chance is no split");
    }

    /// A function that diverged on any seed is judged as "diverged on k of
    /// n", in every claim that involves it, and never averaged.
    #[test]
    fn a_diverged_seed_is_a_result_not_a_value() {
        let mut runs = three(Relu, [0.60, 0.70, 0.65], 0.10, 0.0);
        runs.extend(runs_with_tanh_seed_2_diverged());
        runs.extend(three(SignedSqrt, [0.601, 0.699, 0.652], 0.10, 0.0));
        let d = data(runs);
        let v = verdicts(&d);
        let diverged = Verdict::NotApplicable(NotApplicable::Diverged { function: Tanh, seeds: vec![(2, 7)], of: 3 });
        assert_eq!((&v[0], &v[1]), (&diverged, &diverged));
        assert!(!matches!(v[2], Verdict::NotApplicable(_)), "signed_sqrt against relu is still judged: {:?}", v[2]);
        // Nor is it in any mean, band or diagnostic: it is set aside, drawn alone.
        let (cohort, set_aside) = d.cohorts(Tanh);
        assert_eq!((cohort.iter().map(|r| r.seed).collect::<Vec<_>>(), set_aside.iter().map(|r| r.seed).collect::<Vec<_>>()), (vec![1, 3], vec![2]));
        assert_eq!(d.diverged(Tanh), vec![(2, 7)]);
    }

    fn runs_with_tanh_seed_2_diverged() -> Vec<Run> {
        let mut tanh = three(Tanh, [0.651, 0.75, 0.699], 0.02, 0.0);
        let RunState::Finished(rec) = tanh[1].state.clone() else { unreachable!() };
        tanh[1].state = RunState::Diverged(rec, 7);
        tanh
    }

    #[test]
    fn values_identical_on_every_seed_need_no_test() {
        let study = crate::report::data::constructed::STUDY.replace("expect = \"higher\"", "expect = \"similar\"");
        let runs: Vec<Run> = (1..=3).map(|s| run(Relu, s, 0.1, 0.0, 0.0)).chain((1..=3).map(|s| run(Tanh, s, 0.1, 0.0, 0.0))).chain(three(SignedSqrt, [0.6, 0.7, 0.65], 0.1, 0.0)).collect();
        let d = crate::report::data::constructed::data_of(&study, runs);
        let j = &judge(&d)[0];
        assert!(j.exact && j.p.is_none() && j.p_holm.is_none() && j.interval().is_none(), "{j:?}");
        assert_eq!(j.verdict, Verdict::Supported);
        // Both sides at chance (0.1) on every seed: the verdict says it compares two stalls.
        assert!(j.both_at_chance && !judge(&d)[2].both_at_chance);
    }

    /// A run whose last ten val_accuracies are `tail` (the rest flat before them).
    fn with_tail(a: Activation, seed: u64, tail: &[f64]) -> Run {
        let mut r = run(a, seed, tail[0], 0.0, 0.0);
        let n = r.history.len();
        for (e, v) in r.history[n - tail.len()..].iter_mut().zip(tail) {
            *e = Epoch { loss: 1.0, accuracy: *v, val_loss: 1.0, val_accuracy: *v };
        }
        r
    }

    #[test]
    fn still_rising_needs_an_interval_not_one_seeds_rise() {
        // Flat at 0.74 with the epoch-to-epoch noise these runs show (sd about 0.01):
        // one seed's last five epochs average +0.006 above the five before.
        let noise = [[0.003, -0.011, 0.008, -0.004, 0.001, 0.009, -0.002, 0.012, -0.006, 0.010], [-0.008, 0.004, 0.011, -0.010, 0.002, -0.003, 0.013, 0.001, -0.004, 0.007], [0.006, -0.004, -0.009, 0.010, -0.002, 0.005, -0.012, 0.008, 0.003, -0.001]];
        let flat: Vec<Run> = noise.iter().enumerate().map(|(i, n)| with_tail(Tanh, i as u64 + 1, &n.iter().map(|x| 0.74 + x).collect::<Vec<_>>())).collect();
        let rise = |r: &Run| {
            let v: Vec<f64> = r.history.iter().rev().take(10).map(|e| e.val_accuracy).collect();
            v[..5].iter().sum::<f64>() / 5.0 - v[5..].iter().sum::<f64>() / 5.0
        };
        assert!(rise(&flat[0]) > 0.005, "the old rule's bare difference would call it rising: {}", rise(&flat[0]));
        assert_eq!(levelled_off(&data(flat.clone()), Tanh), Ok(()));
        // One seed alone: its own residuals give the interval.
        assert_eq!(levelled_off(&data(vec![flat[0].clone()]), Tanh), Ok(()));
        // Truly rising, one point an epoch, with the same noise: rising, on any number of seeds.
        let rising: Vec<Run> = noise.iter().enumerate().map(|(i, n)| with_tail(Tanh, i as u64 + 1, &n.iter().enumerate().map(|(e, x)| 0.6 + 0.01 * e as f64 + x).collect::<Vec<_>>())).collect();
        assert!(matches!(levelled_off(&data(rising.clone()), Tanh), Err(NotApplicable::StillRising { low, .. }) if low > RISING_SLOPE));
        assert!(matches!(levelled_off(&data(vec![rising[1].clone()]), Tanh), Err(NotApplicable::StillRising { .. })));
    }

    /// A one-epoch run's training accuracy is a running mean from untrained
    /// weights: its gap is no overfitting measure, whatever its size. From
    /// two epochs on it is judged.
    #[test]
    fn a_gap_after_one_epoch_is_not_judged() {
        let truncated = |epochs: usize| -> StudyData {
            let mut runs = three(Relu, [0.60, 0.70, 0.65], 0.10, 0.0);
            runs.extend(three(Tanh, [0.66, 0.65, 0.66], -0.10, 0.0));
            runs.iter_mut().for_each(|r| r.history.truncate(epochs));
            data(runs)
        };
        let d = truncated(1);
        assert!(matches!(overfitting(&d, Tanh), Some(Overfitting::NotApplicable(NotApplicable::OneEpoch { function: Tanh }))));
        assert!(matches!(&verdicts(&d)[1], Verdict::NotApplicable(NotApplicable::OneEpoch { .. })), "{:?}", verdicts(&d));
        assert!(matches!(overfitting(&truncated(2), Tanh), Some(Overfitting::Little(_))));
    }

    #[test]
    fn a_gap_of_a_run_that_never_learned_is_not_judged_but_a_rising_one_is() {
        // relu at chance on seed 2 only: its gap is that of seeds 1 and 3.
        let mut runs = vec![run(Relu, 1, 0.6, 0.1, 0.0), run(Relu, 2, 0.1, 0.0, 0.0), run(Relu, 3, 0.6, 0.1, 0.0)];
        runs.extend(three(Tanh, [0.66, 0.65, 0.66], 0.02, 0.0));
        runs.extend(three(SignedSqrt, [0.66, 0.65, 0.66], 0.10, 0.0));
        let d = data(runs);
        assert!(matches!(overfitting(&d, Relu), Some(Overfitting::Overfits(g)) if g.n == 2));
        assert!(slow_start(&d, Tanh).is_none());
        // tanh still rising by 0.01 an epoch: no peak, but its gap is what it is.
        let mut runs = three(Relu, [0.60, 0.70, 0.65], 0.10, 0.0);
        runs.extend(three(Tanh, [0.3, 0.3, 0.3], 0.02, 0.01));
        runs.extend(three(SignedSqrt, [0.66, 0.65, 0.66], 0.10, 0.0));
        let d = data(runs);
        assert!(matches!(&verdicts(&d)[1], Verdict::Supported), "{:?}", verdicts(&d));
        assert!(matches!(peak(&d, Tanh), Some(Peak::NotApplicable(NotApplicable::StillRising { .. }))));
        assert!(matches!(overfitting(&d, Tanh), Some(Overfitting::Little(_))));
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
        assert!(matches!(slow_start(&slow, Tanh), Some(Start::Stalled { seeds: 3, .. })));
        // Some seeds stall, the others not.
        let mixed = data(vec![run(Tanh, 1, 0.1, 0.0, 0.0), run(Tanh, 2, 0.6, 0.0, 0.0), run(Tanh, 3, 0.6, 0.0, 0.0)]);
        assert!(matches!(slow_start(&mixed, Tanh), Some(Start::SomeStalled(s)) if s.did_not_learn.len() == 1));
    }

    #[test]
    fn at_chance_is_within_the_binomial_band() {
        assert!(at_chance(0.1000, 10_000) && at_chance(0.1055, 10_000));
        // 0.110 and 0.119 are 3.3 and 6.3 standard errors above chance: they did not learn, but are not at chance.
        assert!(!at_chance(0.110, 10_000) && !at_chance(0.119, 10_000));
        assert!((chance_band(10_000) - 0.00588).abs() < 1e-5);
    }

    /// Clean splits by hand: 1 of 3 splits cleanly by chance 2/3 of the
    /// time, 3 of 15 only 2/455; overlapping ranges never predict.
    #[test]
    fn an_early_measure_predicts_only_a_split_that_chance_rarely_gives() {
        assert_eq!(predicts(&[-9.0], &[]), Prediction::OneOutcome);
        assert_eq!(predicts(&[-9.0, -2.0], &[-3.0, -1.0]), Prediction::Overlaps);
        let Prediction::TooFewToTell { chance } = predicts(&[-9.0], &[-3.0, -1.0]) else { panic!() };
        assert!((chance - 2.0 / 3.0).abs() < 1e-12);
        let left: Vec<f64> = (0..12).map(|i| -(i as f64) / 4.0).collect();
        let Prediction::Separates { chance } = predicts(&[-9.0, -7.0, -8.0], &left) else { panic!() };
        assert!((chance - 2.0 / 455.0).abs() < 1e-12);
        // Either group may be the lower one.
        assert!(matches!(predicts(&[5.0, 6.0, 7.0], &left), Prediction::Separates { .. }));
    }
}
