//! How numbers, states, verdicts and table rows are written in the book.
//! Only formatting: the numbers come from `data`, the judgements from `rules`.

use crate::nn::arch::Architecture;
use super::data::{PLATEAU_EPOCHS as PLATEAU_WINDOW, Run, TREND_EPOCHS as TREND_WINDOW};
use super::messages::{Messages, fill};
use super::observations::{Measured, Outcome, Untestable};
use super::rules::{self, Judged, NotApplicable, RISING_SLOPE, Split, Verdict};
use super::stats::{Describe, Difference, Method};
use crate::activation::Activation;
use crate::study::spec::{Direction, Metric, Observation, ObservationKind};
use crate::train::state::RunState;
use crate::train::history::DIVERGED_LOSS;
use crate::nn::optim::{AdamConfig, OptimizerConfig};
use crate::train::config::Protocol;

/// A value with four decimals, "–" when there is none.
pub fn num(v: f64) -> String {
    if v.is_finite() { format!("{v:.4}") } else { "–".into() }
}

/// A signed difference with four decimals.
pub fn signed(v: f64) -> String {
    if v.is_finite() { format!("{v:+.4}") } else { "–".into() }
}

pub fn mean_sd(d: &Describe) -> String {
    match d.n {
        0 => "–".into(),
        1 => num(d.mean),
        _ => format!("{} ± {}", num(d.mean), num(d.sd)),
    }
}

/// The interval of an accuracy: the t interval, cut at 0 and 1 (the
/// limits of an accuracy; with few seeds a t interval can reach past them).
pub fn ci(d: &Describe) -> String {
    if d.n < 2 { "–".into() } else { format!("[{}, {}]", num(d.ci_low.max(0.0)), num(d.ci_high.min(1.0))) }
}

/// The interval of a difference-like quantity (a train − val gap, a drop):
/// signed, and not cut.
pub fn signed_ci(d: &Describe) -> String {
    if d.n < 2 { "–".into() } else { interval((d.ci_low, d.ci_high)) }
}

/// A rate seen `k` times in `n`, with its exact 95 % interval in percent.
pub fn rate(m: &Messages, k: usize, n: usize) -> String {
    let (lo, hi) = super::stats::binomial_interval(k, n);
    fill(&m.rate, &[("k", &k.to_string()), ("n", &n.to_string()), ("lo", &format!("{:.0}", lo * 100.0)), ("hi", &format!("{:.0}", hi * 100.0))])
}

/// An accuracy, saying "at chance" only when it is (the binomial band).
pub fn value_words(m: &Messages, v: f64, test_images: usize) -> String {
    let key = if rules::at_chance(v, test_images) { &m.value_at_chance } else { &m.value_plain };
    fill(key, &[("value", &format!("{v:.3}"))])
}

/// One seed's value ([`value_words`]).
pub fn seed_value(m: &Messages, seed: u64, v: f64, test_images: usize) -> String {
    fill(&m.seed_value, &[("seed", &seed.to_string()), ("value", &value_words(m, v, test_images))])
}

/// A list of seeds, each run of three or more consecutive ones as a range:
/// 2, 3, 4, 5, 9 reads "2–5, 9" (a legend of nine seeds fits its chart).
pub fn seeds(m: &Messages, seeds: &[u64]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < seeds.len() {
        let mut j = i;
        while j + 1 < seeds.len() && seeds[j + 1] == seeds[j] + 1 {
            j += 1;
        }
        if j >= i + 2 {
            parts.push(format!("{}–{}", seeds[i], seeds[j]));
        } else {
            parts.extend(seeds[i..=j].iter().map(|s| s.to_string()));
        }
        i = j + 1;
    }
    parts.join(&m.list_separator)
}

/// Seeds that did not learn, with their values: those at chance together
/// ("seeds 2–10: 0.100–0.105, at chance"), any other one by one.
pub fn seed_values(m: &Messages, seeds_and_values: &[(u64, f64)], test_images: usize) -> String {
    let (chance, other): (Vec<_>, Vec<_>) = seeds_and_values.iter().copied().partition(|(_, v)| rules::at_chance(*v, test_images));
    let mut parts = Vec::new();
    if chance.len() >= 2 {
        let (lo, hi) = chance.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), (_, v)| (l.min(*v), h.max(*v)));
        let range = if format!("{lo:.3}") == format!("{hi:.3}") { format!("{lo:.3}") } else { format!("{lo:.3}–{hi:.3}") };
        let ids: Vec<u64> = chance.iter().map(|(s, _)| *s).collect();
        parts.push(fill(&m.seeds_value, &[("seeds", &seeds(m, &ids)), ("value", &fill(&m.value_at_chance, &[("value", &range)]))]));
    } else {
        parts.extend(chance.iter().map(|(s, v)| seed_value(m, *s, *v, test_images)));
    }
    parts.extend(other.iter().map(|(s, v)| seed_value(m, *s, *v, test_images)));
    parts.join(&m.list_separator)
}

