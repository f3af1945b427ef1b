//! Hand-written notes, with every number filled in from the runs.
//!
//! A note (`book/src/<lang>/notes/<study>[.<protocol>].md`) never types a
//! measured value: it names it with a placeholder, and `actlab report`
//! writes the value in. A placeholder that names no run, column, epoch or
//! step fails the build, and so does a decimal number (`0.69`, `3e-4`,
//! `8,192`) typed outside one, so a note cannot drift from the artifacts it
//! describes.
//!
//! `{{KIND RUN ARGUMENTS [:DECIMALS]}}`, where RUN is `function/seed-N` (a run
//! of the note's own study at its protocol) or `study/function/seed-N` (of
//! another study, at that study's own protocol):
//!
//! | placeholder | value |
//! |---|---|
//! | `{{history RUN COLUMN EPOCH}}` | history.csv (`loss accuracy val_loss val_accuracy`), EPOCH from 1 or `last` |
//! | `{{measure RUN NAME}}` | `plateau_val_accuracy best_val_accuracy best_epoch epochs overfit_gap final_val_loss first_val_accuracy left_chance` (`epochs`: those it trained, fewer where it diverged) |
//! | `{{diagnostic RUN LAYER COLUMN EPOCH}}` | diagnostics.csv, EPOCH 0 = before training |
//! | `{{step RUN COLUMN STEP}}` | steps.csv, STEP from 0 |
//! | `{{first_epoch RUN LAYER COLUMN OP VALUE}}` | the first diagnostics epoch where COLUMN OP VALUE (`< <= == >= >`) |
//! | `{{first_step RUN COLUMN OP VALUE}}` | the first logged step where it holds |
//! | `{{engine sigmoid_zero_below}}` | the largest x whose sigmoid is exactly 0 in the engine's float32 |
//! | `{{learning_rate [STUDY]}}` | the learning rate of the study's own protocol, as the book writes it (`1e-3`) |
//! | `{{claim [study/]FUNCTION FIELD}}` | the one claim the function makes in its study, as its Verdicts page judges it: `difference` (function − baseline), the raw 95 % interval's `low` and `high`, `p_holm` |
//! | `{{flat_first [study/]FUNCTION LAYER}}` | of its finished seeds with logged steps, on how many LAYER was among the first layers to go flat (the rule of the Results page's "Which layer goes flat first"): `k/n (lo–hi %)` |
//! | `{{at_chance [study/]FUNCTION}}` | of its finished seeds, how many never left chance: `k/n (lo–hi %)`, the binomial 95 % interval |
//! | `{{diverged [study/]FUNCTION}}` | of its finished seeds, how many diverged, as above |
//! | `{{stays_at_chance FUNCTION EPOCHS}}` | of its seeds with EPOCHS epochs or more (any study at the note's protocol but for the length), how many were still at chance after epoch EPOCHS, as above |
//! | `{{protocol FIELD}}` | the protocol of the note's runs: `epochs batch_size train_images test_images` |
//! | `{{published PAPER FIGURE}}` | a published figure, as the paper gives it ([`super::literature`]) |
//! | `{{slope_below [study/]FUNCTION}}` | the slope training uses at x = −1, from the function's definition (a leaky rectifier's slope below zero) |
//! | `{{function [study/]FUNCTION}}` | the function's name as code, one of its study's functions (`leaky_relu_0.01`: a name with a number in it stays out of the prose) |
//!
//! A reading that depends on the data is written both ways, and the rule
//! picks one: `{{if apart A B}}…{{else}}…{{end}}` (A, B: `[study/]FUNCTION`)
//! keeps the first text where the binomial 95 % intervals of A's and B's
//! seeds at chance (as `at_chance` prints them) do not overlap, and the
//! second where they do; `overlap A B` is the opposite; `verdict A OUTCOME`
//! keeps the first where the one claim A makes in its study has that
//! outcome (`supported`, `contradicted` or `undecided`) on the Verdicts
//! page; `stays_at_chance FUNCTION EPOCHS SIDE PERCENT` keeps the first
//! where the 95 % interval of `{{stays_at_chance FUNCTION EPOCHS}}` lies
//! wholly `below` PERCENT, wholly `above` it, or `includes` it (a share
//! the seeds cannot rule out); `diverged A all|some|none` keeps the first
//! where all, some (not all) or none of A's finished seeds diverged.
//! Conditions join with `and`. Both texts are filled and checked, so a wrong placeholder in
//! the text not shown still fails the build. Readings do not nest.
//!
//! Values print with 3 decimals (epochs and steps as integers) unless
//! `:DECIMALS` says otherwise; `:%` prints a fraction as a whole percentage. mdBook's own `{{#include …}}` is left alone.

use super::data::{Run, StudyData};
use super::literature::Literature;
use super::rules::AT_CHANCE_MAX;
use anyhow::{Result, anyhow, bail};

