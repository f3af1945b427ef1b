//! Studies: a grid of (function, seed) runs, computed in the run store (see
//! [`crate::store`]) so that it survives crashes and fresh checkouts, each
//! finished run published into `artifacts/`. A grid can be split across
//! machines with `--shard i/n` (SLURM arrays, Kubernetes Indexed Jobs)
//! sharing one store.

pub mod index;
pub mod queue;
pub mod spec;
pub mod state;

use crate::data::Dataset;
use crate::engine::device::Selected;
use crate::store::{publish, Runs};
use crate::train::config::Protocol;
use crate::train::{self, Reporter, TrainConfig};
use anyhow::{bail, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
pub use spec::{RunSpec, Study};
use crate::train::state::RunState;
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

/// How `actlab study run` and `actlab queue run` train.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub force: bool,
    pub device: Selected,
    /// Where runs train (checkpoints live here).
    pub store: Runs,
    /// Where finished runs are published.
    pub artifacts: Runs,
}

/// What a computation did, for the summary line.
#[derive(Debug, Default)]
pub struct Summary {
    pub trained: usize,
    already_done: usize,
    pub diverged: usize,
    /// Runs another process holds (label and holder).
    pub busy: Vec<String>,
    /// Finished runs copied into the artifacts.
    pub published: usize,
}

impl Summary {
    pub fn line(&self, what: &str) -> String {
        let busy = if self.busy.is_empty() { String::new() } else { format!(", {} busy elsewhere: {}", self.busy.len(), self.busy.join("; ")) };
        format!("{what}: {} trained, {} already done, {} diverged, {} published{busy}", self.trained, self.already_done, self.diverged, self.published)
    }
}

/// One run to compute: its configuration and a label for messages.
#[derive(Clone, Debug)]
pub struct Job {
    pub config: TrainConfig,
    pub label: String,
}

/// Train every job that is not finished yet — in the store, or already
/// published in the artifacts — and publish each run as it finishes. Jobs
/// with the same identity are one run.
pub fn compute(jobs: &[Job], data: &Dataset, opts: &RunOptions, title: &str) -> Result<Summary> {
    let multi = MultiProgress::new();
    let overall = multi.add(ProgressBar::new(jobs.len() as u64));
    overall.set_style(ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} runs, ETA {eta}").unwrap().progress_chars("##-"));
    overall.set_prefix(title.to_string());
    // Where no bars can be drawn (a log file), each epoch gets its line instead.
    let reporter = Reporter { multi: Some(multi.clone()), epoch_lines: multi.is_hidden() };
    let mut summary = Summary::default();
    let (mut configs, mut dirs, mut labels, mut seen) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for job in jobs {
        let (dir, published) = (opts.store.dir(&job.config), opts.artifacts.dir(&job.config));
        if seen.contains(&dir) {
            overall.inc(1);
            continue;
        }
        seen.push(dir.clone());
        if opts.force {
            train::clear_run(&dir)?;
        } else {
            match RunState::read(&dir)? {
                RunState::Finished(rec) | RunState::Diverged(rec, _) => {
                    check_identity(&dir, &rec.config, &job.config)?;
                    summary.published += publish(&dir, &published)? as usize;
                    summary.already_done += 1;
                    overall.inc(1);
                    continue;
                }
                RunState::Running(who) => {
                    multi.println(format!("{}: skipped, {who} is training it", job.label)).ok();
                    summary.busy.push(format!("{} ({who})", job.label));
                    overall.inc(1);
                    continue;
                }
                RunState::Corrupt(why) => bail!("{}: {why}; remove {} to train it again", job.label, dir.display()),
                RunState::Missing | RunState::Partial(_) => {}
            }
            // Published but not in this store (a fresh machine with the committed runs): done.
            if let RunState::Finished(rec) | RunState::Diverged(rec, _) = RunState::read(&published)? {
                check_identity(&published, &rec.config, &job.config)?;
                summary.already_done += 1;
                overall.inc(1);
                continue;
            }
        }
        configs.push(job.config.clone());
        dirs.push(dir);
        labels.push((job.label.clone(), published));
    }
    train::run_all(&configs, &dirs, data, &opts.device, &reporter, &mut |i, out| {
        let ((label, published), rec) = (&labels[i], &out.record);
        match rec.status {
            train::record::Status::Diverged { epoch } => {
                summary.diverged += 1;
                multi.println(format!("{label}: diverged at epoch {epoch}")).ok();
            }
            _ => {
                multi.println(format!("{label}: val_accuracy {:.4}, val_loss {:.4} ({:.0} s)", rec.final_test_accuracy.unwrap_or(f64::NAN), rec.final_test_loss.unwrap_or(f64::NAN), rec.wall_seconds)).ok();
            }
        }
        summary.trained += 1;
        overall.inc(1);
        // The run's files are complete (run.json was written last); copy them now, so
        // that nothing finished is ever only in the store.
        match publish(&dirs[i], published) {
            Ok(copied) => summary.published += copied as usize,
            Err(e) => {
                multi.println(format!("{label}: finished, but not published: {e:#}")).ok();
            }
        }
    })?;
    overall.finish_and_clear();
    Ok(summary)
}

/// A run folder's record must be the run asked for (same seed, protocol and
/// function definition); anything else was put there by hand.
fn check_identity(dir: &Path, found: &TrainConfig, want: &TrainConfig) -> Result<()> {
    let same = found.seed == want.seed && found.protocol == want.protocol && crate::store::function_dir(found.activation) == crate::store::function_dir(want.activation);
    if !same {
        bail!(
            "{} holds a run of {} seed {} ({}), not {} seed {} ({}); move it away",
            dir.display(),
            found.activation,
            found.seed,
            found.protocol.slug(),
            want.activation,
            want.seed,
            want.protocol.slug()
        );
    }
    Ok(())
}

/// The jobs of a study's shard at `protocol`.
pub fn jobs(study: &Study, protocol: &Protocol, shard: Shard) -> Vec<Job> {
    shard.select(&study.grid()).into_iter().map(|r| Job { label: format!("{} {} seed {}", study.name, r.activation, r.seed), config: study.config(&r, protocol) }).collect()
}
