//! The answer up front: `generated/answer.md`, which the landing page opens
//! with, and `generated/verdicts-all.md`, every verdict of every study.
//!
//! The answer is a few sentences with numbers about the article's own study
//! (the index's first) at its own protocol — each function's level, seed by
//! seed where its seeds split — then its hypothesis, where the follow-up
//! stands, one chart of every seed, and what is left to compute. Nothing
//! here is typed by hand: the numbers come from [`super::data`], the
//! judgements from [`super::rules`] and [`super::hypothesis`], and
//! protocols are never mixed (each study × protocol appears once).

use super::charts::{Reference, Rgb, SeedRow, SeedsChart};
use super::data::StudyData;
use super::hypothesis;
use super::messages::{Messages, fill};
use super::rules::{self, cohort, split};
use super::stats::{ALPHA, describe, difference};
use super::text;
use crate::activation::Activation;
use crate::io::write_atomic;
use crate::study::spec::Metric;
use crate::train::config::Protocol;
use crate::train::record::median_epoch_seconds;
use crate::train::state::RunState;
use anyhow::Result;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const METRIC: Metric = Metric::PlateauValAccuracy;

/// One function of the lead study, in a sentence: its level, and against the
/// baseline the paired difference (or, seeds that split, each seed).
fn function_line(m: &Messages, d: &StudyData, a: Activation) -> Option<String> {
    let base = d.study.baseline;
    let test = d.test_images();
    let mine = cohort(d, a, METRIC);
    if mine.is_empty() {
        return None;
    }
    let f3 = |v: f64| format!("{v:.3}");
    let signed3 = |v: f64| format!("{v:+.3}");
    let interval3 = |(lo, hi): (f64, f64)| format!("[{}, {}]", signed3(lo), signed3(hi));
    if a == base {
        let s = describe(&mine.iter().map(|x| x.1).collect::<Vec<_>>());
        let ci = if s.n < 2 { "–".into() } else { format!("[{}, {}]", f3(s.ci_low.max(0.0)), f3(s.ci_high.min(1.0))) };
        return Some(fill(&m.answer_baseline, &[("function", a.name()), ("value", &f3(s.mean)), ("n", &s.n.to_string()), ("interval", &ci)]));
    }
    let theirs = rules::values(d, base, METRIC);
    if let Some(sp) = split(d, a, METRIC) {
        let learned: Vec<String> = mine
            .iter()
            .map(|(s, v)| {
                let vs = theirs.iter().find(|x| x.0 == *s).map_or("–".into(), |x| signed3(v - x.1));
                fill(&m.answer_seed_learned, &[("seed", &s.to_string()), ("value", &f3(*v)), ("d", &vs), ("baseline", base.name())])
            })
            .collect();
        let never: Vec<String> = sp.did_not_learn.iter().map(|(s, v)| fill(&m.answer_seed_not_learned, &[("seed", &s.to_string()), ("value", &text::value_words(m, *v, test))])).collect();
        return Some(fill(&m.answer_split, &[("function", a.name()), ("learned", &learned.join(&m.list_separator)), ("never", &never.join(&m.list_separator)), ("rate", &text::rate(m, sp.did_not_learn.len(), sp.of))]));
    }
    let level = describe(&mine.iter().map(|x| x.1).collect::<Vec<_>>());
    let (va, vb, _) = rules::comparable(d, a, base, METRIC).ok()?;
    let Some(diff) = difference(&va, &vb) else {
        return Some(fill(&m.answer_level_only, &[("function", a.name()), ("value", &f3(level.mean)), ("n", &level.n.to_string())]));
    };
    let (lo, hi) = diff.interval(ALPHA);
    let key = if hi < 0.0 {
        &m.answer_below
    } else if lo > 0.0 {
        &m.answer_above
    } else {
        &m.answer_not_apart
    };
    Some(fill(
        key,
        &[("function", a.name()), ("value", &f3(level.mean)), ("baseline", base.name()), ("d", &signed3(diff.estimate)), ("interval", &interval3((lo, hi))), ("method", &text::method(m, &diff))],
    ))
}

/// Every seed of the lead study's functions, with the baseline's level and chance.
fn seeds_chart(m: &Messages, d: &StudyData, colors: &dyn Fn(Activation) -> Rgb, dir: &Path, img: &str) -> Result<bool> {
    let mut rows = Vec::new();
    for f in &d.study.functions {
        let points: Vec<(f64, bool)> = d.measures(f.activation).into_iter().map(|(_, ms)| (ms.plateau_val_accuracy, rules::learned(&ms, METRIC))).collect();
        if !points.is_empty() {
            rows.push(SeedRow { label: f.activation.name().to_string(), points, color: colors(f.activation) });
        }
    }
    if rows.is_empty() {
        return Ok(false);
    }
    let base = d.study.baseline;
    let levels: Vec<f64> = cohort(d, base, METRIC).into_iter().map(|x| x.1).collect();
    let references: Vec<Reference> = Reference::mean_level(m, base, &levels, colors(base)).into_iter().chain([Reference::chance(m)]).collect();
    let measure = text::last_epochs_measure(m, d.protocol.epochs);
    let chart = SeedsChart { title: fill(&m.answer_chart_title, &[("measure", &measure)]), x_label: measure, rows, references, x_range: (0.0, 1.0) };
    write_atomic(&dir.join(img), chart.render()?.as_bytes())?;
    Ok(true)
}