/// "seed 1 at epoch 6, seed 3 at epoch 7".
fn diverged_seeds(m: &Messages, seeds: &[(u64, usize)]) -> String {
    seeds.iter().map(|(s, e)| fill(&m.na_diverged_seed, &[("seed", &s.to_string()), ("epoch", &e.to_string())])).collect::<Vec<_>>().join(&m.list_separator)
}

/// "diverged on 2 of 3 seeds (seed 1 at epoch 6, seed 3 at epoch 7)".
pub fn diverged(m: &Messages, seeds: &[(u64, usize)], of: usize) -> String {
    fill(&m.diverged_note, &[("k", &seeds.len().to_string()), ("n", &of.to_string()), ("which", &diverged_seeds(m, seeds))])
}

/// The seeds of a function that did not learn, set aside.
pub fn split(m: &Messages, sp: &Split, test_images: usize) -> String {
    fill(&m.split_note, &[("function", sp.function.name()), ("k", &sp.did_not_learn.len().to_string()), ("n", &sp.of.to_string()), ("seeds", &seed_values(m, &sp.did_not_learn, test_images))])
}

/// How a claim was compared: the method, or "identical on every seed"; and
/// the seeds set aside because they did not learn.
pub fn judged_method(m: &Messages, j: &Judged, test_images: usize) -> String {
    let mut out = match (&j.difference, j.exact) {
        (Some(d), true) if d.estimate == 0.0 && j.both_at_chance => fill(&m.exact_identical_at_chance, &[("n", &d.n.to_string()), ("chance", &rules::AT_CHANCE_MAX.to_string())]),
        (Some(d), true) if d.estimate == 0.0 => fill(&m.exact_identical, &[("n", &d.n.to_string())]),
        (Some(d), true) => fill(&m.exact_same_difference, &[("n", &d.n.to_string()), ("d", &signed(d.estimate))]),
        (Some(d), false) => method(m, d),
        (None, _) => "–".into(),
    };
    for sp in &j.splits {
        out.push_str(&m.clause_separator);
        out.push_str(&split(m, sp, test_images));
    }
    out
}

pub fn interval((lo, hi): (f64, f64)) -> String {
    format!("[{}, {}]", signed(lo), signed(hi))
}

pub fn p_value(p: Option<f64>) -> String {
    match p {
        Some(p) if p < 0.0001 => "< 0.0001".into(),
        Some(p) => format!("{p:.4}"),
        None => "–".into(),
    }
}

pub fn method(m: &Messages, d: &Difference) -> String {
    match d.method {
        Method::Paired => fill(&m.method_paired, &[("n", &d.n.to_string())]),
        Method::Welch => fill(&m.method_welch, &[("n", &d.n.to_string())]),
    }
}

/// One cell of a Markdown table: a `|` inside would split it.
pub fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A table row from cells (escaped).
pub fn row<S: AsRef<str>>(cells: &[S]) -> String {
    format!("| {} |\n", cells.iter().map(|c| cell(c.as_ref())).collect::<Vec<_>>().join(" | "))
}

/// A table's header and rule.
pub fn header<S: AsRef<str>>(cells: &[S]) -> String {
    format!("{}|{}\n", row(cells), "---|".repeat(cells.len()))
}

pub fn verdict(m: &Messages, v: &Verdict) -> String {
    match v {
        Verdict::Supported => m.verdict_supported.clone(),
        Verdict::Contradicted => m.verdict_contradicted.clone(),
        Verdict::Inconclusive => m.verdict_inconclusive.clone(),
        Verdict::TooFewSeeds { have, needed: Some(n) } => fill(&m.verdict_too_few_seeds, &[("have", &have.to_string()), ("needed", &n.to_string())]),
        Verdict::TooFewSeeds { have: 0, needed: None } => m.verdict_no_runs.clone(),
        // A difference with a spread (two seeds or more): more than the most counted.
        Verdict::TooFewSeeds { have, needed: None } if *have >= 2 => fill(&m.verdict_too_few_seeds_many, &[("have", &have.to_string()), ("max", &rules::MAX_SEEDS.to_string())]),
        Verdict::TooFewSeeds { have, needed: None } => fill(&m.verdict_too_few_seeds_unknown, &[("have", &have.to_string())]),
        Verdict::NotApplicable(why) => fill(&m.verdict_not_applicable, &[("why", &not_applicable(m, why))]),
    }
}

