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
use crate::store::{function_dir, Runs};
use crate::train::checkpoint::Checkpoint;
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
    Running(String),
    /// Epochs done so far (0: not started).
    Left(usize),
}

/// `actlab queue status`: done / running / left, in queue order, with the
/// training time left at the rates measured in the store.
pub fn status(queue: &Queue, store: &Runs, artifacts: &Runs) -> Result<String> {
    let jobs = queue.jobs();
    // Seconds of training per epoch, per (protocol, function), from the store's runs.
    let mut rates: HashMap<(String, String), (f64, usize)> = HashMap::new();
    let mut standings = Vec::new();
    for job in &jobs {
        let dir = store.dir(&job.config);
        let key = (job.config.protocol.slug(), function_dir(job.config.activation));
        let st = RunState::read(&dir)?;
        let (standing, measured) = match &st {
            RunState::Finished(rec) | RunState::Diverged(rec, _) => (Standing::Done, Some((rec.train_seconds, rec.epochs_completed))),
            RunState::Running(who) => (Standing::Running(who.clone()), Checkpoint::load(&dir).ok().flatten().map(|ck| (ck.train_seconds, ck.epochs_done()))),
            _ if RunState::read(&artifacts.dir(&job.config))?.is_done() => (Standing::Done, None),
            RunState::Partial(k) => (Standing::Left(*k), Checkpoint::load(&dir).ok().flatten().map(|ck| (ck.train_seconds, ck.epochs_done()))),
            _ => (Standing::Left(0), None),
        };
        if let Some((secs, epochs)) = measured.filter(|m| m.1 > 0) {
            let r = rates.entry(key).or_insert((0.0, 0));
            r.0 += secs;
            r.1 += epochs;
        }
        standings.push(standing);
    }
    let overall = {
        let (s, e) = rates.values().fold((0.0, 0), |a, r| (a.0 + r.0, a.1 + r.1));
        (e > 0).then(|| s / e as f64)
    };
    let mut out = format!("queue: {} runs of {} (studies/index.toml order)\nstore: {}\n\n", jobs.len(), queue.studies.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "), store.root.display());
    let _ = writeln!(out, "{:<44} {:<12} {:<26} {:>12}", "run", "protocol", "state", "hours left");
    let (mut done, mut running, mut left, mut hours, mut unknown) = (0, 0, 0, 0.0, 0);
    for (job, st) in jobs.iter().zip(&standings) {
        let key = (job.config.protocol.slug(), function_dir(job.config.activation));
        let rate = rates.get(&key).map(|r| r.0 / r.1 as f64).or(overall);
        let epochs_left = match st {
            Standing::Done => 0,
            Standing::Running(_) | Standing::Left(_) => job.config.protocol.epochs - match st {
                Standing::Left(k) => *k,
                _ => 0,
            },
        };
        let h = rate.map(|r| r * epochs_left as f64 / 3600.0);
        let state = match st {
            Standing::Done => {
                done += 1;
                "done".to_string()
            }
            Standing::Running(who) => {
                running += 1;
                format!("running ({who})")
            }
            Standing::Left(k) => {
                left += 1;
                if *k > 0 { format!("partial (epoch {k})") } else { "left".into() }
            }
        };
        match (h, epochs_left) {
            (_, 0) => {}
            (Some(h), _) => hours += h,
            (None, _) => unknown += 1,
        }
        let hl = match (h, epochs_left) {
            (_, 0) => String::new(),
            (Some(h), _) => format!("{h:.1}"),
            (None, _) => "?".into(),
        };
        let _ = writeln!(out, "{:<44} {:<12} {:<26} {:>12}", job.label, job.config.protocol.slug(), state, hl);
    }
    let _ = writeln!(out, "\n{done} done, {running} running, {left} left");
    match overall {
        Some(_) => {
            let _ = write!(out, "about {hours:.1} hours of training left here, at the rates measured in the store (seconds of training per epoch, per function; evaluation adds a little)");
            if unknown > 0 {
                let _ = write!(out, "; {unknown} runs have no measured rate");
            }
            out.push('\n');
        }
        None => out.push_str("no rate measured yet: the time left shows once a run has done an epoch\n"),
    }
    Ok(out)
}
