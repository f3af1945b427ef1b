//! Where runs live: one folder per run identity, so that each run is
//! trained once, whichever studies use it.
//!
//! A run is determined by its identity (`train::identity`): its function's
//! definition, its seed, its protocol (network included), the dataset's
//! tensors and the engine's arithmetic. They name its folder:
//!
//! ```text
//! <root>/<protocol slug>/<function>/seed-<n>/               e.g. e50-b64/relu/seed-1/
//! <root>/data-<12 hex>/<protocol slug>/<function>/seed-<n>/  on any other data
//! ```
//!
//! A built-in function's folder is its name; an expression's is `expr-`
//! and a hash of its normalised definition, so two names for one definition
//! are one run. The committed runs' data (the JPEG q75 copy of CIFAR-10)
//! keeps the plain layout; any other dataset's runs live in their own
//! subtree, named by the hash of its tensors, so no run can ever stand in
//! for one on other data. The arithmetic is frozen (`engine::ARITHMETIC`);
//! every `run.json` records it, and a run whose record is not the identity
//! its folder says is refused wherever it is read.
//!
//! Two trees share this layout: the **store** (`$ACTLAB_STORE`, by default
//! `~/.local/share/actlab/store`), outside any checkout, where runs train
//! and checkpoints survive stops, crashes and fresh clones; and
//! **`artifacts/`**, committed, where each finished run is published
//! (history, diagnostics and run.json, never a checkpoint) and from which
//! the book is built.

use crate::activation::Activation;
use crate::io::{sha256_file, sha256_hex, write_atomic};
use crate::train::identity::RunIdentity;
use crate::train::state::RunState;
use crate::train::config::Protocol;
use crate::train::record::RunRecord;
use crate::train::TrainConfig;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The files a finished run publishes, `run.json` last (its presence means
/// the others are complete); `steps.csv` too where the run kept one.
const PUBLISHED: [&str; 4] = ["history.csv", "diagnostics.csv", crate::train::steps::FILE, "run.json"];

/// Files a run may lack (kept by runs computed after they were introduced).
const OPTIONAL: [&str; 1] = [crate::train::steps::FILE];

/// A tree of run folders laid out by identity: the runs of one dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runs {
    pub root: PathBuf,
    /// sha256 of the tensors of the dataset whose runs these are.
    pub dataset: String,
    /// Where this dataset's protocol folders are: `root`, or its `data-<hash>` subtree.
    base: PathBuf,
}

/// The prefix of a dataset's subtree.
const DATA_PREFIX: &str = "data-";

impl Runs {
    /// The tree at `root`, for the committed runs' data.
    pub fn at(root: impl Into<PathBuf>) -> Runs {
        let root = root.into();
        Runs { base: root.clone(), root, dataset: crate::data::JPEG_Q75_TENSORS_SHA256.into() }
    }

    /// The same tree for the dataset whose tensors hash to `tensors_sha256`.
    pub fn on(&self, tensors_sha256: &str) -> Runs {
        let base = if tensors_sha256 == crate::data::JPEG_Q75_TENSORS_SHA256 { self.root.clone() } else { self.root.join(format!("{DATA_PREFIX}{}", &tensors_sha256[..12.min(tensors_sha256.len())])) };
        Runs { root: self.root.clone(), base, dataset: tensors_sha256.into() }
    }