/// `note` with its placeholders filled from `here` (the note's study at its
/// protocol), `all` (every study, for runs of another one) and `lit` (the
/// published figures). `file` names the note in errors.
pub fn fill(note: &str, file: &str, here: &StudyData, all: &[StudyData], lit: &Literature) -> Result<String> {
    let mut out = String::with_capacity(note.len());
    let mut rest = note;
    while let Some(start) = rest.find("{{") {
        let (before, after) = rest.split_at(start);
        check_typed(before, file)?;
        out.push_str(before);
        if let Some(include) = after.strip_prefix("{{#") {
            out.push_str("{{#");
            rest = include;
            continue;
        }
        if let Some(cond) = after.strip_prefix("{{if ") {
            let (kept, next) = reading(cond, file, here, all, lit)?;
            out.push_str(&kept);
            rest = next;
            continue;
        }
        let end = after.find("}}").ok_or_else(|| anyhow!("{file}: a placeholder is not closed: `{}`", after.lines().next().unwrap_or("")))?;
        let inner = &after[2..end];
        out.push_str(&resolve(inner, here, all, lit).map_err(|e| anyhow!("{file}: {{{{{inner}}}}}: {e}"))?);
        rest = &after[end + 2..];
    }
    check_typed(rest, file)?;
    out.push_str(rest);
    Ok(out)
}

/// `{{if COND}}THEN{{else}}OTHERWISE{{end}}` (`cond` starts after `{{if `):
/// the text the rule keeps, filled, and what follows `{{end}}`.
fn reading<'a>(cond: &'a str, file: &str, here: &StudyData, all: &[StudyData], lit: &Literature) -> Result<(String, &'a str)> {
    let close = cond.find("}}").ok_or_else(|| anyhow!("{file}: `{{{{if` is not closed"))?;
    let (words, body) = (&cond[..close], &cond[close + 2..]);
    let end = body.find("{{end}}").ok_or_else(|| anyhow!("{file}: `{{{{if {words}}}}}` has no `{{{{end}}}}`"))?;
    let (branches, next) = (&body[..end], &body[end + "{{end}}".len()..]);
    if branches.contains("{{if ") {
        bail!("{file}: `{{{{if {words}}}}}` holds another `{{{{if`; readings do not nest");
    }
    let (then, otherwise) = branches.split_once("{{else}}").unwrap_or((branches, ""));
    let mut holds = true;
    let in_reading = |e: anyhow::Error| anyhow!("{file}: `{{{{if {words}}}}}`: {e}");
    for clause in words.split(" and ") {
        holds &= match clause.split_whitespace().collect::<Vec<_>>()[..] {
            ["apart", a, b] => apart(at_chance(a, here, all)?, at_chance(b, here, all)?),
            ["overlap", a, b] => !apart(at_chance(a, here, all)?, at_chance(b, here, all)?),
            ["verdict", f, outcome] => {
                verdict(f, here, all).map_err(in_reading)? == one_of(outcome, &OUTCOMES).map_err(in_reading)?
            }
            ["diverged", f, how_many] => {
                let (k, n) = diverged(f, here, all).map_err(in_reading)?;
                match one_of(how_many, &HOW_MANY).map_err(in_reading)? {
                    "all" => k == n,
                    "some" => 0 < k && k < n,
                    _ => k == 0,
                }
            }
            ["stays_at_chance", f, epochs, side, percent] => {
                let epochs: usize = epochs.parse().map_err(|_| in_reading(anyhow!("`{epochs}` is not a number of epochs")))?;
                let share = percent.parse::<f64>().ok().filter(|p| (0.0..=100.0).contains(p)).ok_or_else(|| in_reading(anyhow!("`{percent}` is not a percentage from 0 to 100")))? / 100.0;
                let (k, n) = stays_at_chance(f, epochs, here, all).map_err(in_reading)?;
                interval_side(super::stats::binomial_interval(k, n), share, one_of(side, &SIDES).map_err(in_reading)?)
            }
            _ => bail!(
                "{file}: `{{{{if {words}}}}}`: a condition is `apart A B`, `overlap A B`, `verdict A {}`, `diverged A {}` (A, B: `[study/]FUNCTION`) or `stays_at_chance FUNCTION EPOCHS {} PERCENT`, joined by `and`",
                OUTCOMES.join("|"),
                HOW_MANY.join("|"),
                SIDES.join("|")
            ),
        };
    }
    let (then, otherwise) = (fill(then, file, here, all, lit)?, fill(otherwise, file, here, all, lit)?);
    Ok((if holds { then } else { otherwise }, next))
}

