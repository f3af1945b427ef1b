//! Reading a study's published runs, and the per-run and per-function
//! numbers every chapter draws on. The report reads nothing else: a study
//! can be run anywhere and reported anywhere.
//!
//! Missing, partial, diverged and corrupt runs are kept (never dropped,
//! never invented): they appear in `runs` with their state, and only runs
//! whose files are readable and match run.json carry a history.

use crate::activation::Activation;
use crate::io::sha256_file;
use crate::store::Runs;
use crate::study::Study;
use crate::train::state::RunState;
use crate::train::config::Protocol;
use crate::train::diagnostics::HEADER as DIAGNOSTICS_HEADER;
use crate::train::identity::RunIdentity;
use crate::train::record::RunRecord;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// One epoch of history.csv.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Epoch {
    pub loss: f64,
    pub accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
}

/// The columns of history.csv, in order.
pub const HISTORY_COLUMNS: [&str; 4] = ["loss", "accuracy", "val_loss", "val_accuracy"];

impl Epoch {
    /// The value of a history column by name (one of [`HISTORY_COLUMNS`]).
    pub fn get(&self, column: &str) -> f64 {
        match column {
            "loss" => self.loss,
            "accuracy" => self.accuracy,
            "val_loss" => self.val_loss,
            "val_accuracy" => self.val_accuracy,
            other => panic!("no history column `{other}`"),
        }
    }
}

/// One row of diagnostics.csv: one activated layer after one epoch (epoch 0:
/// before training).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerRow {
    pub epoch: usize,
    pub layer: String,
    /// The numeric columns, in [`diagnostic_columns`] order.
    pub values: Vec<f64>,
}

/// The numeric columns of diagnostics.csv (all but `epoch` and `layer`).
fn diagnostic_columns() -> impl Iterator<Item = &'static str> {
    DIAGNOSTICS_HEADER.split(',').skip(2)
}

fn diagnostic_index(column: &str) -> usize {
    diagnostic_columns().position(|c| c == column).unwrap_or_else(|| panic!("no diagnostics column `{column}`"))
}

#[derive(Clone)]
pub struct Run {
    pub activation: Activation,
    pub seed: u64,
    pub dir: PathBuf,
    pub state: RunState,
    /// Why a run with artifacts is not used (unreadable or inconsistent files).
    pub problem: Option<String>,
    /// Per epoch; empty unless the run is usable.
    pub history: Vec<Epoch>,
    pub diagnostics: Vec<LayerRow>,
    /// steps.csv's rows (all columns, `step` first), where the run kept one.
    pub steps: Vec<Vec<f64>>,
}

impl Run {
    pub fn record(&self) -> Option<&RunRecord> {
        match &self.state {
            RunState::Finished(r) | RunState::Diverged(r, _) => Some(r),
            _ => None,
        }
    }

    /// A run whose history the book uses.
    pub fn usable(&self) -> bool {
        self.record().is_some() && self.problem.is_none()
    }

    /// A run that stopped because it diverged.
    pub fn diverged(&self) -> bool {
        matches!(self.state, RunState::Diverged(..))
    }

    /// Why a run with files is damaged (unreadable, or not matching its
    /// `run.json`), if it is.
    pub fn damage(&self) -> Option<&str> {
        match &self.state {
            RunState::Corrupt(why) => Some(why),
            _ => self.problem.as_deref(),
        }
    }

    /// One diagnostics column of one layer: (epoch, value) in epoch order.
    pub fn diagnostic(&self, layer: &str, column: &str) -> Vec<(usize, f64)> {
        let i = diagnostic_index(column);
        self.diagnostics.iter().filter(|r| r.layer == layer).map(|r| (r.epoch, r.values[i])).collect()
    }

    pub fn measures(&self) -> Option<Measures> {
        Measures::of(&self.history)
    }

    /// One steps.csv column: its value at each logged step, in order.
    pub fn step_column(&self, column: &str) -> Vec<f64> {
        let i = crate::train::steps::header().split(',').position(|c| c == column).unwrap_or_else(|| panic!("no steps column `{column}`"));
        self.steps.iter().map(|r| r[i]).collect()
    }
}