    /// The full tensors sha256 a user means by `given`: the hash itself, or
    /// any unique prefix of it (at least 6 hex digits), with or without the
    /// `data-` of its folder: the prefix is matched against the committed
    /// runs' data and each `data-<hash>` subtree, and a subtree's full hash
    /// is read from one of its runs.
    pub fn resolve_dataset(&self, given: &str) -> Result<String> {
        let prefix = given.trim().strip_prefix(DATA_PREFIX).unwrap_or(given.trim()).to_ascii_lowercase();
        if prefix.len() < 6 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            anyhow::bail!("--dataset {given:?}: expected the sha256 of a dataset's tensors (64 hex digits, or a unique prefix of 6 or more: `tensors sha256` in `actlab data`'s output, or the name of a data-<hash> folder under {})", self.root.display());
        }
        if prefix.len() == 64 {
            return Ok(prefix);
        }
        let mut candidates: Vec<(String, String)> = Vec::new();
        if crate::data::JPEG_Q75_TENSORS_SHA256.starts_with(&prefix) {
            candidates.push((crate::data::JPEG_Q75_TENSORS_SHA256.into(), "the committed runs' data".into()));
        }
        for dir in sorted_dirs(&self.root)? {
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let Some(short) = name.strip_prefix(DATA_PREFIX) else { continue };
            if !(short.starts_with(&prefix) || prefix.starts_with(short)) {
                continue;
            }
            let subtree = Runs { root: self.root.clone(), base: dir.clone(), dataset: String::new() };
            if let Some((_, rec)) = subtree.finished()?.into_iter().next()
                && rec.dataset.tensors_sha256.starts_with(&prefix)
            {
                candidates.push((rec.dataset.tensors_sha256.clone(), name));
            }
        }
        match candidates.as_slice() {
            [(full, _)] => Ok(full.clone()),
            [] => anyhow::bail!("--dataset {given}: no published runs on a dataset whose tensors sha256 starts so, under {}", self.root.display()),
            many => anyhow::bail!("--dataset {given}: several datasets start so ({}); give more digits", many.iter().map(|(h, w)| format!("{h} in {w}")).collect::<Vec<_>>().join(", ")),
        }
    }

    /// A folder relative to the tree's root, for messages and pages (no local path).
    pub fn relative(&self, dir: &Path) -> String {
        dir.strip_prefix(&self.root).unwrap_or(dir).display().to_string()
    }

    /// The store's default place (the CLI's `--store` / `$ACTLAB_STORE`
    /// comes first): `$XDG_DATA_HOME/actlab/store`, else
    /// `~/.local/share/actlab/store`.
    pub fn default_store() -> Result<Runs> {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let root = match (env("XDG_DATA_HOME"), env("HOME")) {
            (Some(d), _) => d.join("actlab/store"),
            (None, Some(h)) => h.join(".local/share/actlab/store"),
            _ => anyhow::bail!("no place for the run store: set ACTLAB_STORE (or HOME), or pass --store DIR"),
        };
        Ok(Runs::at(root))
    }

    /// The folder of the run `config` describes.
    pub fn dir(&self, config: &TrainConfig) -> PathBuf {
        self.base.join(config.protocol.slug()).join(function_dir(config.activation)).join(format!("seed-{}", config.seed))
    }

    /// Every finished (or diverged) run in the tree, by folder, in path order.
    pub fn finished(&self) -> Result<Vec<(PathBuf, Box<RunRecord>)>> {
        let mut out = Vec::new();
        for p in self.protocol_dirs()? {
            for f in sorted_dirs(&p)? {
                for run in sorted_dirs(&f)? {
                    if let RunState::Finished(rec) | RunState::Diverged(rec, _) = RunState::read(&run)? {
                        out.push((run, rec));
                    }
                }
            }
        }
        Ok(out)
    }

    /// The protocols of the folders present, read from a finished run in each.
    pub fn protocols(&self) -> Result<Vec<Protocol>> {
        let mut out = Vec::new();
        for p in self.protocol_dirs()? {
            let first = sorted_dirs(&p)?.iter().flat_map(|f| sorted_dirs(f).unwrap_or_default()).find_map(|run| match RunState::read(&run) {
                Ok(RunState::Finished(rec) | RunState::Diverged(rec, _)) => Some(rec.config.protocol),
                _ => None,
            });
            out.extend(first);
        }
        Ok(out)
    }

    /// The protocol folders of this dataset present (`e50-b64`, …), sorted.
    fn protocol_dirs(&self) -> Result<Vec<PathBuf>> {
        Ok(sorted_dirs(&self.base)?.into_iter().filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(DATA_PREFIX))).collect())
    }
}

/// The folders in `dir` (none if it does not exist), sorted.
fn sorted_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    out.sort();
    Ok(out)
}

/// A function's folder name: a built-in's name, or `expr-` and 12 hex digits
/// of the hash of the expression's normalised form (and its slope's).
pub fn function_dir(act: Activation) -> String {
    match act.custom() {
        None => act.name().to_string(),
        Some(c) => {
            let key = format!("{}\n{}", c.forward.normalised(), c.grad.as_ref().map(|g| g.normalised()).unwrap_or_default());
            format!("expr-{}", &sha256_hex(key.as_bytes())[..12])
        }
    }
}

/// Whether a published run's files are whole: its history matches the
/// sha256 in its `run.json`.
pub fn check_published(dir: &Path, rec: &RunRecord) -> Result<()> {
    let h = dir.join("history.csv");
    match sha256_file(&h) {
        Ok(sum) if sum == rec.history_sha256 => Ok(()),
        Ok(_) => anyhow::bail!("{} does not match the sha256 in its run.json (edited or damaged)", h.display()),
        Err(e) => Err(e),
    }
}