/// A decimal number typed by hand (outside code spans), `0.69`, `1e-3` or
/// `8,192`, is a value that should have been a placeholder.
fn check_typed(text: &str, file: &str) -> Result<()> {
    let number = |c: char| c.is_ascii_digit() || matches!(c, '.' | ',' | 'e' | '-' | '+');
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            continue; // inside a code span
        }
        let b = part.as_bytes();
        for j in 1..b.len().saturating_sub(1) {
            let fraction = b[j] == b'.' && b[j - 1].is_ascii_digit() && b[j + 1].is_ascii_digit();
            // An exponent: digits, `e`, an optional sign, digits; not inside a word (`e8-b64`, `n8192`).
            let exponent = b[j] == b'e' && b[j - 1].is_ascii_digit() && {
                let start = part[..j].rfind(|c: char| !c.is_ascii_digit()).map_or(0, |k| k + 1);
                let after = &b[j + 1..];
                let digits = if matches!(after[0], b'-' | b'+') { &after[1..] } else { after };
                digits.first().is_some_and(u8::is_ascii_digit) && !part[..start].ends_with(|c: char| c.is_alphanumeric() || c == '_')
            };
            // Digits grouped by thousands: a comma and exactly three digits.
            let grouped = b[j] == b',' && b[j - 1].is_ascii_digit() && b.len() >= j + 4 && b[j + 1..j + 4].iter().all(u8::is_ascii_digit) && !b.get(j + 4).is_some_and(u8::is_ascii_digit);
            if fraction || exponent || grouped {
                let from = part[..j].rfind(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | ','))).map_or(0, |k| k + 1);
                let to = part[j + 1..].find(|c: char| !number(c)).map_or(part.len(), |k| j + 1 + k);
                bail!("{file}: `{}` is typed by hand; name the value with a placeholder (see `actlab::report::notes`)", part[from..to].trim_end_matches(['.', ',', '-', '+']));
            }
        }
    }
    Ok(())
}

