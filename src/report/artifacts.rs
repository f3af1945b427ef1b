//! Reading a study's artifacts into polars frames. The report reads nothing
//! else: a study can be run anywhere and reported anywhere.
//!
//! Missing, partial, diverged and corrupt runs are kept (never dropped,
//! never invented): they appear in `runs` with their state, and only runs
//! with a readable history contribute rows to the frames.

use crate::activation::Activation;
use crate::io::sha256_file;
use crate::study::state::RunState;
use crate::study::Study;
use crate::store::Runs;
use crate::train::config::Protocol;
use crate::train::record::RunRecord;
use anyhow::{bail, Result};
use polars::prelude::*;
use std::path::{Path, PathBuf};


pub struct Run {
    pub activation: Activation,
    pub seed: u64,
    pub dir: PathBuf,
    pub state: RunState,
    /// Why a run with artifacts is not used (unreadable or inconsistent files).
    pub problem: Option<String>,
}

impl Run {
    pub fn record(&self) -> Option<&RunRecord> {
        match &self.state {
            RunState::Finished(r) | RunState::Diverged(r, _) => Some(r),
            _ => None,
        }
    }
    /// A run whose history is in the frames.
    pub fn usable(&self) -> bool {
        self.record().is_some() && self.problem.is_none()
    }
}

pub struct StudyData {
    pub study: Study,
    /// The protocol of these runs: the study's own, or a reduction of it.
    pub protocol: Protocol,
    pub runs: Vec<Run>,
    /// function, seed, epoch, loss, accuracy, val_loss, val_accuracy.
    pub histories: DataFrame,
    /// function, seed, epoch, layer, and the diagnostics columns.
    pub diagnostics: DataFrame,
}

fn read_csv(path: &Path) -> Result<DataFrame> {
    let read = CsvReadOptions::default().with_has_header(true).try_into_reader_with_file_path(Some(path.to_path_buf())).and_then(|r| r.finish());
    anyhow::Context::with_context(read, || format!("{} is not a readable CSV", path.display()))
}

/// Add `function` and `seed` columns (and cast every number to f64 so frames stack).
fn tag(mut df: DataFrame, act: Activation, seed: u64, ints: &[&str]) -> Result<DataFrame> {
    let h = df.height();
    let mut lf = df.clone().lazy();
    for name in df.get_column_names_owned() {
        let n = name.as_str();
        if n != "layer" {
            let dt = if ints.contains(&n) { DataType::Int64 } else { DataType::Float64 };
            lf = lf.with_column(col(n).cast(dt));
        }
    }
    df = lf.collect()?;
    df.insert_column(0, Column::new("function".into(), vec![act.name(); h]))?;
    df.insert_column(1, Column::new("seed".into(), vec![seed as i64; h]))?;
    Ok(df)
}

fn check_columns(df: &DataFrame, want: &[&str], path: &Path) -> Result<()> {
    let got: Vec<String> = df.get_column_names().iter().map(|s| s.to_string()).collect();
    if got != want {
        bail!("{}: columns are {got:?}, expected {want:?}", path.display());
    }
    Ok(())
}

/// Load one run's history and diagnostics, checking them against run.json.
fn load_run(dir: &Path, rec: &RunRecord, act: Activation, seed: u64) -> Result<(DataFrame, Option<DataFrame>)> {
    let hp = dir.join("history.csv");
    let sha = sha256_file(&hp)?;
    if sha != rec.history_sha256 {
        bail!("{} does not match the sha256 recorded in run.json (edited or corrupt)", hp.display());
    }
    let h = read_csv(&hp)?;
    check_columns(&h, &["loss", "accuracy", "val_loss", "val_accuracy"], &hp)?;
    if h.height() != rec.epochs_completed {
        bail!("{}: {} rows, run.json says {} epochs", hp.display(), h.height(), rec.epochs_completed);
    }
    let mut h = tag(h, act, seed, &[])?;
    h.insert_column(2, Column::new("epoch".into(), (1..=h.height() as i64).collect::<Vec<_>>()))?;
    let dp = dir.join("diagnostics.csv");
    let d = if dp.exists() {
        let d = read_csv(&dp)?;
        check_columns(&d, &crate::train::diagnostics::HEADER.split(',').collect::<Vec<_>>(), &dp)?;
        Some(tag(d, act, seed, &["epoch"])?)
    } else {
        None
    };
    Ok((h, d))
}

fn stack(frames: Vec<DataFrame>) -> Result<DataFrame> {
    let mut it = frames.into_iter();
    let Some(mut acc) = it.next() else { return Ok(DataFrame::empty()) };
    for f in it {
        acc.vstack_mut_owned(f)?;
    }
    Ok(acc)
}

