//! `actlab verify`: retrain the first epochs of finished runs and compare the
//! history with the stored one, byte for byte.
//!
//! Nothing in a run depends on its total epoch count (shuffles and dropout
//! are keyed by epoch and step), so the first K rows of a K-epoch rerun must
//! equal the first K rows of the stored history.

use crate::data::Dataset;
use crate::io::sha256_file;
use crate::report::finished_runs;
use crate::study::Study;
use crate::engine::device::Selected;
use crate::train::{self, Reporter, TrainConfig};
use std::path::PathBuf;
use anyhow::{bail, Result};
use std::fmt::Write as _;

#[derive(Debug, PartialEq)]
pub enum Outcome {
    Identical,
    Different(String),
    /// Recorded on another dataset: bits are not expected to match.
    NotComparable(String),
}

pub struct Row {
    pub run: String,
    pub epochs: usize,
    pub outcome: Outcome,
}

pub struct Table {
    pub rows: Vec<Row>,
}

impl Table {
    pub fn mismatches(&self) -> usize {
        self.rows.iter().filter(|r| matches!(r.outcome, Outcome::Different(_))).count()
    }
    pub fn failed(&self) -> bool {
        self.mismatches() > 0
    }
    pub fn render(&self) -> String {
        let mut s = format!("{:<28} {:>14}  {}\n", "run", "epochs checked", "identical");
        for r in &self.rows {
            let o = match &r.outcome {
                Outcome::Identical => "yes".to_string(),
                Outcome::Different(why) => format!("NO — {why}"),
                Outcome::NotComparable(why) => format!("not comparable ({why})"),
            };
            let _ = writeln!(s, "{:<28} {:>14}  {o}", r.run, r.epochs);
        }
        s
    }
}

/// The first `k` data rows of a history CSV (with its header).
fn head(csv: &str, k: usize) -> String {
    csv.lines().take(k + 1).map(|l| format!("{l}\n")).collect()
}

/// Retrain the first `epochs` epochs of the study's finished runs on
/// `device` and compare. The CPU and CUDA engines compute the same bits, so
/// a run recorded on one is checked on the other as well.
pub fn verify(study: &Study, data: &Dataset, artifacts: &std::path::Path, epochs: usize, only: Option<&str>, device: &Selected) -> Result<Table> {
    let runs = finished_runs(study, artifacts)?;
    let runs: Vec<_> = match only {
        Some(sel) => {
            let picked: Vec<_> = runs.into_iter().filter(|(s, _)| format!("{}/{}", s.activation, s.seed) == sel).collect();
            if picked.is_empty() {
                bail!("no finished run `{sel}` in study {} (write FUNCTION/SEED, e.g. relu/1; see `actlab study status {}`)", study.name, study.name);
            }
            picked
        }
        None => runs,
    };
    if runs.is_empty() {
        bail!("study {} has no finished runs in {} to verify", study.name, artifacts.display());
    }
    let mut rows = Vec::new();
    // Runs to retrain: (row, config, stored history, scratch folder).
    let mut retrain = Vec::new();
    for (spec, rec) in runs {
        let label = format!("{}/{}", spec.activation, spec.seed);
        let k = epochs.min(rec.epochs_completed);
        let dir = study.run_dir(artifacts, &spec);
        if rec.dataset.tensors_sha256 != data.manifest.tensors_sha256 {
            let why = format!("recorded on dataset {} ({}…), the cache holds {}", rec.dataset.dataset, &rec.dataset.tensors_sha256[..12], data.manifest.dataset);
            rows.push(Row { run: label, epochs: k, outcome: Outcome::NotComparable(why) });
        } else if sha256_file(&dir.join("history.csv"))? != rec.history_sha256 {
            rows.push(Row { run: label, epochs: k, outcome: Outcome::Different("the stored history.csv does not match its sha256 in run.json".into()) });
        } else {
            let stored = std::fs::read_to_string(dir.join("history.csv"))?;
            let tmp = tempdir(&label)?;
            eprintln!("verifying {label} (recorded on {}): retraining {k} epoch(s)", rec.device.class);
            rows.push(Row { run: label, epochs: k, outcome: Outcome::Identical });
            retrain.push((rows.len() - 1, TrainConfig { epochs: k, ..rec.config.clone() }, stored, tmp));
        }
    }
    let configs: Vec<TrainConfig> = retrain.iter().map(|r| r.1.clone()).collect();
    let dirs: Vec<PathBuf> = retrain.iter().map(|r| r.3.clone()).collect();
    train::run_all(&configs, &dirs, data, device, &Reporter::default(), &mut |_, _| {})?;
    for (row, config, stored, tmp) in retrain {
        let k = config.epochs;
        let fresh = std::fs::read_to_string(tmp.join("history.csv"))?;
        let _ = std::fs::remove_dir_all(&tmp);
        if head(&fresh, k) != head(&stored, k) {
            let why = format!("epoch rows differ: stored `{}`, now `{}`", head(&stored, k).lines().last().unwrap_or(""), head(&fresh, k).lines().last().unwrap_or(""));
            rows[row].outcome = Outcome::Different(why);
        }
    }
    Ok(Table { rows })
}

fn tempdir(label: &str) -> Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("actlab-verify-{}-{}", std::process::id(), label.replace('/', "-")));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