fn resolve(inner: &str, here: &StudyData, all: &[StudyData], lit: &Literature) -> Result<String> {
    let mut words: Vec<&str> = inner.split_whitespace().collect();
    let percent = words.last() == Some(&":%");
    if percent {
        words.pop();
    }
    let decimals = match words.last().and_then(|w| w.strip_prefix(':')) {
        Some(d) => {
            let d = d.parse::<usize>().map_err(|_| anyhow!("`:{d}` is not a number of decimals"))?;
            words.pop();
            Some(d)
        }
        None => None,
    };
    let real = |v: f64| if percent { format!("{:.0} %", v * 100.0) } else { format!("{v:.*}", decimals.unwrap_or(3)) };
    let whole = |v: usize| match decimals {
        Some(d) => format!("{:.*}", d, v as f64),
        None => v.to_string(),
    };
    let args = |n: usize, usage: &str| -> Result<()> {
        if words.len() != n {
            bail!("expected `{usage}`");
        }
        Ok(())
    };
    match words.first().copied() {
        Some("published") => {
            args(3, "published PAPER FIGURE")?;
            if percent || decimals.is_some() {
                bail!("a published figure prints as the paper gives it: no `:DECIMALS` or `:%`");
            }
            Ok(lit.figure(words[1], words[2])?.to_string())
        }
        Some("engine") => {
            args(2, "engine sigmoid_zero_below")?;
            match words[1] {
                "sigmoid_zero_below" => Ok(real(sigmoid_zero_below() as f64)),
                other => bail!("no engine constant `{other}` (there is sigmoid_zero_below)"),
            }
        }
        Some("learning_rate") => {
            let data = match words.len() {
                1 => here,
                2 => all.iter().find(|d| d.study.name == words[1]).ok_or_else(|| anyhow!("no study `{}`", words[1]))?,
                _ => bail!("expected `learning_rate [STUDY]`"),
            };
            Ok(format!("{:e}", data.study.protocol.optimizer.learning_rate()))
        }
        Some("function") => {
            args(2, "function [study/]FUNCTION")?;
            if percent || decimals.is_some() {
                bail!("a function's name has no `:DECIMALS` or `:%`");
            }
            Ok(format!("`{}`", study_function(words[1], here, all)?.activation.name()))
        }
        Some("slope_below") => {
            args(2, "slope_below [study/]FUNCTION")?;
            Ok(real(slope_below(words[1], here, all)? as f64))
        }
        Some("claim") => {
            args(3, "claim [study/]FUNCTION difference|low|high|p_holm")?;
            let j = judged_claim(words[1], here, all)?;
            let none = || anyhow!("the claim of {} has no {} (decided without a test, or not judged)", words[1], words[2]);
            let interval = j.interval();
            let v = match words[2] {
                "difference" => j.difference.map(|d| d.estimate),
                "low" => interval.map(|i| i.0),
                "high" => interval.map(|i| i.1),
                "p_holm" => j.p_holm,
                other => bail!("no claim field `{other}` (there are {})", CLAIM_FIELDS.join(", ")),
            };
            Ok(real(v.ok_or_else(none)?))
        }
        Some("flat_first") => {
            args(3, "flat_first [study/]FUNCTION LAYER")?;
            let (data, function) = function_in(words[1], here, all)?;
            let layer = crate::nn::arch::ACTIVATED.iter().position(|l| l.name == words[2]).ok_or_else(|| anyhow!("no activated layer `{}`", words[2]))?;
            let runs: Vec<_> = data.runs.iter().filter(|r| r.activation.name() == function && r.usable() && !r.steps.is_empty()).collect();
            if runs.is_empty() {
                bail!("study {} has no finished run of `{function}` with logged steps", data.study.name);
            }
            let k = runs.iter().filter(|r| super::rules::flat_first(&super::rules::flat_steps(r)).contains(&layer)).count();
            Ok(rate(k, runs.len()))
        }
        Some("at_chance") => {
            args(2, "at_chance [study/]FUNCTION")?;
            let (k, n) = at_chance(words[1], here, all)?;
            Ok(rate(k, n))
        }
        Some("diverged") => {
            args(2, "diverged [study/]FUNCTION")?;
            let (k, n) = diverged(words[1], here, all)?;
            Ok(rate(k, n))
        }
        Some("stays_at_chance") => {
            args(3, "stays_at_chance FUNCTION EPOCHS")?;
            let epochs: usize = words[2].parse().map_err(|_| anyhow!("`{}` is not a number of epochs", words[2]))?;
            let (k, n) = stays_at_chance(words[1], epochs, here, all)?;
            Ok(rate(k, n))
        }
        Some("protocol") => {
            args(2, "protocol FIELD")?;
            let p = &here.protocol;
            let all_of = |what: &str| anyhow!("the note's runs use all the {what} images; there is no number to write");
            Ok(whole(match words[1] {
                "epochs" => p.epochs,
                "batch_size" => p.batch_size,
                "train_images" => p.train_limit.ok_or_else(|| all_of("training"))?,
                "test_images" => p.test_limit.ok_or_else(|| all_of("test"))?,
                other => bail!("no protocol field `{other}` (there are epochs, batch_size, train_images, test_images)"),
            }))
        }
        Some("history") => {
            args(4, "history RUN COLUMN EPOCH")?;
            let run = find(words[1], here, all)?;
            let column = one_of(words[2], &super::data::HISTORY_COLUMNS)?;
            let epoch = epoch_of(words[3], run.history.len())?;
            Ok(real(run.history[epoch - 1].get(column)))
        }
        Some("measure") => {
            args(3, "measure RUN NAME")?;
            let run = find(words[1], here, all)?;
            let m = run.measures().ok_or_else(|| anyhow!("{} has no history", words[1]))?;
            Ok(match words[2] {
                "plateau_val_accuracy" => real(m.plateau_val_accuracy),
                "best_val_accuracy" => real(m.best_val_accuracy),
                "best_epoch" => whole(m.best_epoch),
                // The epochs it trained: fewer than the protocol's where it diverged.
                "epochs" => whole(m.epochs),
                "overfit_gap" => real(m.overfit_gap),
                "final_val_loss" => real(m.final_val_loss),
                "first_val_accuracy" => real(m.first_val_accuracy),
                "left_chance" => whole(run.history.iter().position(|e| e.val_accuracy > AT_CHANCE_MAX).map(|i| i + 1).ok_or_else(|| anyhow!("{} never left chance", words[1]))?),
                other => bail!("no measure `{other}` (there are plateau_val_accuracy, best_val_accuracy, best_epoch, epochs, overfit_gap, final_val_loss, first_val_accuracy, left_chance)"),
            })
        }
        Some("diagnostic") => {
            args(5, "diagnostic RUN LAYER COLUMN EPOCH")?;
            let run = find(words[1], here, all)?;
            let series = diagnostic(run, words[2], words[3])?;
            let epoch: usize = words[4].parse().map_err(|_| anyhow!("`{}` is not an epoch", words[4]))?;
            let v = series.iter().find(|x| x.0 == epoch).ok_or_else(|| anyhow!("{} has no diagnostics at epoch {epoch}", words[1]))?;
            Ok(real(v.1))
        }
        Some("step") => {
            args(4, "step RUN COLUMN STEP")?;
            let run = find(words[1], here, all)?;
            let (steps, values) = step_series(run, words[2])?;
            let step: f64 = words[3].parse().map_err(|_| anyhow!("`{}` is not a step", words[3]))?;
            let i = steps.iter().position(|s| *s == step).ok_or_else(|| anyhow!("{} logged no step {step}", words[1]))?;
            Ok(real(values[i]))
        }
        Some("first_epoch") => {
            args(6, "first_epoch RUN LAYER COLUMN OP VALUE")?;
            let run = find(words[1], here, all)?;
            let holds = condition(words[4], words[5])?;
            let series = diagnostic(run, words[2], words[3])?;
            let e = series.iter().find(|x| holds(x.1)).ok_or_else(|| anyhow!("it never holds in {}", words[1]))?;
            Ok(whole(e.0))
        }
        Some("first_step") => {
            args(5, "first_step RUN COLUMN OP VALUE")?;
            let run = find(words[1], here, all)?;
            let holds = condition(words[3], words[4])?;
            let (steps, values) = step_series(run, words[2])?;
            let i = values.iter().position(|v| holds(*v)).ok_or_else(|| anyhow!("it never holds in {}'s logged steps", words[1]))?;
            Ok(whole(steps[i] as usize))
        }
        _ => bail!("a placeholder starts with history, measure, diagnostic, step, first_epoch, first_step, claim, flat_first, at_chance, diverged, stays_at_chance, protocol, learning_rate, published, engine, slope_below or function"),
    }
}