/// The last epochs averaged into a run's plateau: one evaluation of the
/// test set is noisy, and the best of 50 of them is biased upward.
pub const PLATEAU_EPOCHS: usize = 5;
/// The last epochs whose val_accuracy trend (a least-squares slope) says
/// whether a curve is still rising: two plateau windows.
pub const TREND_EPOCHS: usize = 2 * PLATEAU_EPOCHS;

/// What the book measures on one run's history.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measures {
    pub epochs: usize,
    /// Mean val_accuracy over the last [`PLATEAU_EPOCHS`] epochs.
    pub plateau_val_accuracy: f64,
    /// The least-squares slope of val_accuracy per epoch over the last
    /// [`TREND_EPOCHS`] epochs, its standard error from the residuals and
    /// their degrees of freedom (all NaN when the run is shorter).
    pub trend: (f64, f64, f64),
    pub best_val_accuracy: f64,
    /// The first epoch (from 1) that reached the best.
    pub best_epoch: usize,
    pub final_val_accuracy: f64,
    /// Mean of accuracy − val_accuracy over the last [`PLATEAU_EPOCHS`] epochs.
    pub overfit_gap: f64,
    pub final_val_loss: f64,
    min_val_loss: f64,
    pub first_val_accuracy: f64,
}

impl Measures {
    pub fn of(h: &[Epoch]) -> Option<Measures> {
        let last = h.last()?;
        let w = PLATEAU_EPOCHS.min(h.len());
        let mean = |s: &[Epoch], f: fn(&Epoch) -> f64| s.iter().map(f).sum::<f64>() / s.len() as f64;
        let tail = &h[h.len() - w..];
        let trend = if h.len() >= TREND_EPOCHS {
            crate::report::stats::slope(&h[h.len() - TREND_EPOCHS..].iter().map(|e| e.val_accuracy).collect::<Vec<_>>())
        } else {
            (f64::NAN, f64::NAN, f64::NAN)
        };
        let (mut best, mut best_epoch) = (f64::NEG_INFINITY, 0);
        for (i, e) in h.iter().enumerate() {
            if e.val_accuracy > best {
                (best, best_epoch) = (e.val_accuracy, i + 1);
            }
        }
        Some(Measures {
            epochs: h.len(),
            plateau_val_accuracy: mean(tail, |e| e.val_accuracy),
            trend,
            best_val_accuracy: best,
            best_epoch,
            final_val_accuracy: last.val_accuracy,
            overfit_gap: mean(tail, |e| e.accuracy - e.val_accuracy),
            final_val_loss: last.val_loss,
            min_val_loss: h.iter().map(|e| e.val_loss).fold(f64::INFINITY, f64::min),
            first_val_accuracy: h[0].val_accuracy,
        })
    }
}

pub struct StudyData {
    pub study: Study,
    /// The protocol of these runs: the study's own, or a reduction of it.
    pub protocol: Protocol,
    pub runs: Vec<Run>,
}

/// Mean, min and max over seeds, per epoch (from 1).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Band {
    pub mean: Vec<f64>,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
}

impl StudyData {
    /// How many test images each evaluation saw (for the binomial band of chance).
    pub fn test_images(&self) -> usize {
        self.protocol.test_limit.or_else(|| self.runs.iter().find_map(|r| r.record()).map(|r| r.dataset.test_images)).unwrap_or(10_000)
    }

    /// How many last epochs the plateau averages at this protocol (all of
    /// them when there are fewer than [`PLATEAU_EPOCHS`]).
    pub fn plateau_window(&self) -> usize {
        PLATEAU_EPOCHS.min(self.protocol.epochs)
    }

    /// The usable runs of one function, in seed order.
    pub fn usable(&self, a: Activation) -> impl Iterator<Item = &Run> {
        self.runs.iter().filter(move |r| r.activation == a && r.usable())
    }

    /// (seed, measures) of each usable run of `a`.
    pub fn measures(&self, a: Activation) -> Vec<(u64, Measures)> {
        self.usable(a).filter_map(|r| Some((r.seed, r.measures()?))).collect()
    }

    /// The seeds of `a` that diverged, with the epoch each stopped at.
    pub fn diverged(&self, a: Activation) -> Vec<(u64, usize)> {
        self.usable(a).filter_map(|r| if let RunState::Diverged(_, e) = r.state { Some((r.seed, e)) } else { None }).collect()
    }

