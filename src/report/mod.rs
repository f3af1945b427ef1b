//! `actlab report`: artifacts → polars summaries → plotters charts →
//! Markdown under `book/src/generated/` → mdBook HTML in `book/book/`.
//!
//! Hand-written prose lives beside the generated pages (`book/src/*.md`,
//! `book/src/notes/<study>.md`) and is never overwritten: the generated
//! folder and `SUMMARY.md` are rebuilt from scratch on every run.

pub mod artifacts;
pub mod chapters;
pub mod charts;
pub mod stats;

use crate::io::write_atomic;
use crate::study::state::RunState;
use crate::study::Study;
use anyhow::{Context, Result};
use chapters::StudyPages;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub struct Options {
    pub studies: PathBuf,
    pub artifacts: PathBuf,
    pub book: PathBuf,
}

pub struct Built {
    pub studies: usize,
    pub runs_used: usize,
    pub runs_total: usize,
    pub html: PathBuf,
}

/// The study files in `dir`, by file name (so "earlier" precedes "positive-only").
pub fn study_files(dir: &Path) -> Result<Vec<Study>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list study files in {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files.iter().map(|f| Study::load(&f.to_string_lossy())).collect()
}

pub fn build(opts: &Options) -> Result<Built> {
    let src = opts.book.join("src");
    let generated = src.join("generated");
    if generated.exists() {
        std::fs::remove_dir_all(&generated).with_context(|| format!("cannot clear {}", generated.display()))?;
    }
    let studies = study_files(&opts.studies)?;
    let mut summary = String::from("# Summary\n\n[Introduction](introduction.md)\n[How to reproduce](reproduce.md)\n\n");
    let mut repro = String::from(
        "# Reproducibility\n\nEvery run's configuration, inputs and outputs. `history sha256` is the hash of the run's \
         `history.csv`; `make verify` (or `actlab verify STUDY --epochs K`) retrains the first K epochs of each run and \
         compares them with the stored history, byte for byte. Runs recorded on another device class (e.g. a GPU) are \
         reported as not comparable rather than failed.\n\n",
    );
    let mut front = String::from("| study | runs complete | protocol | dataset |\n|---|---|---|---|\n");
    let (mut used, mut total) = (0, 0);
    for study in &studies {
        let data = artifacts::load(study, &opts.artifacts).with_context(|| format!("reading the artifacts of study {}", study.name))?;
        let dir = generated.join(&study.name);
        let pages = StudyPages { summary: chapters::summarise(&data)?, data: &data, dir: &dir };
        let notes_path = src.join("notes").join(format!("{}.md", study.name));
        let notes = std::fs::read_to_string(&notes_path).ok();
        let files = [
            ("purpose.md", "Purpose and conditions (目的・条件)", pages.purpose()?),
            ("predictions.md", "Predictions (結果の予想)", pages.predictions()),
            ("results.md", "Results (結果)", pages.results()?),
            ("verdicts.md", "Verdicts", pages.verdicts()),
            ("discussion.md", "Discussion (考察)", pages.discussion(notes.as_deref())?),
        ];
        let _ = writeln!(summary, "# {}\n", study.title);
        for (file, title, text) in files {
            write_atomic(&dir.join(file), text.as_bytes())?;
            let _ = writeln!(summary, "- [{title}](generated/{}/{file})", study.name);
        }
        summary.push('\n');

        let n_used = data.runs.iter().filter(|r| r.usable()).count();
        used += n_used;
        total += data.runs.len();
        let protocol = chapters::protocol_note(&data).map_or_else(
            || if n_used > 0 { format!("article ({} epochs, batch {})", study.epochs, study.batch_size) } else { "–".into() },
            |_| {
                let c = &data.runs.iter().find_map(|r| r.record()).unwrap().config;
                format!("**reduced**: {} epochs, {} train / {} test images", c.epochs, c.train_limit.map_or("50,000".into(), |n| n.to_string()), c.test_limit.map_or("10,000".into(), |n| n.to_string()))
            },
        );
        let ds = data.runs.iter().find_map(|r| r.record()).map_or("–".to_string(), |r| format!("{} (`{}…`)", r.dataset.dataset, &r.dataset.tensors_sha256[..12]));
        let _ = writeln!(front, "| [{}](generated/{}/results.md) | {n_used}/{} | {protocol} | {ds} |", study.title, study.name, data.runs.len());

        let _ = writeln!(repro, "## {}\n\n| function | seed | state | epochs | protocol | dataset | engine | device | history sha256 |\n|---|---|---|---|---|---|---|---|---|", study.title);
        for r in &data.runs {
            match r.record() {
                Some(rec) => {
                    let c = &rec.config;
                    let _ = writeln!(
                        repro,
                        "| {} | {} | {} | {} | {} epochs, batch {}, train {}, test {} | {} | {} {} | {} ({} threads) | `{}` |",
                        r.activation,
                        r.seed,
                        r.problem.as_ref().map_or_else(|| r.state.label(), |p| format!("unusable: {p}")),
                        rec.epochs_completed,
                        c.epochs,
                        c.batch_size,
                        c.train_limit.map_or("all".into(), |n| n.to_string()),
                        c.test_limit.map_or("all".into(), |n| n.to_string()),
                        rec.dataset.dataset,
                        rec.engine.version,
                        rec.engine.git_commit.as_deref().map_or("", |c| &c[..c.len().min(10)]),
                        rec.device.class,
                        rec.device.threads,
                        rec.history_sha256
                    );
                }
                None => {
                    let _ = writeln!(repro, "| {} | {} | {} | | | | | | |", r.activation, r.seed, r.state.label());
                }
            }
        }
        let missing = pages.missing();
        if !missing.is_empty() && missing.len() < data.runs.len() {
            let _ = writeln!(repro, "\nNot finished: {}.", missing.join("; "));
        }
        repro.push('\n');
    }
    summary.push_str("# Reproducibility\n\n- [Runs, hashes and verification](generated/reproducibility.md)\n");
    write_atomic(&generated.join("reproducibility.md"), repro.as_bytes())?;
    write_atomic(&generated.join("front.md"), front.as_bytes())?;
    write_atomic(&src.join("SUMMARY.md"), summary.as_bytes())?;

    let book = mdbook_driver::MDBook::load(&opts.book).map_err(|e| anyhow::anyhow!("{e:#}")).with_context(|| format!("cannot load the book in {}", opts.book.display()))?;
    book.build().map_err(|e| anyhow::anyhow!("{e:#}")).context("mdBook failed to build the book")?;
    Ok(Built { studies: studies.len(), runs_used: used, runs_total: total, html: opts.book.join("book") })
}

/// Runs of a study that are finished, for `verify`.
pub fn finished_runs(study: &Study, artifacts: &Path) -> Result<Vec<(crate::study::RunSpec, Box<crate::train::record::RunRecord>)>> {
    let mut out = Vec::new();
    for spec in study.grid() {
        if let RunState::Finished(rec) = RunState::read(&study.run_dir(artifacts, &spec))? {
            out.push((spec, rec));
        }
    }
    Ok(out)
}