/// How many of the finished seeds of `spec` (`[study/]FUNCTION`) a
/// `diverged` reading asks for.
const HOW_MANY: [&str; 3] = ["all", "some", "none"];

/// Of the finished seeds of `spec` (`[study/]FUNCTION`), how many
/// diverged: `(diverged, seeds)`.
fn diverged(spec: &str, here: &StudyData, all: &[StudyData]) -> Result<(usize, usize)> {
    let (data, function) = function_in(spec, here, all)?;
    let runs: Vec<&Run> = data.runs.iter().filter(|r| r.activation.name() == function && r.usable()).collect();
    if runs.is_empty() {
        bail!("study {} has no finished run of `{function}`", data.study.name);
    }
    Ok((runs.iter().filter(|r| r.diverged()).count(), runs.len()))
}

/// Of the finished seeds of `spec` (`[study/]FUNCTION`), how many never
/// left chance: `(at_chance, seeds)`.
fn at_chance(spec: &str, here: &StudyData, all: &[StudyData]) -> Result<(usize, usize)> {
    let (data, function) = function_in(spec, here, all)?;
    let levels: Vec<f64> = data.runs.iter().filter(|r| r.activation.name() == function && r.usable()).filter_map(|r| r.measures()).map(|m| m.plateau_val_accuracy).collect();
    if levels.is_empty() {
        bail!("study {} has no finished run of `{function}`", data.study.name);
    }
    Ok((levels.iter().filter(|v| **v <= AT_CHANCE_MAX).count(), levels.len()))
}

/// The function `[study/]function`, one of its study's functions.
fn study_function<'a>(spec: &str, here: &'a StudyData, all: &'a [StudyData]) -> Result<&'a crate::study::spec::Function> {
    let (data, function) = function_in(spec, here, all)?;
    data.study.functions.iter().find(|f| f.activation.name() == function).ok_or_else(|| anyhow!("study {} has no function `{function}`", data.study.name))
}

/// The slope training uses at x = −1 of the function `[study/]function`
/// (one of its study's functions), from its definition.
fn slope_below(spec: &str, here: &StudyData, all: &[StudyData]) -> Result<f32> {
    let f = study_function(spec, here, all)?;
    Ok(crate::activation::kernels::curve(f.activation, &[-1.0], 0.0)[0].2)
}

/// What a `verdict` condition asks of a claim: shown, shown wrong, or neither
/// (inconclusive, too few seeds, or not applicable, as the Verdicts page says).
const OUTCOMES: [&str; 3] = ["supported", "contradicted", "undecided"];

/// The outcome of the one claim `[study/]function` makes in its study (at
/// the study's own protocol), judged with the study's other claims as the
/// Verdicts page judges them.
fn verdict(spec: &str, here: &StudyData, all: &[StudyData]) -> Result<&'static str> {
    Ok(match judged_claim(spec, here, all)?.verdict {
        super::rules::Verdict::Supported => OUTCOMES[0],
        super::rules::Verdict::Contradicted => OUTCOMES[1],
        _ => OUTCOMES[2],
    })
}

/// The one claim `[study/]function` makes in its study, judged as the
/// Verdicts page judges it (with the study's other claims, for Holm).
fn judged_claim(spec: &str, here: &StudyData, all: &[StudyData]) -> Result<super::rules::Judged> {
    let (data, function) = function_in(spec, here, all)?;
    let mut judged: Vec<_> = super::rules::judge(data).into_iter().filter(|j| j.function.name() == function).collect();
    match judged.len() {
        1 => Ok(judged.remove(0)),
        0 => bail!("`{function}` makes no claim in study {}", data.study.name),
        n => bail!("`{function}` makes {n} claims in study {}; a verdict or claim placeholder needs one", data.study.name),
    }
}

/// What `{{claim RUN FIELD}}` prints of a judged claim.
const CLAIM_FIELDS: [&str; 4] = ["difference", "low", "high", "p_holm"];