pub fn not_applicable(m: &Messages, why: &NotApplicable) -> String {
    match why {
        NotApplicable::DidNotLearn { function, seeds } => fill(&m.na_did_not_learn, &[("function", function.name()), ("seeds", &seeds.to_string()), ("chance", &rules::AT_CHANCE_MAX.to_string())]),
        NotApplicable::StillRising { function, slope, low, high } => fill(
            &m.na_still_rising,
            &[
                ("function", function.name()),
                ("slope", &format!("{slope:+.4}")),
                ("interval", &interval((*low, *high))),
                ("threshold", &RISING_SLOPE.to_string()),
                ("window", &epochs(m, TREND_WINDOW)),
            ],
        ),
        NotApplicable::TooShort { function, epochs: n } => fill(&m.na_too_short, &[("function", function.name()), ("epochs", &epochs(m, *n)), ("window", &epochs(m, TREND_WINDOW))]),
        NotApplicable::OneEpoch { .. } => m.na_one_epoch.clone(),
        NotApplicable::Diverged { function, seeds, of } => {
            fill(&m.na_diverged, &[("function", function.name()), ("k", &seeds.len().to_string()), ("n", &of.to_string()), ("which", &diverged_seeds(m, seeds)), ("diverged_loss", &DIVERGED_LOSS.to_string())])
        }
        NotApplicable::ControlMatches { control, baseline, low, high } => fill(&m.na_control_matches, &[("control", control.name()), ("baseline", baseline.name()), ("interval", &interval((*low, *high)))]),
    }
}

/// Runs at least this long level off enough for the mean of their last
/// epochs to be called a plateau; shorter ones say what it is.
pub const PLATEAU_MIN_EPOCHS: usize = 4 * PLATEAU_WINDOW;

/// The name of the mean of the last epochs at a protocol of `n` epochs:
/// "plateau val_accuracy" for long runs, "mean val_accuracy of the last k
/// epochs" for short ones, "val_accuracy after 1 epoch" for one.
pub fn last_epochs_measure(m: &Messages, n: usize) -> String {
    match n {
        1 => m.metric_after_one.clone(),
        n if n < PLATEAU_MIN_EPOCHS => fill(&m.metric_mean_last, &[("window", &epochs(m, PLATEAU_WINDOW.min(n)))]),
        _ => m.metric_plateau.clone(),
    }
}

/// A metric's name at a protocol of `n` epochs.
pub fn metric(m: &Messages, metric: Metric, n: usize) -> String {
    match metric {
        Metric::PlateauValAccuracy => last_epochs_measure(m, n),
        Metric::BestValAccuracy => m.metric_best.clone(),
        Metric::FinalValAccuracy => m.metric_final.clone(),
        Metric::OverfitGap => m.metric_gap.clone(),
        Metric::FirstValAccuracy => m.metric_first.clone(),
    }
}

pub fn claim(m: &Messages, what: Metric, expect: Direction, than: Activation, n: usize) -> String {
    let template = match expect {
        Direction::Higher => &m.expect_higher,
        Direction::Lower => &m.expect_lower,
        Direction::Similar => &m.expect_similar,
    };
    fill(template, &[("metric", &metric(m, what, n)), ("than", than.name())])
}

/// An observation's outcome in words.
pub fn outcome(m: &Messages, o: &Outcome) -> String {
    match o {
        Outcome::Reproduced => m.obs_reproduced.clone(),
        Outcome::Partly { k, n } => fill(&m.obs_partly, &[("k", &k.to_string()), ("n", &n.to_string())]),
        Outcome::NotReproduced => m.obs_not_reproduced.clone(),
        Outcome::NotTestable(why) => fill(
            &m.obs_not_testable,
            &[(
                "why",
                &match why {
                    Untestable::NoRuns => m.untestable_no_runs.clone(),
                    Untestable::Shorter { epochs: n, article } => fill(&m.untestable_shorter, &[("epochs", &epochs(m, *n)), ("article", &epochs(m, *article))]),
                    Untestable::Rule(na) => not_applicable(m, na),
                    Untestable::Unresolved => m.untestable_unresolved.clone(),
                },
            )],
        ),
    }
}

