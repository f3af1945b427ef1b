//! `actlab study status`: where each run of a study stands, in the store
//! and in the artifacts.

use super::Study;
use crate::store::Runs;
use crate::train::state::RunState;
use anyhow::Result;

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
