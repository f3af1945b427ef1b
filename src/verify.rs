//! `actlab verify`: retrain the first epochs of published runs and compare
//! the history with the stored one, byte for byte.
//!
//! Nothing in a run depends on its total epoch count (shuffles and dropout
//! are keyed by epoch and step), so the first K rows of a K-epoch rerun must
//! equal the first K rows of the stored history. The CPU and CUDA engines
//! compute the same bits, so a run recorded on one is checked on the other.

use crate::activation::Activation;
use crate::data::Dataset;
use crate::engine::device::Selected;
use crate::io::sha256_hex;
use crate::store::check_published;
use crate::train::identity::RunIdentity;
use crate::store::Runs;
use crate::study::Study;
use crate::train::config::Protocol;
use crate::train::record::RunRecord;
use crate::train::{self, Ended, Reporter, TrainConfig};
use anyhow::{bail, Result};
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, PartialEq)]
pub enum Outcome {
    Identical,
    Different(String),
    /// Not retrained: its record is not the run its folder and this data
    /// say (other data, network or arithmetic), or its files are damaged.
    /// A failure too: nothing was shown to be identical.
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
        self.rows.iter().filter(|r| r.outcome != Outcome::Identical).count()
    }
    pub fn failed(&self) -> bool {
        self.mismatches() > 0
    }
    pub fn render(&self) -> String {
        // As wide as the longest run name, so the columns line up.
        let w = self.rows.iter().map(|r| r.run.chars().count()).max().unwrap_or(0).max("run".len());
        let mut s = format!("{:<w$} {:>14}  {}\n", "run", "epochs checked", "identical");
        for r in &self.rows {
            let o = match &r.outcome {
                Outcome::Identical => "yes".to_string(),
                Outcome::Different(why) => format!("NO — {why}"),
                Outcome::NotComparable(why) => format!("NOT CHECKED — {why}"),
            };
            let _ = writeln!(s, "{:<w$} {:>14}  {o}", r.run, r.epochs);
        }
        s
    }
}

/// A published run: its folder, its name in tables and its record.
pub struct Published {
    pub dir: PathBuf,
    /// The folder relative to the artifacts (`protocol/function/seed-n`).
    pub folder: String,
    /// The folder and the function's name, for tables.
    pub name: String,
    pub record: Box<RunRecord>,
}

/// Every published run in `artifacts`, named `protocol/function/seed-n`.
pub fn published(artifacts: &Runs) -> Result<Vec<Published>> {
    Ok(artifacts
        .finished()?
        .into_iter()
        .map(|(dir, record)| {
            let folder = dir.strip_prefix(&artifacts.root).unwrap_or(&dir).to_string_lossy().into_owned();
            let name = format!("{folder} ({})", record.config.activation);
            Published { dir, folder, name, record }
        })
        .collect())
}

/// What kind of function a run trains, for covering every kind in a sample.
fn kind(a: Activation) -> &'static str {
    match a.custom() {
        Some(c) if c.grad.is_some() => "expression with its own slope",
        Some(_) => "expression",
        None if a.uses_min() => "layer-wise built-in",
        None => "built-in",
    }
}

/// A fixed choice of `n` runs: first, in a seeded order, each run that
/// brings a study, a kind of function or a protocol not yet covered; then
/// the rest of that order. The same runs every time, whoever asks.
pub fn sample(runs: Vec<Published>, studies: &[Study], n: usize) -> Vec<Published> {
    let mut order: Vec<(String, Published)> = runs.into_iter().map(|p| (sha256_hex(format!("actlab verify sample {}", p.name).as_bytes()), p)).collect();
    order.sort_by(|a, b| a.0.cmp(&b.0));
    // What a run covers: its studies, its function's kind, its protocol.
    let covers = |p: &Published| -> Vec<String> {
        let c = &p.record.config;
        let mut v: Vec<String> = studies.iter().filter(|s| in_study(p, s)).map(|s| format!("study {}", s.name)).collect();
        v.push(format!("kind {}", kind(c.activation)));
        v.push(format!("protocol {}", c.protocol.slug()));
        v
    };
    let (mut picked, mut rest, mut covered): (Vec<Published>, Vec<Published>, Vec<String>) = (Vec::new(), Vec::new(), Vec::new());
    for (_, p) in order {
        let new: Vec<String> = covers(&p).into_iter().filter(|c| !covered.contains(c)).collect();
        if picked.len() < n && !new.is_empty() {
            covered.extend(new);
            picked.push(p);
        } else {
            rest.push(p);
        }
    }
    picked.extend(rest.into_iter().take(n.saturating_sub(picked.len())));
    picked
}