/// What was measured for an observation, seed by seed where the rule is,
/// with its interval, and the seeds set aside.
pub fn measured(m: &Messages, o: &Observation, what: &Measured, test_images: usize) -> String {
    let set_aside = |sp: Option<&Split>| sp.map_or(String::new(), |sp| format!("{}{}", m.clause_separator, split(m, sp, test_images)));
    match what {
        Measured::None => "–".into(),
        Measured::Stall { seeds, epochs: n } => seeds
            .iter()
            .map(|s| match (s.stalled, s.left_at) {
                (false, _) => fill(&m.stall_seed_no_stall, &[("seed", &s.seed.to_string())]),
                (true, Some(e)) => fill(&m.stall_seed_left, &[("seed", &s.seed.to_string()), ("epoch", &e.to_string())]),
                (true, None) => fill(&m.stall_seed_never, &[("seed", &s.seed.to_string()), ("epochs", &epochs(m, *n))]),
            })
            .collect::<Vec<_>>()
            .join(&m.clause_separator),
        Measured::Gap(g, sp) => format!("{}{}", fill(&m.measured_gap, &[("gap", &format!("{} {}", mean_sd(g), signed_ci(g)))]), set_aside(sp.as_ref())),
        Measured::GapBySeed { seeds, window, split: sp } => {
            let each: Vec<String> = seeds.iter().map(|s| fill(&m.gap_seed, &[("seed", &s.seed.to_string()), ("min", &format!("{:.3}", s.min)), ("max", &format!("{:.3}", s.max))])).collect();
            format!("{}{}", fill(&m.measured_gap_by_seed, &[("window", &epochs(m, *window)), ("seeds", &each.join(&m.list_separator))]), set_aside(sp.as_ref()))
        }
        Measured::Levels(levels, sp) => {
            let each: Vec<String> = levels.iter().map(|(s, v)| seed_value(m, *s, *v, test_images)).collect();
            format!("{}{}", fill(&m.measured_levels, &[("levels", &each.join(&m.list_separator))]), set_aside(sp.as_ref()))
        }
        Measured::Difference(d, splits) => {
            let than = match &o.kind {
                ObservationKind::Below { than } => than.name(),
                _ => "",
            };
            let mut out = fill(&m.measured_difference, &[("measure", &m.metric_plateau), ("than", than), ("d", &signed(d.estimate)), ("interval", &interval(d.interval(super::stats::ALPHA))), ("method", &method(m, d))]);
            for sp in splits {
                out.push_str(&m.clause_separator);
                out.push_str(&split(m, sp, test_images));
            }
            out
        }
    }
}

/// A run's state in words.
pub fn state(m: &Messages, state: &RunState) -> String {
    match state {
        RunState::Missing => m.state_missing.clone(),
        RunState::Partial(k) => fill(&m.state_partial, &[("epoch", &k.to_string())]),
        RunState::Running(who) => fill(&m.state_running, &[("who", who)]),
        RunState::Finished(_) => m.state_done.clone(),
        RunState::Diverged(_, e) => fill(&m.state_diverged, &[("epoch", &e.to_string())]),
        RunState::Corrupt(why) => fill(&m.state_corrupt, &[("why", why)]),
    }
}

/// A run's state, or why its artifacts are not used.
pub fn run_state(m: &Messages, run: &Run) -> String {
    match &run.problem {
        Some(p) => fill(&m.state_unusable, &[("why", p)]),
        None => state(m, &run.state),
    }
}

/// A protocol in words: epochs, batch, and how many training and test images.
pub fn protocol(m: &Messages, p: &Protocol) -> String {
    let mut s = fill(
        &m.protocol_cell,
        &[
            ("epochs", &epochs(m, p.epochs)),
            ("batch", &p.batch_size.to_string()),
            ("train", &p.train_limit.map_or(m.all_train.clone(), |n| n.to_string())),
            ("test", &p.test_limit.map_or(m.all_test.clone(), |n| n.to_string())),
        ],
    );
    match p.optimizer {
        OptimizerConfig::Adam(a) if a.learning_rate != AdamConfig::KERAS.learning_rate => s.push_str(&fill(&m.protocol_learning_rate, &[("lr", &format!("{:e}", a.learning_rate))])),
        OptimizerConfig::Adam(_) => {}
        OptimizerConfig::Sgd(c) => s.push_str(&fill(&m.protocol_sgd, &[("lr", &c.learning_rate.to_string()), ("momentum", &c.momentum.to_string())])),
    }
    if p.network != Architecture::Article {
        s.push_str(&fill(&m.protocol_network, &[("network", p.network.name())]));
    }
    s
}