/// Whether the binomial 95 % intervals of two rates, `(k, n)` each, do not overlap.
fn apart(a: (usize, usize), b: (usize, usize)) -> bool {
    let ((lo_a, hi_a), (lo_b, hi_b)) = (super::stats::binomial_interval(a.0, a.1), super::stats::binomial_interval(b.0, b.1));
    hi_a < lo_b || hi_b < lo_a
}

/// Where a rate's 95 % interval lies against a share: wholly `below` it,
/// wholly `above` it, or `includes` it (the seeds cannot tell).
const SIDES: [&str; 3] = ["below", "above", "includes"];

/// Whether the interval `(lo, hi)` lies on `side` (one of [`SIDES`]) of `share`.
fn interval_side((lo, hi): (f64, f64), share: f64, side: &str) -> bool {
    match side {
        "below" => hi < share,
        "above" => lo > share,
        _ => lo <= share && share <= hi,
    }
}

/// `k` of `n` seeds with the binomial 95 % interval, `k/n (lo–hi %)`.
fn rate(k: usize, n: usize) -> String {
    let (lo, hi) = super::stats::binomial_interval(k, n);
    format!("{k}/{n} ({:.0}–{:.0} %)", lo * 100.0, hi * 100.0)
}

/// Of the seeds of `function` trained for `epochs` epochs or more, how many
/// were still at chance after epoch `epochs`: `(stayed, seeds)`. Only the
/// first `epochs` epochs of each run count, so a 50-epoch run and a
/// 20-epoch run of one seed are the same training (no schedule depends on
/// the length) and are counted once. Runs of other networks, optimizers,
/// batch sizes or subsets than the note's study are not counted (a book
/// holds one dataset's runs).
fn stays_at_chance(function: &str, epochs: usize, here: &StudyData, all: &[StudyData]) -> Result<(usize, usize)> {
    let same = |p: &crate::train::Protocol| {
        let h = &here.protocol;
        (p.batch_size, &p.optimizer, p.train_limit, p.test_limit, p.network) == (h.batch_size, &h.optimizer, h.train_limit, h.test_limit, h.network)
    };
    let mut stayed: std::collections::BTreeMap<u64, bool> = std::collections::BTreeMap::new();
    for data in all.iter().filter(|d| same(&d.protocol)) {
        for run in data.runs.iter().filter(|r| r.activation.name() == function && r.usable() && r.history.len() >= epochs) {
            let at_chance = run.history[..epochs].iter().all(|e| e.val_accuracy <= AT_CHANCE_MAX);
            stayed.insert(run.seed, at_chance);
        }
    }
    if stayed.is_empty() {
        bail!("no finished run of `{function}` has {epochs} epochs or more");
    }
    Ok((stayed.values().filter(|v| **v).count(), stayed.len()))
}

/// `[study/]FUNCTION`: the study (the note's own without a prefix) and the function's name.
fn function_in<'a, 'b>(spec: &'b str, here: &'a StudyData, all: &'a [StudyData]) -> Result<(&'a StudyData, &'b str)> {
    match spec.split_once('/') {
        Some((study, f)) => Ok((study_data(study, all)?, f)),
        None => Ok((here, spec)),
    }
}

/// Study `name`'s data at its own protocol (a `study/` prefix in a placeholder).
fn study_data<'a>(name: &str, all: &'a [StudyData]) -> Result<&'a StudyData> {
    all.iter().find(|d| d.study.name == name && d.protocol == d.study.protocol).ok_or_else(|| anyhow!("no study `{name}`"))
}

/// The run `[study/]function/seed-N`: of the note's study, or of another.
fn find<'a>(name: &str, here: &'a StudyData, all: &'a [StudyData]) -> Result<&'a Run> {
    let parts: Vec<&str> = name.split('/').collect();
    let (data, function, seed) = match parts.as_slice() {
        [f, s] => (here, *f, *s),
        [study, f, s] => (study_data(study, all)?, *f, *s),
        _ => bail!("`{name}` is not `function/seed-N` or `study/function/seed-N`"),
    };
    let seed: u64 = seed.strip_prefix("seed-").and_then(|s| s.parse().ok()).ok_or_else(|| anyhow!("`{seed}` is not `seed-N`"))?;
    let run = data.runs.iter().find(|r| r.activation.name() == function && r.seed == seed).ok_or_else(|| anyhow!("study {} has no run {function} seed {seed}", data.study.name))?;
    if run.history.is_empty() {
        bail!("{name} has not finished (study {}, {})", data.study.name, data.protocol.slug());
    }
    Ok(run)
}

fn one_of<'a>(word: &str, allowed: &[&'a str]) -> Result<&'a str> {
    allowed.iter().find(|c| **c == word).copied().ok_or_else(|| anyhow!("`{word}` is not one of {}", allowed.join(", ")))
}