/// Copy a finished run's files from `from` to `to` (run.json last, each
/// atomically). Returns whether anything was copied: a run already there,
/// byte for byte, is left alone. A run of another identity there is never
/// replaced: that is an error naming both.
pub fn publish(from: &Path, to: &Path) -> Result<bool> {
    let read = |f: &&'static str| -> Result<Option<(&'static str, Vec<u8>)>> {
        let p = from.join(f);
        match std::fs::read(&p) {
            Ok(b) => Ok(Some((*f, b))),
            Err(_) if OPTIONAL.contains(f) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
        }
    };
    let files: Vec<(&str, Vec<u8>)> = PUBLISHED.iter().map(read).collect::<Result<Vec<_>>>()?.into_iter().flatten().collect();
    if files.iter().all(|(f, b)| std::fs::read(to.join(f)).ok().as_ref() == Some(b)) {
        return Ok(false);
    }
    if let Ok(theirs) = std::fs::read_to_string(to.join("run.json")) {
        let ours = &files.iter().find(|(f, _)| *f == "run.json").expect("run.json is published").1;
        let identity = |text: &str| crate::train::record::parse(text).map(|r| RunIdentity::of_record(&r));
        match (identity(&String::from_utf8_lossy(ours)), identity(&theirs)) {
            (Ok(a), Ok(b)) if a != b => anyhow::bail!(
                "{} holds a published run of another identity ({}); it is not replaced by {} ({}): they differ in {}",
                to.display(),
                b.describe(),
                from.display(),
                a.describe(),
                a.differences(&b)
            ),
            (Ok(_), Err(e)) => anyhow::bail!("{}: the published run.json is unreadable ({e}); it is not replaced: look at it, then remove it to publish", to.display()),
            _ => {}
        }
    }
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    // A reader that sees run.json sees a complete run: remove it first, write it last.
    let _ = std::fs::remove_file(to.join("run.json"));
    for (f, b) in &files {
        write_atomic(&to.join(f), b)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::{define, Definition};

    #[test]
    fn one_folder_per_identity() {
        let store = Runs::at("/s");
        let relu = TrainConfig::article(Activation::Relu, 2);
        assert_eq!(store.dir(&relu), PathBuf::from("/s/e50-b64/relu/seed-2"));
        let reduced = TrainConfig { protocol: Protocol { epochs: 8, train_limit: Some(8192), test_limit: Some(2000), ..Protocol::ARTICLE }, ..relu.clone() };
        assert_eq!(store.dir(&reduced), PathBuf::from("/s/e8-b64-n8192-t2000/relu/seed-2"));
        // Two names, one definition (spelled differently): one folder; another definition: another.
        let a = define("store_test_lin_a", &Definition { expr: "where(x <= 0, 0.1*x, x)".into(), grad: None }).unwrap();
        let b = define("store_test_lin_b", &Definition { expr: "where( x<=0 , 0.10 * x , x )".into(), grad: None }).unwrap();
        let c = define("store_test_lin_c", &Definition { expr: "where(x <= 0, 0.2*x, x)".into(), grad: None }).unwrap();
        let d = define("store_test_lin_d", &Definition { expr: "where(x <= 0, 0.1*x, x)".into(), grad: Some("1".into()) }).unwrap();
        assert_eq!(function_dir(a), function_dir(b));
        assert_ne!(function_dir(a), function_dir(c));
        assert_ne!(function_dir(a), function_dir(d));
        assert!(function_dir(a).starts_with("expr-"));
    }

    #[test]
    fn publish_copies_once_and_completely() {
        let tmp = tempfile::tempdir().unwrap();
        let (from, to) = (tmp.path().join("a"), tmp.path().join("b/c"));
        std::fs::create_dir_all(&from).unwrap();
        for f in PUBLISHED.iter().filter(|f| !OPTIONAL.contains(f)) {
            std::fs::write(from.join(f), f).unwrap();
        }
        assert!(publish(&from, &to).unwrap());
        assert!(!publish(&from, &to).unwrap());
        std::fs::write(from.join("history.csv"), "changed").unwrap();
        assert!(publish(&from, &to).unwrap());
        assert_eq!(std::fs::read_to_string(to.join("history.csv")).unwrap(), "changed");
        std::fs::remove_file(from.join("run.json")).unwrap();
        assert!(publish(&from, &to).is_err(), "an unfinished run is not published");
    }
}