/// The optimizer and all its settings, for the Conditions table.
pub fn optimizer(m: &Messages, o: &OptimizerConfig) -> String {
    match o {
        OptimizerConfig::Adam(a) => fill(&m.optimizer_detail, &[("lr", &a.learning_rate.to_string()), ("b1", &a.beta1.to_string()), ("b2", &a.beta2.to_string()), ("eps", &a.epsilon.to_string())]),
        OptimizerConfig::Sgd(c) => fill(&m.optimizer_detail_sgd, &[("lr", &c.learning_rate.to_string()), ("momentum", &c.momentum.to_string())]),
    }
}

/// A function's definition in symbols, the same in every language (a
/// built-in's formula, or the expression and slope of a defined one).
pub fn formula(a: Activation) -> String {
    let text = match a {
        Activation::Custom(_) => {
            let d = a.definition().expect("a custom activation has a definition");
            return match d.grad {
                Some(g) => format!("f = `{}`, f′ = `{g}`", d.expr),
                None => format!("`{}`", d.expr),
            };
        }
        Activation::Relu => "max(x, 0)",
        Activation::Tanh => "tanh(x)",
        Activation::SignedSqrt => "sign(x)·√|x|",
        Activation::SoftplusLinear => "2·softplus(x) (x ≤ 0), x + 2·ln 2 (x > 0)",
        Activation::ReflectionLinear => "−x (x ≤ 0), x (x > 0)",
        Activation::ZeroFitLinear => "x − min(x)",
    };
    text.to_string()
}

/// A number of epochs with its unit ("1 epoch", "8 epochs").
pub fn epochs(m: &Messages, n: usize) -> String {
    if n == 1 { m.epoch_count_one.clone() } else { fill(&m.epoch_count, &[("n", &n.to_string())]) }
}

/// A duration given in hours, in the unit that reads well: whole minutes
/// under two hours, whole hours above.
pub fn duration(m: &Messages, hours: f64) -> String {
    if hours * 60.0 < 2.0 {
        fill(&m.duration_seconds, &[("n", &format!("{:.0}", (hours * 3600.0).max(1.0)))])
    } else if hours < 2.0 {
        fill(&m.duration_minutes, &[("n", &format!("{:.0}", (hours * 60.0).max(1.0)))])
    } else {
        fill(&m.duration_hours, &[("n", &format!("{hours:.0}"))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_stays_inside_its_cell() {
        assert_eq!(row(&["mean |∂loss/∂input|", "x"]), "| mean \\|∂loss/∂input\\| | x |\n");
        assert_eq!(header(&["a", "b"]), "| a | b |\n|---|---|\n");
    }

    #[test]
    fn seeds_at_chance_are_listed_together() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("book/i18n");
        let en = Messages::load(&dir, "en").unwrap();
        // 10,000 test images: chance is 0.1 within the binomial band.
        let v = [(2, 0.1), (3, 0.1), (4, 0.1), (5, 0.1049), (7, 0.1)];
        assert_eq!(seed_values(&en, &v, 10_000), "seeds 2–5, 7: 0.100–0.105, at chance");
        let v = [(2, 0.1), (3, 0.13), (4, 0.1)];
        assert_eq!(seed_values(&en, &v, 10_000), "seeds 2, 4: 0.100, at chance, seed 3: 0.130");
        assert_eq!(seed_values(&en, &[(5, 0.1)], 10_000), "seed 5: 0.100, at chance");
    }

    #[test]
    fn consecutive_seeds_read_as_a_range() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("book/i18n");
        let en = Messages::load(&dir, "en").unwrap();
        assert_eq!(seeds(&en, &[2, 3, 4, 5, 6, 7, 8, 9, 10]), "2–10");
        assert_eq!(seeds(&en, &[1, 2, 4, 5, 6, 9]), format!("1{0}2{0}4–6{0}9", en.list_separator));
        assert_eq!(seeds(&en, &[3]), "3");
        assert_eq!(seeds(&en, &[]), "");
    }

    /// One epoch is singular in every edition; the sentences that take a
    /// count of epochs carry no unit of their own ("last 1 epochs").
    #[test]
    fn a_count_of_epochs_carries_its_unit() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("book/i18n");
        let en = Messages::load(&dir, "en").unwrap();
        assert_eq!((epochs(&en, 1), epochs(&en, 8)), ("1 epoch".to_string(), "8 epochs".to_string()));
        for lang in Messages::languages(&dir).unwrap() {
            let m = Messages::load(&dir, &lang).unwrap();
            let one = epochs(&m, 1);
            for (key, text) in m.entries() {
                for name in ["window", "epochs", "article"] {
                    let after = fill(text, &[(name, &one)]);
                    assert!(!after.contains(&format!("{one} {}", &m.epoch_count.replace("{n} ", ""))), "{lang}.toml `{key}` repeats the unit after {{{name}}}: {after}");
                }
            }
        }
    }
}