/// The runs of every study at its own protocol that are not finished (each
/// run once, however many studies share it), and the hours they need at the
/// median pace of finished runs of each protocol (None where no run of a
/// protocol has finished).
fn left(data: &[StudyData]) -> (usize, f64, usize) {
    let mut seen: Vec<&PathBuf> = Vec::new();
    let (mut count, mut hours, mut unknown) = (0, 0.0, 0);
    for d in data {
        for r in &d.runs {
            if seen.contains(&&r.dir) || matches!(r.state, RunState::Finished(_) | RunState::Diverged(..)) {
                continue;
            }
            seen.push(&r.dir);
            count += 1;
            let pace = median_epoch_seconds(data.iter().filter(|o| o.protocol == d.protocol).flat_map(|o| o.runs.iter().filter_map(|r| r.record())));
            let done = match r.state {
                RunState::Partial(k) => k,
                _ => 0,
            };
            match pace {
                Some(s) => hours += s * d.protocol.epochs.saturating_sub(done) as f64 / 3600.0,
                None => unknown += 1,
            }
        }
    }
    (count, hours, unknown)
}

/// The landing page's answer.
pub fn answer(m: &Messages, data: &[StudyData], colors: &dyn Fn(Activation) -> Rgb, dir: &Path) -> Result<String> {
    let mut p = format!("<div class=\"actlab-answer\">\n\n## {}\n\n", m.answer_title);
    let Some(lead) = data.first() else {
        let _ = writeln!(p, "{}\n\n</div>", m.answer_none);
        return Ok(p);
    };
    let dataset = lead.runs.iter().find_map(|r| r.record()).map_or(String::new(), |r| r.dataset.dataset.clone());
    let _ = writeln!(
        p,
        "{}\n",
        fill(&m.answer_lead, &[("study", lead.study.title_in(&m.lang)), ("results", &format!("generated/{}/results.md", lead.study.name)), ("protocol", &text::protocol(m, &lead.protocol)), ("dataset", &dataset), ("seeds", &lead.study.seeds.len().to_string())])
    );
    let lines: Vec<String> = lead.study.functions.iter().filter_map(|f| function_line(m, lead, f.activation)).collect();
    if lines.is_empty() {
        let _ = writeln!(p, "{}\n", m.answer_none);
    }
    for l in &lines {
        let _ = writeln!(p, "- {l}");
    }
    p.push('\n');
    if let (Some(v), Some(h)) = (hypothesis::verdict(lead), lead.study.hypothesis_in(&m.lang)) {
        let _ = writeln!(p, "{}\n", fill(&m.answer_hypothesis, &[("hypothesis", h), ("verdict", &text::verdict(m, &v)), ("verdicts", &format!("generated/{}/verdicts.md", lead.study.name))]));
    }
    // Where the follow-up stands: every other study's hypothesis at its own protocol, once.
    let follow: Vec<String> = data[1..]
        .iter()
        .filter_map(|d| {
            let (v, h) = (hypothesis::verdict(d)?, d.study.hypothesis_in(&m.lang)?);
            let finished = d.runs.iter().filter(|r| r.usable()).count();
            Some(fill(
                &m.answer_follow_up,
                &[
                    ("hypothesis", h),
                    ("title", d.study.title_in(&m.lang)),
                    ("verdicts", &format!("generated/{}/verdicts.md", d.study.name)),
                    ("verdict", &text::verdict(m, &v)),
                    ("finished", &finished.to_string()),
                    ("total", &d.runs.len().to_string()),
                    ("protocol", &text::protocol(m, &d.protocol)),
                ],
            ))
        })
        .collect();
    if !follow.is_empty() {
        let _ = writeln!(p, "{}\n", m.answer_follow_up_intro);
        for f in follow {
            let _ = writeln!(p, "- {f}");
        }
        p.push('\n');
    }
    let img = format!("img/answer-{}.svg", lead.protocol.slug());
    if seeds_chart(m, lead, colors, dir, &img)? {
        let _ = writeln!(p, "[![{}](generated/{img})](generated/{img})\n\n{}\n", m.answer_chart_alt, m.answer_chart_caption);
    }
    let (count, hours, unknown) = left(data);
    if count > 0 {
        let left = if unknown == count { &m.answer_left_unknown } else { &m.answer_left };
        let _ = writeln!(p, "{}\n", fill(left, &[("count", &count.to_string()), ("time", &text::duration(m, hours))]));
    }
    let _ = writeln!(p, "[{}](generated/verdicts-all.md)\n\n</div>", m.answer_all_verdicts);
    Ok(p)
}

