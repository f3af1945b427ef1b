//! Where a run stands, read from its directory alone (so any machine that
//! sees the shared `artifacts/` can tell).

use super::Study;
use crate::store::Runs;
use crate::train::checkpoint::{self, Checkpoint};
use crate::train::record::{RunRecord, Status};
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
            return Ok(match crate::train::record::parse(&text) {
                Ok(r) => match r.status {
                    Status::Diverged { epoch } => RunState::Diverged(Box::new(r), epoch),
                    _ => RunState::Finished(Box::new(r)),
                },
                Err(e) => RunState::Corrupt(format!("{}: {e}", rj.display())),
            });
        }
        if let Some(who) = crate::train::lock::holder(dir) {
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

/// The `actlab study status` table: each run of the study at its protocol,
/// in the store and in the artifacts.
pub fn status_table(study: &Study, store: &Runs, artifacts: &Runs) -> Result<String> {
    let p = &study.protocol;
    let mut out = format!("{} — {} ({})\nstore: {}\nartifacts: {}\n", study.name, study.title, p.slug(), store.root.display(), artifacts.root.display());
    out.push_str(&format!("{:<24} {:>5}  {:<28} {:<10} {:>7} {:>12}  {}\n", "function", "seed", "store", "artifacts", "epochs", "val_accuracy", "folder"));
    let (mut done, mut total) = (0, 0);
    for r in study.grid() {
        let c = study.config(&r, p);
        let (st, published) = (RunState::read(&store.dir(&c))?, RunState::read(&artifacts.dir(&c))?);
        total += 1;
        let best = if published.is_done() { &published } else { &st };
        let (epochs, acc) = match best {
            RunState::Finished(rec) | RunState::Diverged(rec, _) => {
                done += 1;
                (rec.epochs_completed.to_string(), rec.final_test_accuracy.map(|a| format!("{a:.4}")).unwrap_or_default())
            }
            RunState::Partial(k) => (k.to_string(), String::new()),
            _ => (String::new(), String::new()),
        };
        let committed = if published.is_done() { "published" } else { "–" };
        let folder = store.dir(&c);
        let folder = folder.strip_prefix(&store.root).unwrap_or(&folder).display();
        out.push_str(&format!("{:<24} {:>5}  {:<28} {:<10} {:>7} {:>12}  {folder}\n", r.activation.name(), r.seed, st.label(), committed, epochs, acc));
    }
    out.push_str(&format!("{done}/{total} runs complete\n"));
    Ok(out)
}
