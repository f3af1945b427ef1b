//! How numbers, states, verdicts and table rows are written in the book.
//! Only formatting: the numbers come from `data`, the judgements from `rules`.

use super::data::{PLATEAU_EPOCHS as PLATEAU_WINDOW, Run};
use super::messages::{Messages, fill};
use super::observations::{Measured, Outcome, Untestable};
use super::rules::{NotApplicable, Verdict};
use super::stats::{Describe, Difference, Method};
use crate::activation::Activation;
use crate::study::spec::{Direction, Metric, Observation, ObservationKind};
use crate::train::state::RunState;
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

pub fn ci(d: &Describe) -> String {
    if d.n < 2 { "–".into() } else { format!("[{}, {}]", num(d.ci_low), num(d.ci_high)) }
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
        Verdict::TooFewSeeds { have, needed: None } => fill(&m.verdict_too_few_seeds_unknown, &[("have", &have.to_string())]),
        Verdict::NotApplicable(why) => fill(&m.verdict_not_applicable, &[("why", &not_applicable(m, why))]),
    }
}

pub fn not_applicable(m: &Messages, why: &NotApplicable) -> String {
    match why {
        NotApplicable::AtChance { function, seed, value } => fill(&m.na_at_chance, &[("function", function.name()), ("seed", &seed.to_string()), ("value", &format!("{value:.3}"))]),
        NotApplicable::StillRising { function, seed, rise } => {
            fill(&m.na_still_rising, &[("function", function.name()), ("seed", &seed.to_string()), ("rise", &format!("{rise:+.3}")), ("window", &epochs(m, PLATEAU_WINDOW))])
        }
        NotApplicable::TooShort { function, epochs: n } => fill(&m.na_too_short, &[("function", function.name()), ("epochs", &epochs(m, *n)), ("window", &epochs(m, 2 * PLATEAU_WINDOW))]),
    }
}

pub fn metric(m: &Messages, metric: Metric) -> &str {
    match metric {
        Metric::PlateauValAccuracy => &m.metric_plateau,
        Metric::BestValAccuracy => &m.metric_best,
        Metric::FinalValAccuracy => &m.metric_final,
        Metric::OverfitGap => &m.metric_gap,
        Metric::FirstValAccuracy => &m.metric_first,
    }
}

pub fn claim(m: &Messages, what: Metric, expect: Direction, than: Activation) -> String {
    let template = match expect {
        Direction::Higher => &m.expect_higher,
        Direction::Lower => &m.expect_lower,
        Direction::Similar => &m.expect_similar,
    };
    fill(template, &[("metric", metric(m, what)), ("than", than.name())])
}

/// An observation's outcome in words.
pub fn outcome(m: &Messages, o: &Outcome) -> String {
    match o {
        Outcome::Reproduced => m.obs_reproduced.clone(),
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

/// What was measured for an observation, with its interval.
pub fn measured(m: &Messages, o: &Observation, what: &Measured) -> String {
    let with_ci = |d: &Describe| format!("{}{}", mean_sd(d), if d.n >= 2 { format!(" {}", ci(d)) } else { String::new() });
    match what {
        Measured::None => "–".into(),
        Measured::Stall { first, plateau } => fill(&m.measured_stall, &[("first", &with_ci(first)), ("plateau", &with_ci(plateau))]),
        Measured::Gap(g) => fill(&m.measured_gap, &[("gap", &with_ci(g))]),
        Measured::Plateau(p) => fill(&m.measured_plateau, &[("plateau", &with_ci(p))]),
        Measured::Difference(d) => {
            let than = match &o.kind {
                ObservationKind::Below { than } => than.name(),
                _ => "",
            };
            fill(&m.measured_difference, &[("than", than), ("d", &signed(d.estimate)), ("interval", &interval(d.interval(super::stats::ALPHA))), ("method", &method(m, d))])
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
    if hours < 2.0 {
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