/// The study's runs at `protocol` from the published runs.
pub fn load(study: &Study, artifacts: &Runs, protocol: &Protocol) -> Result<StudyData> {
    let mut runs = Vec::new();
    let (mut hs, mut ds) = (Vec::new(), Vec::new());
    for (spec, dir) in study.runs_in(artifacts, protocol) {
        let state = RunState::read(&dir)?;
        let mut problem = None;
        if let RunState::Finished(rec) | RunState::Diverged(rec, _) = &state {
            match load_run(&dir, rec, spec.activation, spec.seed) {
                Ok((h, d)) => {
                    hs.push(h);
                    ds.extend(d);
                }
                Err(e) => problem = Some(format!("{e:#}")),
            }
        }
        runs.push(Run { activation: spec.activation, seed: spec.seed, dir, state, problem });
    }
    Ok(StudyData { study: study.clone(), protocol: *protocol, runs, histories: stack(hs)?, diagnostics: stack(ds)? })
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

/// One row per usable run: the per-run measures the book tabulates.
pub fn per_run(histories: &DataFrame) -> Result<DataFrame> {
    if histories.height() == 0 {
        return Ok(DataFrame::empty());
    }
    Ok(histories
        .clone()
        .lazy()
        .group_by_stable([col("function"), col("seed")])
        .agg([
            col("val_accuracy").max().alias("best_val_accuracy"),
            col("epoch").gather(col("val_accuracy").arg_max(), false).first().alias("best_epoch"),
            col("val_accuracy").last().alias("final_val_accuracy"),
            (col("accuracy").last() - col("val_accuracy").last()).alias("overfit_gap"),
            col("val_loss").last().alias("final_val_loss"),
            col("epoch").max().alias("epochs"),
        ])
        .collect()?)
}

/// Mean, min and max over seeds of each history column, per function and epoch.
pub fn curves(histories: &DataFrame) -> Result<DataFrame> {
    if histories.height() == 0 {
        return Ok(DataFrame::empty());
    }
    let cols = ["loss", "accuracy", "val_loss", "val_accuracy"];
    let mut aggs = Vec::new();
    for c in cols {
        aggs.push(col(c).mean().alias(format!("{c}_mean")));
        aggs.push(col(c).min().alias(format!("{c}_min")));
        aggs.push(col(c).max().alias(format!("{c}_max")));
    }
    Ok(histories
        .clone()
        .lazy()
        .group_by_stable([col("function"), col("epoch")])
        .agg(aggs)
        .sort(["function", "epoch"], SortMultipleOptions::default().with_maintain_order(true))
        .collect()?)
}

/// Diagnostics averaged over seeds, per function, layer and epoch.
pub fn diagnostics_mean(diag: &DataFrame) -> Result<DataFrame> {
    if diag.height() == 0 {
        return Ok(DataFrame::empty());
    }
    let metrics = ["pre_mean", "pre_std", "post_mean", "post_std", "sparsity", "zero_slope", "dead_units", "grad_in_mean_abs", "weight_grad_norm"];
    Ok(diag
        .clone()
        .lazy()
        .group_by_stable([col("function"), col("layer"), col("epoch")])
        .agg(metrics.iter().map(|m| col(*m).mean()).collect::<Vec<_>>())
        .sort(["function", "layer", "epoch"], SortMultipleOptions::default().with_maintain_order(true))
        .collect()?)
}

/// The f64 values of column `c` on the rows where `filter` holds (in frame order).
fn column_where(df: &DataFrame, filter: Expr, c: &str) -> Result<Vec<f64>> {
    if df.height() == 0 {
        return Ok(Vec::new());
    }
    let f = df.clone().lazy().filter(filter).select([col(c).cast(DataType::Float64)]).collect()?;
    Ok(f.column(c)?.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

fn is_function(act: Activation) -> Expr {
    col("function").eq(lit(act.name()))
}

/// Column `c` of one function's rows.
pub fn values(df: &DataFrame, act: Activation, c: &str) -> Result<Vec<f64>> {
    column_where(df, is_function(act), c)
}

/// Column `c` of one function's rows for one layer.
pub fn layer_values(df: &DataFrame, act: Activation, layer: &str, c: &str) -> Result<Vec<f64>> {
    column_where(df, is_function(act).and(col("layer").eq(lit(layer))), c)
}

/// Column `c` of one run's rows (the per-seed curves).
pub fn run_values(df: &DataFrame, act: Activation, seed: u64, c: &str) -> Result<Vec<f64>> {
    column_where(df, is_function(act).and(col("seed").eq(lit(seed as i64))), c)
}
