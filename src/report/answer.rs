//! The answer up front (`generated/answer.md`, included by the landing
//! page): for each protocol, what the verdicts say so far and one chart of
//! every function's plateau val_accuracy with its interval. Nothing here is
//! typed by hand: the sentences are the verdicts of [`super::rules`], and
//! protocols are never mixed (the study's own first, then each reduction).

use super::charts::{Interval, IntervalChart, Rgb};
use super::data::StudyData;
use super::hypothesis;
use super::messages::{Messages, fill};
use super::rules::{self, values};
use super::stats::describe;
use super::text;
use crate::activation::Activation;
use crate::io::write_atomic;
use crate::study::spec::Metric;
use anyhow::Result;
use std::fmt::Write as _;
use std::path::Path;

/// The answer for the studies at one protocol; `prefix` is the path from
/// the landing page to these studies' pages, `img` where the chart goes.
fn at_protocol(m: &Messages, group: &[&StudyData], prefix: &dyn Fn(&StudyData) -> String, colors: &dyn Fn(Activation) -> Rgb, dir: &Path, img: &str) -> Result<String> {
    let protocol = &group[0].protocol;
    let mut p = format!("### {}\n\n", fill(&m.answer_protocol, &[("protocol", &text::protocol(m, protocol))]));
    let mut rows: Vec<Interval> = Vec::new();
    let mut shown: Vec<Activation> = Vec::new();
    for d in group {
        let usable = d.runs.iter().filter(|r| r.usable()).count();
        let link = prefix(d);
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
                fill(&m.answer_claim, &[("function", j.function.name()), ("claim", &text::claim(m, j.claim.metric, j.claim.expect, j.claim.than)), ("verdict", &text::verdict(m, &j.verdict))])
            );
        }
        for f in &d.study.functions {
            let v: Vec<f64> = values(d, f.activation, Metric::PlateauValAccuracy).into_iter().map(|x| x.1).collect();
            if v.is_empty() || shown.contains(&f.activation) {
                continue;
            }
            shown.push(f.activation);
            let s = describe(&v);
            rows.push(Interval { label: format!("{} (n = {})", f.activation, s.n), mean: s.mean, lo: s.ci_low, hi: s.ci_high, color: colors(f.activation) });
        }
    }
    if rows.is_empty() {
        let _ = writeln!(p, "\n{}\n", m.answer_none);
        return Ok(p);
    }
    let chart = IntervalChart { title: m.answer_chart_title.clone(), x_label: m.metric_plateau.clone(), rows, x_range: (0.0, 1.0) };
    write_atomic(&dir.join(img), chart.render()?.as_bytes())?;
    let _ = writeln!(p, "\n[![{}](generated/{img})](generated/{img})\n\n{}\n", m.answer_chart_title, m.answer_chart_caption);
    Ok(p)
}

/// The whole answer: the studies' own protocol, then each reduction.
pub fn answer(m: &Messages, data: &[StudyData], appendix: &[StudyData], colors: &dyn Fn(Activation) -> Rgb, dir: &Path) -> Result<String> {
    let mut p = format!("<div class=\"actlab-answer\">\n\n## {}\n\n{}\n\n", m.answer_title, m.answer_intro);
    let own: Vec<&StudyData> = data.iter().collect();
    if !own.is_empty() {
        // Studies may differ in protocol: one block per distinct protocol.
        let mut protocols: Vec<_> = own.iter().map(|d| d.protocol).collect();
        protocols.dedup();
        for pr in protocols {
            let group: Vec<&StudyData> = own.iter().copied().filter(|d| d.protocol == pr).collect();
            p.push_str(&at_protocol(m, &group, &|d| format!("generated/{}", d.study.name), colors, dir, &format!("img/answer-{}.svg", pr.slug()))?);
        }
    }
    let mut slugs: Vec<String> = appendix.iter().map(|d| d.protocol.slug()).collect();
    slugs.dedup();
    for slug in slugs {
        let group: Vec<&StudyData> = appendix.iter().filter(|d| d.protocol.slug() == slug).collect();
        let _ = writeln!(p, "{}\n", m.answer_reduced);
        p.push_str(&at_protocol(m, &group, &|d| format!("generated/{}/{}", d.study.name, d.protocol.slug()), colors, dir, &format!("img/answer-{slug}.svg"))?);
    }
    p.push_str("</div>\n");
    Ok(p)
}