fn epoch_of(word: &str, epochs: usize) -> Result<usize> {
    let e = if word == "last" { epochs } else { word.parse().map_err(|_| anyhow!("`{word}` is not an epoch (a number from 1, or last)"))? };
    if e == 0 || e > epochs {
        bail!("epoch {e} is not among the run's 1–{epochs}");
    }
    Ok(e)
}

fn diagnostic(run: &Run, layer: &str, column: &str) -> Result<Vec<(usize, f64)>> {
    let columns: Vec<&str> = crate::train::diagnostics::HEADER.split(',').skip(2).collect();
    one_of(column, &columns)?;
    let series = run.diagnostic(layer, column);
    if series.is_empty() {
        bail!("no diagnostics of layer `{layer}` in this run");
    }
    Ok(series)
}

/// (step, value) of one steps.csv column.
fn step_series(run: &Run, column: &str) -> Result<(Vec<f64>, Vec<f64>)> {
    let header = crate::train::steps::header();
    let columns: Vec<&str> = header.split(',').skip(1).collect();
    one_of(column, &columns)?;
    if run.steps.is_empty() {
        bail!("this run kept no steps.csv");
    }
    Ok((run.step_column("step"), run.step_column(column)))
}

fn condition(op: &str, value: &str) -> Result<Box<dyn Fn(f64) -> bool>> {
    let v: f64 = value.parse().map_err(|_| anyhow!("`{value}` is not a number"))?;
    Ok(match op {
        "<" => Box::new(move |x| x < v),
        "<=" => Box::new(move |x| x <= v),
        "==" => Box::new(move |x| x == v),
        ">=" => Box::new(move |x| x >= v),
        ">" => Box::new(move |x| x > v),
        _ => bail!("`{op}` is not one of < <= == >= >"),
    })
}

