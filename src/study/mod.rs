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
use crate::train::identity::RunIdentity;
use crate::train::lock::RunLock;
use crate::train::record::RunRecord;
use crate::train::{self, Ended, Reporter, TrainConfig};
use anyhow::{bail, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
pub use spec::{RunSpec, Study};
use crate::train::state::RunState;
use std::path::{Path, PathBuf};
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
    /// Finished before this process got to them (by anyone, at any time).
    already_done: usize,
    pub diverged: usize,
    /// Finished runs copied into the artifacts.
    pub published: usize,
    /// Runs left undone, each with why and what to do: not published,
    /// damaged, or held by a process that never finished them.
    pub undone: Vec<String>,
}

impl Summary {
    pub fn line(&self, what: &str) -> String {
        let undone = if self.undone.is_empty() { String::new() } else { format!(", {} NOT DONE", self.undone.len()) };
        format!("{what}: {} trained, {} already done, {} diverged, {} published{undone}", self.trained, self.already_done, self.diverged, self.published)
    }
}

/// One run to compute: its configuration and a label for messages.
#[derive(Clone, Debug)]
pub struct Job {
    pub config: TrainConfig,
    pub label: String,
}

/// A job this process is to train: its label and folders.
struct Pending {
    label: String,
    config: TrainConfig,
    dir: PathBuf,
    published: PathBuf,
}

/// Train every job that is not finished yet — in the store, or already
/// published in the artifacts — and publish each run as it finishes. Jobs
/// with the same identity are one run. A run another worker holds is
/// skipped at first and waited for at the end: finished by anyone counts as
/// done, and one its holder left unfinished is resumed here. Nothing that
/// is left undone (unpublished, damaged) goes unsaid: it is in `undone`.
pub fn compute(jobs: &[Job], data: &Dataset, opts: &RunOptions, title: &str) -> Result<Summary> {
    let multi = MultiProgress::new();
    let overall = multi.add(ProgressBar::new(jobs.len() as u64));
    overall.set_style(ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} runs, ETA {eta}").unwrap().progress_chars("##-"));
    overall.set_prefix(title.to_string());
    // Where no bars can be drawn (a log file), each epoch gets its line instead.
    let reporter = Reporter { multi: Some(multi.clone()), epoch_lines: multi.is_hidden() };
    // Above the bars on a terminal; where none are drawn (a log file, SLURM), as plain lines.
    let say = |s: String| if multi.is_hidden() { println!("{s}") } else { multi.println(s).unwrap_or(()) };
    let (store, artifacts) = (opts.store.on(&data.manifest.tensors_sha256), opts.artifacts.on(&data.manifest.tensors_sha256));
    let mut summary = Summary::default();
    let mut pending: Vec<Pending> = Vec::new();
    let mut seen = Vec::new();
    for job in jobs {
        let (dir, published) = (store.dir(&job.config), artifacts.dir(&job.config));
        if seen.contains(&dir) {
            overall.inc(1);
            continue;
        }
        seen.push(dir.clone());
        let p = Pending { label: job.label.clone(), config: job.config.clone(), dir, published };
        if !opts.force && done_already(&p, data, &mut summary)? {
            overall.inc(1);
            continue;
        }
        pending.push(p);
    }
    // Train; then wait for the runs other workers held, and train what they left.
    let mut force = opts.force;
    while !pending.is_empty() {
        let configs: Vec<TrainConfig> = pending.iter().map(|p| p.config.clone()).collect();
        let dirs: Vec<PathBuf> = pending.iter().map(|p| p.dir.clone()).collect();
        let mut busy: Vec<(usize, String)> = Vec::new();
        train::run_all(&configs, &dirs, data, &opts.device, &reporter, force, &mut |i, ended| {
            let p = &pending[i];
            match ended {
                Ended::Trained(out) => {
                    let rec = &out.record;
                    match rec.status {
                        train::record::Status::Diverged { epoch } => {
                            summary.diverged += 1;
                            say(format!("{}: diverged at epoch {epoch}", p.label));
                        }
                        _ => say(format!("{}: val_accuracy {:.4}, val_loss {:.4} ({:.0} s)", p.label, rec.final_test_accuracy.unwrap_or(f64::NAN), rec.final_test_loss.unwrap_or(f64::NAN), rec.wall_seconds)),
                    }
                    summary.trained += 1;
                    overall.inc(1);
                    // The run's files are complete (run.json was written last); copy them now, so
                    // that nothing finished is ever only in the store.
                    publish_into(p, &mut summary);
                }
                Ended::AlreadyFinished => {
                    summary.already_done += 1;
                    overall.inc(1);
                    publish_into(p, &mut summary);
                }
                Ended::Busy(who) => {
                    say(format!("{}: {who} is training it; going on, and coming back to it at the end", p.label));
                    busy.push((i, who));
                }
            }
        })?;
        force = false;
        let mut again = vec![false; pending.len()];
        for (i, who) in busy {
            let p = &pending[i];
            say(format!("{}: waiting for {who} to finish it", p.label));
            RunLock::wait(&p.dir)?;
            // Finished by its holder, or stopped before the end: then resumed here.
            again[i] = !done_already(p, data, &mut summary)?;
            if !again[i] {
                overall.inc(1);
            }
        }
        pending = pending.into_iter().zip(again).filter(|(_, a)| *a).map(|(p, _)| p).collect();
    }
    overall.finish_and_clear();
    for u in &summary.undone {
        eprintln!("not done: {u}");
    }
    Ok(summary)
}

