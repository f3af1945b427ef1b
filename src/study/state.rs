//! Where a run stands, read from its directory alone (so any machine that
//! sees the shared `artifacts/` can tell).

use super::Study;
use crate::train::checkpoint::{self, Checkpoint};
use crate::train::record::{RunRecord, Status};
use anyhow::Result;
use std::path::Path;

#[derive(Clone, Debug)]
pub enum RunState {
    Missing,
    /// A checkpoint after this many epochs; nobody is running it.
    Partial(usize),
    /// A live process holds the run's lock.
    Running(u32),
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
            return Ok(match serde_json::from_str::<RunRecord>(&text) {
                Ok(r) => match r.status {
                    Status::Diverged { epoch } => RunState::Diverged(Box::new(r), epoch),
                    _ => RunState::Finished(Box::new(r)),
                },
                Err(e) => RunState::Corrupt(format!("{}: {e}", rj.display())),
            });
        }
        if let Some(pid) = crate::train::lock::holder(dir) {
            return Ok(RunState::Running(pid));
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
            RunState::Running(pid) => format!("running (pid {pid})"),
            RunState::Finished(_) => "done".into(),
            RunState::Diverged(_, e) => format!("diverged (epoch {e})"),
            RunState::Corrupt(why) => format!("corrupt: {why}"),
        }
    }
}

/// The `actlab study status` table.
pub fn status_table(study: &Study, artifacts: &Path) -> Result<String> {
    let mut out = format!("{} — {}\n", study.name, study.title);
    out.push_str(&format!("{:<20} {:>6}  {:<22} {:>8} {:>12}\n", "function", "seed", "state", "epochs", "val_accuracy"));
    let (mut done, mut total) = (0, 0);
    for r in study.grid() {
        let st = RunState::read(&study.run_dir(artifacts, &r))?;
        total += 1;
        let (epochs, acc) = match &st {
            RunState::Finished(rec) | RunState::Diverged(rec, _) => {
                done += 1;
                (rec.epochs_completed.to_string(), rec.final_test_accuracy.map(|a| format!("{a:.4}")).unwrap_or_default())
            }
            RunState::Partial(k) => (k.to_string(), String::new()),
            _ => (String::new(), String::new()),
        };
        out.push_str(&format!("{:<20} {:>6}  {:<22} {:>8} {:>12}\n", r.activation.name(), r.seed, st.label(), epochs, acc));
    }
    out.push_str(&format!("{done}/{total} runs complete\n"));
    Ok(out)
}