/// The largest float32 x whose sigmoid the engine computes as exactly 0:
/// below it, softplus is flat to the last bit and passes no gradient.
pub fn sigmoid_zero_below() -> f32 {
    let (mut zero, mut nonzero) = (-1000.0f32, 0.0f32);
    while nonzero - zero > 1e-3 {
        let mid = (zero + nonzero) / 2.0;
        if crate::engine::math::sigmoid(mid) == 0.0 { zero = mid } else { nonzero = mid }
    }
    zero
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_decimals_are_refused_and_code_spans_are_not_prose() {
        assert!(check_typed("seed 2 and 50 epochs, 2·ln 2", "n.md").is_ok());
        assert!(check_typed("`lr = 0.001` is a setting", "n.md").is_ok());
        let e = check_typed("val_accuracy 0.692 on seed 1", "n.md").unwrap_err().to_string();
        assert!(e.contains("n.md") && e.contains("`0.692`"), "{e}");
        let e = check_typed("at Adam learning rate 3e-4 instead", "n.md").unwrap_err().to_string();
        assert!(e.contains("`3e-4`"), "{e}");
        assert!(check_typed("the e8-b64-n8192 runs, float32, 2e", "n.md").is_ok(), "names with digits are not numbers");
        let e = check_typed("on 8,192 training images", "n.md").unwrap_err().to_string();
        assert!(e.contains("`8,192`"), "{e}");
        assert!(check_typed("seeds 1,2 and 3, 40 and 1,2345", "n.md").is_ok(), "a list is not a grouped number");
    }

    /// Clopper–Pearson: 10/10 is 69–100 %, 9/10 is 55–100 %, 0/10 is 0–31 %,
    /// 0/3 is 0–71 % and 3/3 is 29–100 %.
    #[test]
    fn rates_are_apart_only_where_their_intervals_do_not_touch() {
        assert!(apart((10, 10), (0, 10)) && apart((0, 10), (9, 10)));
        assert!(!apart((3, 3), (0, 3)), "three seeds never separate");
        assert!(!apart((1, 3), (0, 10)) && !apart((4, 10), (0, 10)));
    }

    /// A reading of a rate against a share: 1 of 12 seeds at chance is
    /// 0.2–38 %, wholly below half; 6 of 12 (21–79 %) includes it; 12 of 12
    /// (74–100 %) lies above it; 0 of 12 does not lie above 0.
    #[test]
    fn a_rate_is_read_against_a_share_by_its_interval() {
        use crate::activation::Activation::SoftplusLinear;
        use crate::report::data::constructed::{data_of, run};
        let lit = Literature::parse("").unwrap();
        let screen = include_str!("../../studies/softplus-stall-screen.toml");
        let reading = |stayed: u64, cond: &str| {
            // val_accuracy at most 0.1 on every epoch (at chance), or from 0.385 up.
            let runs = (4..16).map(|seed| run(SoftplusLinear, seed, if seed < 4 + stayed { 0.1 } else { 0.7 }, 0.0, 0.0)).collect();
            let here = data_of(screen, runs);
            fill(&format!("{{{{if stays_at_chance softplus_linear 20 {cond}}}}}yes{{{{else}}}}no{{{{end}}}}"), "n.md", &here, std::slice::from_ref(&here), &lit)
        };
        let read = |stayed, cond| reading(stayed, cond).unwrap();
        assert_eq!([read(1, "below 50"), read(1, "includes 50"), read(1, "above 50")], ["yes", "no", "no"]);
        assert_eq!([read(6, "below 50"), read(6, "includes 50"), read(6, "above 50")], ["no", "yes", "no"]);
        assert_eq!([read(12, "below 50"), read(12, "includes 50"), read(12, "above 50")], ["no", "no", "yes"]);
        assert_eq!([read(0, "above 0"), read(1, "above 0")], ["no", "yes"]);
        let e = reading(1, "under 50").unwrap_err().to_string();
        assert!(e.contains("n.md") && e.contains("under"), "{e}");
        assert!(reading(1, "below 150").unwrap_err().to_string().contains("`150` is not a percentage"));
        let e = reading(1, "below 50").and(fill("{{if stays_at_chance softplus_linear 30 below 50}}a{{end}}", "n.md", &data_of(screen, vec![]), &[], &lit)).unwrap_err().to_string();
        assert!(e.contains("30 epochs or more"), "{e}");
    }

    /// From the definitions in the study file, not from the names.
    #[test]
    fn slope_below_zero_comes_from_the_definition() {
        let here = crate::report::data::constructed::data_of(include_str!("../../studies/zero-slope-functions.toml"), vec![]);
        for (f, want) in [("leaky_relu_0.01", 0.01f32), ("leaky_relu_0.3", 0.3), ("relu", 0.0)] {
            assert_eq!(slope_below(f, &here, &[]).unwrap(), want, "{f}");
        }
        let e = slope_below("tanh", &here, &[]).unwrap_err().to_string();
        assert!(e.contains("no function `tanh`"), "{e}");
    }

    /// A function's name comes from the study's own list, as code: a name
    /// the study lacks (a typo, or a function renamed since) fails.
    #[test]
    fn function_names_come_from_the_study() {
        let here = crate::report::data::constructed::data_of(include_str!("../../studies/zero-slope-functions.toml"), vec![]);
        let lit = Literature::parse("").unwrap();
        let filled = fill("with {{function leaky_relu_0.3}} against `relu`", "n.md", &here, &[], &lit).unwrap();
        assert_eq!(filled, "with `leaky_relu_0.3` against `relu`");
        let e = fill("{{function leaky_relu_0.2}}", "n.md", &here, &[], &lit).unwrap_err().to_string();
        assert!(e.contains("n.md") && e.contains("no function `leaky_relu_0.2`"), "{e}");
        assert!(fill("{{function leaky_relu_0.3 :2}}", "n.md", &here, &[], &lit).is_err(), "a name has no decimals");
    }

    /// Of three seeds, one diverged: the count, the epoch it stopped at, and
    /// the reading that holds ("some"), not the others.
    #[test]
    fn divergence_is_counted_and_read_from_the_runs() {
        use crate::activation::Activation::{Relu, Tanh};
        use crate::report::data::constructed::{data, three};
        use crate::train::state::RunState;
        let mut runs = three(Relu, [0.70, 0.71, 0.72], 0.0, 0.0);
        let mut tanh = three(Tanh, [0.60, 0.61, 0.62], 0.0, 0.0);
        let RunState::Finished(rec) = tanh[2].state.clone() else { unreachable!() };
        tanh[2].state = RunState::Diverged(rec, 4);
        tanh[2].history.truncate(4);
        runs.extend(tanh);
        let here = data(runs);
        let lit = Literature::parse("").unwrap();
        let note = "{{diverged tanh}}, at epoch {{measure tanh/seed-3 epochs}}; {{if diverged tanh all}}all{{end}}{{if diverged tanh some}}some{{end}}{{if diverged tanh none}}none{{end}}{{if diverged relu none}}, relu none{{end}}";
        assert_eq!(fill(note, "n.md", &here, &[], &lit).unwrap(), "1/3 (1–91 %), at epoch 4; some, relu none");
        let e = fill("{{if diverged tanh most}}x{{end}}", "n.md", &here, &[], &lit).unwrap_err().to_string();
        assert!(e.contains("most") && e.contains("all, some, none"), "{e}");
    }

    #[test]
    fn sigmoid_underflows_where_float32_runs_out() {
        // e^x falls below half the smallest float32 subnormal (2^-150) at x = -150 ln 2.
        let x = sigmoid_zero_below() as f64;
        assert!((x + 150.0 * std::f64::consts::LN_2).abs() < 0.01, "{x}");
        assert!(crate::engine::math::sigmoid(x as f32 + 0.01) > 0.0);
    }
}