/// Whether `p` is finished already (in the store, published from there if
/// need be, or published alone). A published run that fails its checksum is
/// damaged: left undone, with what to do.
fn done_already(p: &Pending, data: &Dataset, summary: &mut Summary) -> Result<bool> {
    let want = RunIdentity::new(&p.config, &data.manifest.tensors_sha256);
    match RunState::read(&p.dir)? {
        RunState::Finished(rec) | RunState::Diverged(rec, _) => {
            check_identity(&p.dir, &rec, &want)?;
            summary.already_done += 1;
            publish_into(p, summary);
            return Ok(true);
        }
        RunState::Corrupt(why) => bail!("{}: {why}; remove {} (or pass --force) to train it again", p.label, p.dir.display()),
        RunState::Missing | RunState::Partial(_) | RunState::Running(_) => {}
    }
    // Published but not in this store (a fresh machine with the committed runs): done, if intact.
    match RunState::read(&p.published)? {
        RunState::Finished(rec) | RunState::Diverged(rec, _) => {
            check_identity(&p.published, &rec, &want)?;
            if let Err(e) = crate::store::check_published(&p.published, &rec) {
                summary.undone.push(format!("{}: {e:#}; restore it (git checkout -- {}) or remove it to compute it again", p.label, p.published.display()));
            } else {
                summary.already_done += 1;
            }
            Ok(true)
        }
        RunState::Corrupt(why) => {
            summary.undone.push(format!("{}: {why}; restore it (git checkout -- {}) or remove it to compute it again", p.label, p.published.display()));
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Publish a finished run of the store; a failure is recorded, not fatal
/// (the other runs still train), and makes the computation fail at the end.
fn publish_into(p: &Pending, summary: &mut Summary) {
    match publish(&p.dir, &p.published) {
        Ok(copied) => summary.published += copied as usize,
        Err(e) => summary.undone.push(format!("{}: finished in {}, but not published: {e:#}", p.label, p.dir.display())),
    }
}

/// A run folder's record must be the run asked for (its whole identity);
/// anything else was put there by hand, or by another version of actlab.
fn check_identity(dir: &Path, found: &RunRecord, want: &RunIdentity) -> Result<()> {
    let have = RunIdentity::of_record(found);
    if have != *want {
        bail!("{} holds another run ({}), not {} (they differ in {}); move it away", dir.display(), have.describe(), want.describe(), have.differences(want));
    }
    Ok(())
}

/// The jobs of a study's shard at `protocol`.
pub fn jobs(study: &Study, protocol: &Protocol, shard: Shard) -> Vec<Job> {
    shard.select(&study.grid()).into_iter().map(|r| Job { label: format!("{} {} seed {}", study.name, r.activation, r.seed), config: study.config(&r, protocol) }).collect()
}