    /// The usable runs of `a` that may be averaged together, and those set
    /// aside: the runs that diverged, and, when some seeds learned and some
    /// did not (by the plateau, [`crate::report::rules::split`]), the ones
    /// that did not. Every mean, band and diagnostic of a function is over
    /// the first group only; the others are drawn one by one.
    pub fn cohorts(&self, a: Activation) -> (Vec<&Run>, Vec<&Run>) {
        let split = crate::report::rules::split(self, a, crate::study::spec::Metric::PlateauValAccuracy);
        let did_not_learn = |r: &Run| split.as_ref().is_some_and(|sp| sp.did_not_learn.iter().any(|x| x.0 == r.seed));
        self.usable(a).partition(|r| !r.diverged() && !did_not_learn(r))
    }

    /// A history column over seeds (the cohort that may be averaged), per
    /// epoch; an epoch counts the runs that reached it.
    pub fn band(&self, a: Activation, column: &str) -> Band {
        let runs: Vec<&Run> = self.cohorts(a).0;
        let epochs = runs.iter().map(|r| r.history.len()).max().unwrap_or(0);
        let mut b = Band::default();
        for e in 0..epochs {
            let v: Vec<f64> = runs.iter().filter_map(|r| r.history.get(e)).map(|x| x.get(column)).collect();
            b.mean.push(v.iter().sum::<f64>() / v.len() as f64);
            b.min.push(v.iter().copied().fold(f64::INFINITY, f64::min));
            b.max.push(v.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        }
        b
    }

    /// A diagnostics column of one layer, averaged over the seeds that may
    /// be averaged ([`Self::cohorts`]): (epoch, mean).
    pub fn diagnostic(&self, a: Activation, layer: &str, column: &str) -> Vec<(usize, f64)> {
        let per_run: Vec<Vec<(usize, f64)>> = self.cohorts(a).0.into_iter().map(|r| r.diagnostic(layer, column)).filter(|v| !v.is_empty()).collect();
        let mut epochs: Vec<usize> = per_run.iter().flatten().map(|x| x.0).collect();
        epochs.sort_unstable();
        epochs.dedup();
        epochs
            .into_iter()
            .map(|e| {
                let v: Vec<f64> = per_run.iter().filter_map(|r| r.iter().find(|x| x.0 == e)).map(|x| x.1).collect();
                (e, v.iter().sum::<f64>() / v.len() as f64)
            })
            .collect()
    }

    /// A steps.csv column over the seeds that logged it, per step: the band,
    /// and how many runs it averages.
    pub fn step_band(&self, a: Activation, column: &str) -> (Band, usize) {
        let cols: Vec<Vec<f64>> = self.cohorts(a).0.into_iter().map(|r| r.step_column(column)).filter(|c| !c.is_empty()).collect();
        let steps = cols.iter().map(Vec::len).min().unwrap_or(0);
        let mut b = Band::default();
        for i in 0..steps {
            let v: Vec<f64> = cols.iter().map(|c| c[i]).collect();
            b.mean.push(v.iter().sum::<f64>() / v.len() as f64);
            b.min.push(v.iter().copied().fold(f64::INFINITY, f64::min));
            b.max.push(v.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        }
        (b, cols.len())
    }

    /// The mean of a diagnostic after `epoch` (0: before training), if measured.
    pub fn diagnostic_at(&self, a: Activation, layer: &str, column: &str, epoch: usize) -> Option<f64> {
        self.diagnostic(a, layer, column).into_iter().find(|x| x.0 == epoch).map(|x| x.1)
    }

    /// The last epoch's mean of a diagnostic.
    pub fn diagnostic_last(&self, a: Activation, layer: &str, column: &str) -> Option<f64> {
        self.diagnostic(a, layer, column).last().map(|x| x.1)
    }
}

/// A CSV file with a fixed header: its rows as fields.
fn read_csv(path: &Path, header: &str) -> Result<Vec<Vec<String>>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines();
    let got = lines.next().unwrap_or("");
    if got != header {
        bail!("{}: columns are `{got}`, expected `{header}`", path.display());
    }
    let width = header.split(',').count();
    lines
        .enumerate()
        .map(|(i, l)| {
            let f: Vec<String> = l.split(',').map(String::from).collect();
            if f.len() != width {
                bail!("{}: line {}: {} fields, expected {width}", path.display(), i + 2, f.len());
            }
            Ok(f)
        })
        .collect()
}

fn number(path: &Path, line: usize, field: &str) -> Result<f64> {
    field.parse().with_context(|| format!("{}: line {line}: `{field}` is not a number", path.display()))
}

/// What a run's files hold.
struct RunFiles {
    history: Vec<Epoch>,
    diagnostics: Vec<LayerRow>,
    steps: Vec<Vec<f64>>,
}

/// One run's history, diagnostics and steps, checked against run.json.
fn read_run(dir: &Path, rec: &RunRecord) -> Result<RunFiles> {
    let hp = dir.join("history.csv");
    if sha256_file(&hp)? != rec.history_sha256 {
        bail!("{} does not match the sha256 recorded in run.json (edited or corrupt)", hp.display());
    }
    let mut history = Vec::new();
    for (i, f) in read_csv(&hp, &HISTORY_COLUMNS.join(","))?.iter().enumerate() {
        let v = |k: usize| number(&hp, i + 2, &f[k]);
        history.push(Epoch { loss: v(0)?, accuracy: v(1)?, val_loss: v(2)?, val_accuracy: v(3)? });
    }
    if history.len() != rec.epochs_completed {
        bail!("{}: {} rows, run.json says {} epochs", hp.display(), history.len(), rec.epochs_completed);
    }
    let dp = dir.join("diagnostics.csv");
    let mut diagnostics = Vec::new();
    if dp.exists() {
        for (i, f) in read_csv(&dp, DIAGNOSTICS_HEADER)?.iter().enumerate() {
            let epoch = f[0].parse().with_context(|| format!("{}: line {}: epoch `{}` is not a whole number", dp.display(), i + 2, f[0]))?;
            let values = f[2..].iter().map(|x| number(&dp, i + 2, x)).collect::<Result<_>>()?;
            diagnostics.push(LayerRow { epoch, layer: f[1].clone(), values });
        }
    }
    let sp = dir.join(crate::train::steps::FILE);
    let mut steps = Vec::new();
    if sp.exists() {
        for (i, f) in read_csv(&sp, &crate::train::steps::header())?.iter().enumerate() {
            steps.push(f.iter().map(|x| number(&sp, i + 2, x)).collect::<Result<_>>()?);
        }
    }
    Ok(RunFiles { history, diagnostics, steps })
}

/// The study's runs at `protocol` from the published runs. A run whose
/// record is not the run its folder stands for (another dataset, network,
/// engine arithmetic, function, seed or protocol) is an error: no statistic
/// mixes identities. Messages name folders relative to the artifacts, never
/// a local path.
pub fn load(study: &Study, artifacts: &Runs, protocol: &Protocol) -> Result<StudyData> {
    let local = |text: String| text.replace(&format!("{}/", artifacts.root.display()), "");
    let mut runs = Vec::new();
    for (spec, dir) in study.runs_in(artifacts, protocol) {
        let state = match RunState::read(&dir)? {
            RunState::Corrupt(why) => RunState::Corrupt(local(why)),
            s => s,
        };
        let mut run = Run { activation: spec.activation, seed: spec.seed, dir, state, problem: None, history: vec![], diagnostics: vec![], steps: vec![] };
        if let Some(rec) = run.record() {
            let (have, want) = (RunIdentity::of_record(rec), RunIdentity::new(&study.config(&spec, protocol), &artifacts.dataset));
            if have != want {
                bail!("{} holds another run ({}) than its folder stands for ({}): they differ in {}; move it away", artifacts.relative(&run.dir), have.describe(), want.describe(), have.differences(&want));
            }
            match read_run(&run.dir, rec) {
                Ok(f) => (run.history, run.diagnostics, run.steps) = (f.history, f.diagnostics, f.steps),
                Err(e) => run.problem = Some(local(format!("{e:#}"))),
            }
        }
        runs.push(run);
    }
    Ok(StudyData { study: study.clone(), protocol: *protocol, runs })
}

/// The reductions of the study's protocol at which any of its runs are
/// published (each is shown apart, never mixed with the study's own).
pub fn reductions(study: &Study, artifacts: &Runs) -> Result<Vec<Protocol>> {
    let mut out = Vec::new();
    for p in artifacts.protocols()? {
        if p.is_reduction_of(&study.protocol) && study.runs_in(artifacts, &p).iter().any(|(_, d)| d.join("run.json").exists()) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Constructed studies and runs for the report's unit tests.
#[cfg(test)]
pub(crate) mod constructed {
    use super::*;
    use crate::study::Study;

    pub const STUDY: &str = r#"
name = "t"
title = "T"
dataset = "cifar10"
seeds = [1, 2, 3]
baseline = "relu"
similar_margin = 0.02
[[functions]]
name = "relu"
[[functions]]
name = "tanh"
claims = [
  { metric = "plateau_val_accuracy", than = "relu", expect = "higher" },
  { metric = "overfit_gap", than = "relu", expect = "lower" },
]
[[functions]]
name = "signed_sqrt"
claims = [{ metric = "plateau_val_accuracy", than = "relu", expect = "similar" }]
"#;

    /// A constructed run: val_accuracy rises linearly from 55 % of `level` to it over the
    /// first half, then stays flat (or keeps rising by `slope` per epoch),
    /// training accuracy `gap` above it.
    pub fn run(a: Activation, seed: u64, level: f64, gap: f64, slope: f64) -> Run {
        let epochs = 20;
        let history = (1..=epochs)
            .map(|e| {
                let v = if e <= 10 { level * (0.5 + 0.05 * e as f64) } else { level + slope * (e - 10) as f64 };
                Epoch { loss: 1.0, accuracy: v + gap, val_loss: 1.0, val_accuracy: v }
            })
            .collect();
        let rec: crate::train::record::RunRecord = serde_json::from_str(include_str!("../../artifacts/e50-b64/relu/seed-1/run.json")).unwrap();
        Run { activation: a, seed, dir: "x".into(), state: RunState::Finished(Box::new(rec)), problem: None, history, diagnostics: vec![], steps: vec![] }
    }

    pub fn data(runs: Vec<Run>) -> StudyData {
        data_of(STUDY, runs)
    }

    /// The runs under another study file.
    pub fn data_of(study: &str, runs: Vec<Run>) -> StudyData {
        let study = Study::parse(study, std::path::Path::new("t.toml")).unwrap();
        StudyData { protocol: study.protocol, study, runs }
    }

    pub fn three(a: Activation, levels: [f64; 3], gap: f64, slope: f64) -> Vec<Run> {
        (0..3).map(|i| run(a, i as u64 + 1, levels[i], gap, slope)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(acc: f64, val: f64) -> Epoch {
        Epoch { loss: 1.0 - acc, accuracy: acc, val_loss: 1.0 - val, val_accuracy: val }
    }

    #[test]
    fn measures_of_a_history() {
        // val_accuracy 0.1 … 1.0 over ten epochs, training 0.05 above it.
        let h: Vec<Epoch> = (1..=10).map(|i| epoch(i as f64 / 10.0 + 0.05, i as f64 / 10.0)).collect();
        let m = Measures::of(&h).unwrap();
        assert_eq!((m.epochs, m.best_epoch), (10, 10));
        assert!((m.plateau_val_accuracy - 0.8).abs() < 1e-12 && (m.trend.0 - 0.1).abs() < 1e-12 && m.trend.1.abs() < 1e-12);
        assert!((m.overfit_gap - 0.05).abs() < 1e-12 && (m.first_val_accuracy - 0.1).abs() < 1e-12);
        assert!((m.min_val_loss - 0.0).abs() < 1e-12);
        // Too short for the trend window: no trend.
        assert!(Measures::of(&h[..6]).unwrap().trend.0.is_nan());
        // The first epoch reaching the best counts.
        let m = Measures::of(&[epoch(0.5, 0.4), epoch(0.5, 0.6), epoch(0.5, 0.6)]).unwrap();
        assert_eq!(m.best_epoch, 2);
        assert!(Measures::of(&[]).is_none());
    }
}
