//! `studies/index.toml`: which studies exist and in what order — the book's
//! chapters and the queue's work both follow it.

use super::Study;
use crate::activation::Activation;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub const FILE: &str = "index.toml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Index {
    studies: Vec<String>,
}

/// Every built-in function and every function the studies in `dir` define
/// (defining them for this process); only the built-ins where `dir` holds
/// no readable studies (a binary run outside a checkout).
pub fn functions(dir: &Path) -> Vec<Activation> {
    let mut acts = Activation::ALL.to_vec();
    for study in load(dir).unwrap_or_default() {
        for a in study.functions.iter().map(|f| f.activation) {
            if !acts.contains(&a) {
                acts.push(a);
            }
        }
    }
    acts
}

/// The studies `dir/index.toml` names, in its order, each loaded from
/// `dir/<name>.toml`. A study file the index does not name is an error, so
/// no study is silently left out of the book or the queue.
pub fn load(dir: &Path) -> Result<Vec<Study>> {
    let path = dir.join(FILE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read the study index {}", path.display()))?;
    let index: Index = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list study files in {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.file_name().is_some_and(|n| n != FILE))
        .collect();
    files.sort();
    for f in &files {
        let stem = f.file_stem().unwrap_or_default().to_string_lossy();
        if !index.studies.iter().any(|s| *s == stem) {
            bail!("{}: study file {} is not listed; add \"{stem}\" to `studies` where it belongs in the book", path.display(), f.display());
        }
    }
    let mut out: Vec<Study> = Vec::new();
    for name in &index.studies {
        if out.iter().any(|s| s.name == *name) {
            bail!("{}: study `{name}` is listed twice", path.display());
        }
        let file = dir.join(format!("{name}.toml"));
        if !file.exists() {
            bail!("{}: lists `{name}`, but there is no {}", path.display(), file.display());
        }
        let study = Study::load(&file.to_string_lossy()).with_context(|| format!("{}: study `{name}`", path.display()))?;
        if study.name != *name {
            bail!("{}: is named `{}`; a study's name is its file's name", file.display(), study.name);
        }
        out.push(study);
    }
    for s in &out {
        if let Some(other) = s.hypothesis.as_ref().and_then(|h| h.same_question_as.as_ref())
            && (other == &s.name || !out.iter().any(|o| &o.name == other))
        {
            bail!("{}: study `{}`: `hypothesis.same_question_as` names `{other}`, which is not another study in the index", path.display(), s.name);
        }
    }
    Ok(out)
}