/// Whether `p` is one of `study`'s runs (its function, by definition, and seed).
fn in_study(p: &Published, study: &Study) -> bool {
    let c = &p.record.config;
    study.seeds.contains(&c.seed) && study.functions.iter().any(|f| crate::store::function_dir(f.activation) == crate::store::function_dir(c.activation))
}

/// The first `k` data rows of a history CSV (with its header).
fn head(csv: &str, k: usize) -> String {
    csv.lines().take(k + 1).map(|l| format!("{l}\n")).collect()
}

/// Retrain the first `epochs` epochs of `runs` on `device` and compare
/// each history, and the parameters after the last epoch retrained where
/// the run recorded them per epoch.
pub fn verify(runs: &[Published], data: &Dataset, epochs: usize, device: &Selected) -> Result<Table> {
    if runs.is_empty() {
        bail!("no published runs to verify");
    }
    let mut rows = Vec::new();
    // Runs to retrain: (row, config, stored history, stored parameter hashes, scratch folder).
    let mut retrain = Vec::new();
    for p in runs {
        let rec = &p.record;
        let k = epochs.min(rec.epochs_completed);
        let (have, want) = (RunIdentity::of_record(rec), RunIdentity::new(&rec.config, &data.manifest.tensors_sha256));
        let problem = if have != want {
            Some(format!("recorded as another run than this data and engine make ({}); import the data it names to check it", have.differences(&want)))
        } else {
            check_published(&p.dir, rec).err().map(|e| format!("{e:#}"))
        };
        if let Some(why) = problem {
            rows.push(Row { run: p.name.clone(), epochs: k, outcome: Outcome::NotComparable(why) });
            continue;
        }
        let stored = std::fs::read_to_string(p.dir.join("history.csv"))?;
        eprintln!("verifying {} (recorded on {}): retraining {k} epoch(s)", p.name, rec.device.class);
        rows.push(Row { run: p.name.clone(), epochs: k, outcome: Outcome::Identical });
        let tmp = tempdir(rows.len())?;
        retrain.push((rows.len() - 1, TrainConfig { protocol: Protocol { epochs: k, ..rec.config.protocol }, ..rec.config.clone() }, stored, rec.params_sha256_by_epoch.get(k - 1).cloned(), tmp));
    }
    let configs: Vec<TrainConfig> = retrain.iter().map(|r| r.1.clone()).collect();
    let dirs: Vec<PathBuf> = retrain.iter().map(|r| r.4.clone()).collect();
    let mut params = vec![None; retrain.len()];
    train::run_all(&configs, &dirs, data, device, &Reporter::default(), false, &mut |i, ended| {
        if let Ended::Trained(o) = ended {
            params[i] = Some(o.record.params_sha256.clone());
        }
    })?;
    for ((row, config, stored, stored_params, tmp), fresh_params) in retrain.into_iter().zip(params) {
        let k = config.protocol.epochs;
        let fresh = std::fs::read_to_string(tmp.join("history.csv"))?;
        let _ = std::fs::remove_dir_all(&tmp);
        if head(&fresh, k) != head(&stored, k) {
            let why = format!("epoch rows differ: stored `{}`, now `{}`", head(&stored, k).lines().last().unwrap_or(""), head(&fresh, k).lines().last().unwrap_or(""));
            rows[row].outcome = Outcome::Different(why);
        } else if let (Some(want), Some(got)) = (&stored_params, &fresh_params)
            && want != got
        {
            rows[row].outcome = Outcome::Different(format!("the parameters after epoch {k} differ: stored sha256 {}…, now {}…", &want[..12], &got[..12]));
        }
    }
    Ok(Table { rows })
}

fn tempdir(i: usize) -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("actlab-verify-{}-{i}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Only the runs of `study` (any protocol), and only those `run` names:
/// `FUNCTION/SEED` (at every protocol) or one folder, `PROTOCOL/FUNCTION/seed-N`.
pub fn select(runs: Vec<Published>, study: Option<&Study>, run: Option<&str>) -> Result<Vec<Published>> {
    let named = |p: &Published, r: &str| r.trim_end_matches('/') == p.folder || format!("{}/{}", p.record.config.activation, p.record.config.seed) == r;
    let picked: Vec<Published> = runs.into_iter().filter(|p| study.is_none_or(|s| in_study(p, s))).filter(|p| run.is_none_or(|r| named(p, r))).collect();
    if let (Some(r), true) = (run, picked.is_empty()) {
        bail!("no published run `{r}`{} (write FUNCTION/SEED, e.g. relu/1, or a folder such as e50-b64/relu/seed-1)", study.map_or(String::new(), |s| format!(" in study {}", s.name)));
    }
    Ok(picked)
}

