//! The measured facts of the Reproduce page (`generated/reproduce-facts.md`,
//! included by the hand-written `reproduce.md`): which data the published
//! runs used, how long runs and studies took, and every engine commit
//! behind them. All of it read from the runs' records, so the page cannot
//! drift from what was run.

use super::data::StudyData;
use super::messages::{fill, Messages};
use super::text;
use crate::train::config::Protocol;
use crate::train::record::{median, median_epoch_seconds, RunRecord};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Each published run once (a run shared by several studies counts once).
fn distinct_runs<'a>(all: &[&'a StudyData]) -> Vec<&'a RunRecord> {
    let mut seen: BTreeMap<PathBuf, &RunRecord> = BTreeMap::new();
    for d in all {
        for r in &d.runs {
            if let Some(rec) = r.record() {
                seen.entry(r.dir.clone()).or_insert(rec);
            }
        }
    }
    seen.into_values().collect()
}

/// A whole hash, allowed to wrap anywhere (`actlab.css`).
fn hash(h: &str) -> String {
    format!("<code class=\"actlab-hash\">{h}</code>")
}

pub fn facts(m: &Messages, data: &[StudyData], appendix: &[StudyData]) -> String {
    let all: Vec<&StudyData> = data.iter().chain(appendix).collect();
    let runs = distinct_runs(&all);
    let mut p = String::new();

    let _ = writeln!(p, "## {}\n\n{}\n", m.repro_data_title, m.repro_data_intro);
    let mut datasets: BTreeMap<(&str, &str, &str), usize> = BTreeMap::new();
    for r in &runs {
        *datasets.entry((&r.dataset.dataset, &r.dataset.source_sha256, &r.dataset.tensors_sha256)).or_default() += 1;
    }
    for ((name, archive, tensors), n) in &datasets {
        let _ = writeln!(p, "- {}", fill(&m.repro_dataset_item, &[("dataset", name), ("archive", &hash(archive)), ("tensors", &hash(tensors)), ("n", &n.to_string())]));
    }

    let _ = writeln!(p, "\n## {}\n\n{}\n", m.repro_time_title, m.repro_time_intro);
    p.push_str(&text::header(&[&m.front_study, &m.front_protocol, &m.col_device, &m.col_runs, &m.col_median_run, &m.col_all_runs]));
    for d in &all {
        let recs: Vec<&RunRecord> = d.runs.iter().filter_map(|r| r.record()).collect();
        let Some(per_run) = median(recs.iter().map(|r| r.train_seconds).collect()) else { continue };
        let mut devices: Vec<String> = recs.iter().map(|r| format!("{} {} ({})", r.device.class.to_uppercase(), r.device.name, r.device.threads)).collect();
        devices.sort();
        devices.dedup();
        let total: f64 = recs.iter().map(|r| r.train_seconds).sum();
        p.push_str(&text::row(&[
            d.study.title_in(&m.lang).to_string(),
            text::protocol(m, &d.protocol),
            devices.join("<br>"),
            recs.len().to_string(),
            text::duration(m, per_run / 3600.0),
            text::duration(m, total / 3600.0),
        ]));
    }
    // `make verify` retrains one epoch of each run it checks.
    let full: Vec<&RunRecord> = runs.iter().copied().filter(|r| r.config.protocol == Protocol::ARTICLE).collect();
    if let Some(epoch) = median_epoch_seconds(full.iter().copied()) {
        let _ = writeln!(p, "\n{}", fill(&m.repro_verify_time, &[("time", &text::duration(m, epoch / 3600.0)), ("n", &full.len().to_string())]));
    }

    let _ = writeln!(p, "\n## {}\n\n{}\n", m.repro_engine_title, m.repro_engine_intro);
    p.push_str(&text::header(&[&m.col_commit, &m.col_engine, &m.col_arithmetic, &m.col_runs, &m.col_studies]));
    // An engine: its commit, version and arithmetic.
    let engine = |r: &RunRecord| (r.engine.git_commit.clone().unwrap_or_else(|| "–".into()), r.engine.version.clone(), r.engine.arithmetic);
    let mut commits: BTreeMap<(String, String, u32), (usize, Vec<String>)> = BTreeMap::new();
    for r in &runs {
        commits.entry(engine(r)).or_default().0 += 1;
    }
    for d in &all {
        for r in d.runs.iter().filter_map(|r| r.record()) {
            let studies = &mut commits.get_mut(&engine(r)).expect("every record was counted").1;
            let name = format!("`{}`", d.study.name);
            if !studies.contains(&name) {
                studies.push(name);
            }
        }
    }
    for ((commit, version, arithmetic), (n, studies)) in &commits {
        p.push_str(&text::row(&[format!("`{commit}`"), version.clone(), arithmetic.to_string(), n.to_string(), studies.join(&m.list_separator)]));
    }
    p
}