/// Every verdict of the studies at one protocol, and every seed on one chart.
fn at_protocol(m: &Messages, group: &[&StudyData], prefix: &str, colors: &dyn Fn(Activation) -> Rgb, dir: &Path) -> Result<String> {
    let protocol = &group[0].protocol;
    let mut p = format!("## {}\n\n", fill(&m.answer_protocol, &[("protocol", &text::protocol(m, protocol))]));
    let mut rows: Vec<SeedRow> = Vec::new();
    for d in group {
        let usable = d.runs.iter().filter(|r| r.usable()).count();
        let link = format!("{prefix}{}", if d.protocol == d.study.protocol { d.study.name.clone() } else { format!("{}/{}", d.study.name, d.protocol.slug()) });
        let progress = fill(&m.answer_progress, &[("usable", &usable.to_string()), ("total", &d.runs.len().to_string())]);
        let _ = writeln!(
            p,
            "- {}",
            fill(
                &m.answer_study,
                &[("title", d.study.title_in(&m.lang)), ("results", &format!("{link}/results.md")), ("progress", &progress), ("verdicts_title", &m.title_verdicts), ("verdicts", &format!("{link}/verdicts.md"))]
            )
        );
        if let Some(v) = hypothesis::verdict(d) {
            let _ = writeln!(p, "  - {}", fill(&m.answer_design, &[("hypothesis", d.study.hypothesis_in(&m.lang).unwrap_or("")), ("verdict", &text::verdict(m, &v))]));
        }
        for j in rules::judge(d) {
            let _ = writeln!(
                p,
                "  - {}",
                fill(&m.answer_claim, &[("function", j.function.name()), ("claim", &text::claim(m, j.claim.metric, j.claim.expect, j.claim.than, d.protocol.epochs)), ("verdict", &text::verdict(m, &j.verdict))])
            );
        }
        for f in &d.study.functions {
            if rows.iter().any(|r| r.label == f.activation.name()) {
                continue;
            }
            let points: Vec<(f64, bool)> = d.measures(f.activation).into_iter().map(|(_, ms)| (ms.plateau_val_accuracy, rules::learned(&ms, METRIC))).collect();
            if !points.is_empty() {
                rows.push(SeedRow { label: f.activation.name().to_string(), points, color: colors(f.activation) });
            }
        }
    }
    if rows.is_empty() {
        let _ = writeln!(p, "\n{}\n", m.answer_none);
        return Ok(p);
    }
    let measure = text::last_epochs_measure(m, protocol.epochs);
    let references = vec![Reference::chance(m)];
    let img = format!("img/verdicts-{}.svg", protocol.slug());
    let chart = SeedsChart { title: fill(&m.answer_chart_title, &[("measure", &measure)]), x_label: measure, rows, references, x_range: (0.0, 1.0) };
    write_atomic(&dir.join(&img), chart.render()?.as_bytes())?;
    let _ = writeln!(p, "\n[![{}]({img})]({img})\n\n{}\n", m.answer_chart_alt, m.answer_chart_caption);
    Ok(p)
}

/// `studies` grouped by protocol, each protocol once, in the order the
/// studies first use it.
fn by_protocol(studies: &[StudyData]) -> Vec<(Protocol, Vec<&StudyData>)> {
    let mut groups: Vec<(Protocol, Vec<&StudyData>)> = Vec::new();
    for d in studies {
        match groups.iter_mut().find(|(pr, _)| *pr == d.protocol) {
            Some((_, g)) => g.push(d),
            None => groups.push((d.protocol, vec![d])),
        }
    }
    groups
}

/// `generated/verdicts-all.md`: the studies' own protocols, each once, then
/// each reduction apart.
pub fn all_verdicts(m: &Messages, data: &[StudyData], appendix: &[StudyData], colors: &dyn Fn(Activation) -> Rgb, dir: &Path) -> Result<String> {
    let mut p = format!("# {}\n\n{}\n\n", m.answer_all_verdicts, m.answer_intro);
    for (studies, heading) in [(data, None), (appendix, Some(&m.answer_reduced))] {
        for (_, group) in by_protocol(studies) {
            if let Some(h) = heading {
                let _ = writeln!(p, "{h}\n");
            }
            p.push_str(&at_protocol(m, &group, "", colors, dir)?);
        }
    }
    Ok(p)
}
