//! Studies: a grid of (function, seed) runs that survives crashes and can be
//! split across machines with `--shard i/n` (SLURM arrays, Kubernetes
//! Indexed Jobs) writing into one shared `artifacts/`.

pub mod spec;
pub mod state;

use crate::data::Dataset;
use crate::train::{self, Reporter};
use crate::engine::device::Selected;
use anyhow::{bail, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
pub use spec::{RunSpec, Study};
use state::RunState;
use std::path::Path;
use std::str::FromStr;

/// `i/n`: the i-th (1-based) of n deterministic slices of the grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("`{s}` is not a shard; write i/n with 1 ≤ i ≤ n, e.g. 2/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (i.trim().parse::<usize>().map_err(|_| bad())?, n.trim().parse::<usize>().map_err(|_| bad())?);
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    pub const ALL: Shard = Shard { index: 1, count: 1 };

    /// Round-robin: run k of the grid belongs to shard (k mod n) + 1, so
    /// every shard gets a mix of functions and the slices cover the grid once.
    pub fn select<T: Clone>(&self, grid: &[T]) -> Vec<T> {
        grid.iter().enumerate().filter(|(k, _)| k % self.count == self.index - 1).map(|(_, r)| r.clone()).collect()
    }
}

/// Options of `actlab study run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub shard: Shard,
    pub force: bool,
    pub epochs: Option<usize>,
    pub train_limit: Option<usize>,
    pub test_limit: Option<usize>,
    pub device: Selected,
}

/// What `run` did, for the summary line.
#[derive(Debug, Default)]
pub struct Summary {
    pub trained: usize,
    pub already_done: usize,
    pub diverged: usize,
    pub busy: Vec<String>,
}

/// Run every unfinished run of the study's shard.
pub fn run(study: &Study, data: &Dataset, artifacts: &Path, opts: &RunOptions) -> Result<Summary> {
    let mut study = study.clone();
    if let Some(e) = opts.epochs {
        study.epochs = e;
    }
    let runs = opts.shard.select(&study.grid());
    let multi = MultiProgress::new();
    let overall = multi.add(ProgressBar::new(runs.len() as u64));
    overall.set_style(ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} runs, ETA {eta}").unwrap().progress_chars("##-"));
    overall.set_prefix(format!("{} (shard {}/{})", study.name, opts.shard.index, opts.shard.count));
    let reporter = Reporter { multi: Some(multi.clone()), epoch_lines: false };
    let mut summary = Summary::default();
    let (mut configs, mut dirs, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for r in &runs {
        let dir = study.run_dir(artifacts, r);
        let config = study.config(r, opts.train_limit, opts.test_limit);
        let label = format!("{} seed {}", r.activation, r.seed);
        match RunState::read(&dir)? {
            RunState::Finished(rec) | RunState::Diverged(rec, _) if !opts.force => {
                if rec.config != config {
                    bail!(
                        "{} holds a finished run with another protocol ({} epochs, train limit {:?}); \
                         pass --force to replace it, or --artifacts DIR to keep both",
                        dir.display(),
                        rec.config.epochs,
                        rec.config.train_limit
                    );
                }
                summary.already_done += 1;
                overall.inc(1);
                continue;
            }
            RunState::Running(pid) => {
                multi.println(format!("{label}: skipped, process {pid} is running it")).ok();
                summary.busy.push(label);
                overall.inc(1);
                continue;
            }
            _ => {}
        }
        if opts.force {
            train::clear_run(&dir)?;
        }
        configs.push(config);
        dirs.push(dir);
        labels.push(label);
    }
    train::run_all(&configs, &dirs, data, &opts.device, &reporter, &mut |i, out| {
        let (label, rec) = (&labels[i], &out.record);
        match rec.status {
            train::record::Status::Diverged { epoch } => {
                summary.diverged += 1;
                multi.println(format!("{label}: diverged at epoch {epoch}")).ok();
            }
            _ => multi
                .println(format!(
                    "{label}: val_accuracy {:.4}, val_loss {:.4} ({:.0} s)",
                    rec.final_test_accuracy.unwrap_or(f64::NAN),
                    rec.final_test_loss.unwrap_or(f64::NAN),
                    rec.wall_seconds
                ))
                .ok()
                .unwrap_or(()),
        }
        summary.trained += 1;
        overall.inc(1);
    })?;
    overall.finish_and_clear();
    Ok(summary)
}
