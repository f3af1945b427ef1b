//! The queue: the studies of `studies/index.toml` at their own protocols, in
//! a fixed order, computed a little at a time (`actlab queue run`) and
//! resumed wherever it stopped — after a crash, on a fresh clone, on another
//! machine sharing the store.
//!
//! Studies are taken in the file's order; within a study the runs go
//! round-robin by seed, so every function has a result before any has all
//! of its seeds. A run several studies share is computed once.

use super::{Job, Study};
use crate::train::state::RunState;
use crate::store::Runs;
use crate::train::checkpoint::Checkpoint;
use crate::train::record::{median_epoch_seconds, RunRecord};
use anyhow::Result;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub struct Queue {
    pub studies: Vec<Study>,
}

impl Queue {
    /// The studies of `dir`'s index, in its order.
    pub fn load(dir: &Path) -> Result<Queue> {
        Ok(Queue { studies: super::index::load(dir)? })
    }

    /// Every run in queue order, each identity once (labelled by the first study that uses it).
    pub fn jobs(&self) -> Vec<Job> {
        let mut seen: Vec<PathBuf> = Vec::new();
        let mut out = Vec::new();
        let key = Runs::at("");
        for s in &self.studies {
            for r in s.by_seed() {
                let config = s.config(&r, &s.protocol);
                let id = key.dir(&config);
                if !seen.contains(&id) {
                    seen.push(id);
                    out.push(Job { label: format!("{} {} seed {}", s.name, r.activation, r.seed), config });
                }
            }
        }
        out
    }
}

/// Where one queued run stands.
enum Standing {
    Done,
    /// Being trained (by whom), with its epochs done so far.
    Running(String, usize),
    /// Epochs done so far (0: not started).
    Left(usize),
}

/// `actlab queue status`: done / running / left, in queue order, with the
/// training time left at the median pace of the finished runs of each protocol.
pub fn status(queue: &Queue, store: &Runs, artifacts: &Runs) -> Result<String> {
    let jobs = queue.jobs();
    // The finished runs' records, per protocol: the store's, or where the store has none, the published one.
    let mut finished: HashMap<String, Vec<RunRecord>> = HashMap::new();
    let mut standings = Vec::new();
    let epochs_done = |dir: &Path| Checkpoint::load(dir).ok().flatten().map_or(0, |ck| ck.epochs_done());
    for job in &jobs {
        let dir = store.dir(&job.config);
        let finished_record = |st: RunState| match st {
            RunState::Finished(rec) | RunState::Diverged(rec, _) => Ok(rec),
            other => Err(other),
        };
        // Done in the store, or else published; else running or left.
        let state = match finished_record(RunState::read(&dir)?) {
            Err(RunState::Running(who)) => Err(Standing::Running(who, epochs_done(&dir))),
            Err(st) => finished_record(RunState::read(&artifacts.dir(&job.config))?).map_err(|_| Standing::Left(if matches!(st, RunState::Partial(_)) { epochs_done(&dir) } else { 0 })),
            Ok(rec) => Ok(rec),
        };
        let standing = match state {
            Ok(rec) => {
                finished.entry(job.config.protocol.slug()).or_default().push(*rec);
                Standing::Done
            }
            Err(standing) => standing,
        };
        standings.push(standing);
    }
    let pace: HashMap<&String, f64> = finished.iter().filter_map(|(p, recs)| Some((p, median_epoch_seconds(recs)?))).collect();
    let mut out = format!("queue: {} runs of {} (studies/index.toml order)\nstore: {}\n\n", jobs.len(), queue.studies.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "), store.root.display());
    let _ = writeln!(out, "{:<44} {:<12} {:<26} {:>12}", "run", "protocol", "state", "hours left");
    let (mut done, mut running, mut left, mut hours, mut unknown) = (0, 0, 0, 0.0, 0);
    for (job, st) in jobs.iter().zip(&standings) {
        let epochs_left = match st {
            Standing::Done => 0,
            Standing::Running(_, k) | Standing::Left(k) => job.config.protocol.epochs.saturating_sub(*k),
        };
        let h = pace.get(&job.config.protocol.slug()).map(|s| s * epochs_left as f64 / 3600.0);
        let state = match st {
            Standing::Done => {
                done += 1;
                "done".to_string()
            }
            Standing::Running(who, k) => {
                running += 1;
                format!("running ({who}, epoch {k})")
            }
            Standing::Left(k) => {
                left += 1;
                if *k > 0 { format!("partial (epoch {k})") } else { "left".into() }
            }
        };
        let hl = match (h, epochs_left) {
            (_, 0) => String::new(),
            (Some(h), _) => {
                hours += h;
                format!("{h:.1}")
            }
            (None, _) => {
                unknown += 1;
                "?".into()
            }
        };
        let _ = writeln!(out, "{:<44} {:<12} {:<26} {:>12}", job.label, job.config.protocol.slug(), state, hl);
    }
    let _ = writeln!(out, "\n{done} done, {running} running, {left} left");
    if pace.is_empty() {
        out.push_str("no pace measured yet: the time left shows once a run of the protocol has finished\n");
    } else {
        let _ = write!(out, "about {hours:.1} hours of training left, at the median training seconds per epoch of each protocol's finished runs (evaluation adds a little)");
        if unknown > 0 {
            let _ = write!(out, "; {unknown} runs are of a protocol with no finished run yet");
        }
        out.push('\n');
    }
    Ok(out)
}
