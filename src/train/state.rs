//! Where a run stands, read from its directory alone (so any machine that
//! sees the shared `artifacts/` can tell).

use super::checkpoint::{self, Checkpoint};
use super::record::{RunRecord, Status};
use anyhow::Result;
use std::path::Path;

#[derive(Clone, Debug)]
pub enum RunState {
    Missing,
    /// A checkpoint after this many epochs; nobody is running it.
    Partial(usize),
    /// A live process holds the run's lock (`host pid`).
    Running(String),
    Finished(Box<RunRecord>),
    Diverged(Box<RunRecord>, usize),
    /// The files are there but unreadable.
    Corrupt(String),
}

impl RunState {
    pub fn read(dir: &Path) -> Result<RunState> {
        let rj = dir.join("run.json");
        if rj.exists() {
            let text = std::fs::read_to_string(&rj)?;
            return Ok(match super::record::parse(&text) {
                Ok(r) => match r.status {
                    Status::Diverged { epoch } => RunState::Diverged(Box::new(r), epoch),
                    _ => RunState::Finished(Box::new(r)),
                },
                Err(e) => RunState::Corrupt(format!("{}: {e}", rj.display())),
            });
        }
        if let Some(who) = super::lock::holder(dir) {
            return Ok(RunState::Running(who));
        }
        if dir.join(checkpoint::FILE).exists() {
            return Ok(match Checkpoint::load(dir) {
                Ok(Some(ck)) => RunState::Partial(ck.epochs_done()),
                Ok(None) => RunState::Missing,
                Err(e) => RunState::Corrupt(format!("{e:#}")),
            });
        }
        Ok(RunState::Missing)
    }

    pub fn label(&self) -> String {
        match self {
            RunState::Missing => "missing".into(),
            RunState::Partial(k) => format!("partial (epoch {k})"),
            RunState::Running(who) => format!("running ({who})"),
            RunState::Finished(_) => "done".into(),
            RunState::Diverged(_, e) => format!("diverged (epoch {e})"),
            RunState::Corrupt(why) => format!("corrupt: {why}"),
        }
    }

    /// Whether the run has its final artifacts (finished or diverged).
    pub fn is_done(&self) -> bool {
        matches!(self, RunState::Finished(_) | RunState::Diverged(..))
    }
}

