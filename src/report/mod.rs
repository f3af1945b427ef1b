//! `actlab report`: published runs → per-run measures and judgements →
//! plotters charts → Markdown under `book/build/<lang>/src/generated/` →
//! mdBook HTML in `book/book/<lang>/`.
//!
//! The pipeline, one module each: [`data`] reads the runs and aggregates
//! them, [`stats`] is the arithmetic of intervals and tests, [`rules`]
//! decides what may be said, [`text`] writes numbers and verdicts,
//! [`charts`] draws, [`chapters`] and [`design`] compose the pages.
//!
//! One edition per language (`book/book/<lang>/`): the generated text comes
//! from `book/i18n/<lang>.toml`; hand-written prose lives in
//! `book/src/<lang>/` (`introduction.md`, `reproduce.md`,
//! `notes/<study>.md` for a study's own protocol and
//! `notes/<study>.<protocol>.md` for a reduction, whose numbers are
//! placeholders that [`notes`] fills) and is only ever read.
//! Each edition is staged in `book/build/<lang>/` (rebuilt from scratch
//! every time) and built there.

pub mod answer;
pub mod chapters;
pub mod charts;
pub mod colors;
pub mod data;
pub mod design;
pub mod hypothesis;
pub mod links;
pub mod literature;
pub mod messages;
pub mod notes;
pub mod observations;
pub mod reproduce;
pub mod rules;
pub mod search;
pub mod stats;
pub mod text;

use crate::io::write_atomic;
use anyhow::{Context, Result};
use crate::store::Runs;
use crate::train::config::Protocol;
use crate::activation::Activation;
use chapters::StudyPages;
use charts::Rgb;
use data::StudyData;
use messages::{fill, Messages};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub struct Options {
    pub studies: PathBuf,
    pub artifacts: PathBuf,
    /// The book folder: book.toml, i18n/<lang>.toml, src/<lang>/ (hand-written), actlab.css and actlab.js.
    pub book: PathBuf,
    /// Editions to build; None builds one per message catalogue.
    pub langs: Option<Vec<String>>,
    /// The repository's web address (e.g. https://github.com/OWNER/actlab):
    /// each page then links to it and to its own source.
    pub repository: Option<String>,
    /// sha256 of the tensors of the dataset whose runs the book shows
    /// (None: the committed runs' data, CIFAR-10 (JPEG q75)).
    pub dataset: Option<String>,
    /// Build even with damaged runs (each said on stderr and marked in the
    /// book); without it they fail the build.
    pub allow_damaged: bool,
}

pub struct Built {
    pub studies: usize,
    pub runs_used: usize,
    pub runs_total: usize,
    pub languages: Vec<String>,
    pub html: PathBuf,
}

/// Files the HTML of every edition uses, copied beside each staged book.
const THEME_FILES: [&str; 2] = ["actlab.css", "actlab.js"];

/// A script that puts a link to every other edition in each page's menu bar
/// (the same page in the other language: `/en/` ↔ `/ja/` in the path), and,
/// with a repository, a link to the page's source: the hand-written page,
/// or for a generated chapter the study file it is made from.
fn language_switch(catalogues: &[Messages], repository: Option<&str>) -> String {
    let langs: Vec<String> = catalogues.iter().map(|m| format!("[{:?}, {:?}]", m.lang, m.language_name)).collect();
    let source = match repository {
        None => String::new(),
        Some(repo) => format!(
            r#"
  var rel = at < 0 ? "" : path.slice(at + cur.length + 2).replace(/\.html$/, "");
  var m = rel.match(/^generated\/([^\/]+)\//);
  var src = m ? "studies/" + m[1] + ".toml" : (rel.indexOf("generated/") === 0 ? "src/report" : "book/src/" + cur + "/" + (rel || "introduction") + ".md");
  var s = document.createElement("a");
  s.href = {repo:?} + "/blob/main/" + src;
  s.textContent = "source";
  s.className = "actlab-lang";
  s.title = src;
  bar.insertBefore(s, bar.firstChild);"#,
            repo = repo.trim_end_matches('/')
        ),
    };
    format!(
        r#"(function () {{
  var langs = [{}];
  var cur = document.documentElement.lang;
  var bar = document.querySelector(".right-buttons");
  if (!bar) return;
  var path = window.location.pathname;
  var at = path.lastIndexOf("/" + cur + "/");
  langs.forEach(function (l) {{
    if (l[0] === cur || at < 0) return;
    var a = document.createElement("a");
    a.href = path.slice(0, at) + "/" + l[0] + "/" + path.slice(at + cur.length + 2) + window.location.hash;
    a.textContent = l[1];
    a.className = "actlab-lang";
    a.setAttribute("hreflang", l[0]);
    bar.insertBefore(a, bar.firstChild);
  }});{source}
}})();
"#,
        langs.join(", ")
    )
}

pub fn build(opts: &Options) -> Result<Built> {
    if !opts.artifacts.is_dir() {
        anyhow::bail!("there is no artifacts folder {} (the published runs the book is made from); pass --artifacts DIR", opts.artifacts.display());
    }
    let i18n = opts.book.join("i18n");
    let langs = match &opts.langs {
        Some(l) => l.clone(),
        None => Messages::languages(&i18n)?,
    };
    let catalogues: Vec<Messages> = langs.iter().map(|l| Messages::load(&i18n, l)).collect::<Result<_>>()?;
    let studies = crate::study::index::load(&opts.studies)?;
    let dataset = opts.dataset.as_deref().map(|d| Runs::at(&opts.artifacts).resolve_dataset(d)).transpose()?;
    let runs = match &dataset {
        Some(d) => Runs::at(&opts.artifacts).on(d),
        None => Runs::at(&opts.artifacts),
    };
    // Each study at its own protocol, then at each reduction of it that has runs (the appendix).
    let mut data: Vec<StudyData> = Vec::new();
    let mut appendix: Vec<StudyData> = Vec::new();
    // A run at another study's own protocol was computed for that study (a
    // one-epoch stall run is no "reduced" positive-only run): not an appendix.
    let own: Vec<Protocol> = studies.iter().map(|s| s.protocol).collect();
    for s in &studies {
        let read = |p: &Protocol| data::load(s, &runs, p).with_context(|| format!("reading the published runs of study {} ({})", s.name, p.slug()));
        data.push(read(&s.protocol)?);
        for p in data::reductions(s, &runs)?.into_iter().filter(|p| !own.contains(p)) {
            appendix.push(read(&p)?);
        }
    }
    // A run shared by several studies is read once per study: named once.
    let mut damaged: Vec<String> = data.iter().chain(&appendix).flat_map(|d| &d.runs).filter_map(|r| r.damage().map(|why| format!("{}: {why}", runs.relative(&r.dir)))).collect();
    damaged.sort();
    damaged.dedup();
    for d in &damaged {
        eprintln!("damaged run: {d}");
    }
    if !damaged.is_empty() && !opts.allow_damaged {
        anyhow::bail!("{} published runs are damaged (listed above); restore them (git checkout -- artifacts), or pass --allow-damaged to build a book that marks them unusable", damaged.len());
    }
    let out = opts.book.join("book");
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("cannot clear {}", out.display()))?;
    }
    let (mut used, mut total) = (0, 0);
    for d in data.iter().chain(&appendix) {
        used += d.runs.iter().filter(|r| r.usable()).count();
        total += d.runs.len();
    }
    let of_committed_data = runs.dataset == crate::data::JPEG_Q75_TENSORS_SHA256;
    if !of_committed_data {
        eprintln!("note: the hand-written notes describe the committed runs (CIFAR-10 (JPEG q75)); this book of other data leaves them out");
    }
    let switch = language_switch(&catalogues, opts.repository.as_deref());
    for m in &catalogues {
        edition(opts, of_committed_data, m, &data, &appendix, &out.join(&m.lang), &switch)?;
    }
    // The site's root sends readers to the first edition.
    let first = &catalogues.first().context("no languages to build")?.lang;
    write_atomic(&out.join("index.html"), format!("<!DOCTYPE html><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"0; url={first}/index.html\"><a href=\"{first}/index.html\">{first}</a>\n").as_bytes())?;
    Ok(Built { studies: studies.len(), runs_used: used, runs_total: total, languages: langs, html: out })
}

/// Copy a folder's files recursively.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from).with_context(|| format!("cannot list {}", from.display()))? {
        let e = e?;
        let dst = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &dst)?;
        } else {
            std::fs::copy(e.path(), &dst).with_context(|| format!("cannot copy {}", e.path().display()))?;
        }
    }
    Ok(())
}

/// One language's book: hand-written pages of `book/src/<lang>/` plus the
/// generated chapters, staged in `book/build/<lang>/` and built into `out`.
fn edition(opts: &Options, of_committed_data: bool, m: &Messages, data: &[StudyData], appendix: &[StudyData], out: &Path, switch: &str) -> Result<()> {
    let stage = opts.book.join("build").join(&m.lang);
    if stage.exists() {
        std::fs::remove_dir_all(&stage).with_context(|| format!("cannot clear {}", stage.display()))?;
    }
    let src = stage.join("src");
    let hand = opts.book.join("src").join(&m.lang);
    copy_tree(&hand, &src).with_context(|| format!("the hand-written pages of the `{}` edition belong in {}", m.lang, hand.display()))?;
    for f in THEME_FILES {
        std::fs::copy(opts.book.join(f), stage.join(f)).with_context(|| format!("cannot copy {}", opts.book.join(f).display()))?;
    }
    write_atomic(&stage.join("lang-switch.js"), switch.as_bytes())?;
    // One colour per function across the whole book, none shared within a study.
    let studies: Vec<Vec<Activation>> = data.iter().map(|d| d.study.functions.iter().map(|f| f.activation).collect()).collect();
    let palette = colors::function_colors(&studies);
    let colors = move |a: Activation| -> Rgb { palette.iter().find(|(f, _)| *f == a).map_or(colors::PALETTE[0], |(_, c)| *c) };
    let generated = src.join("generated");
    let mut summary = format!("# Summary\n\n[{}](introduction.md)\n[{}](generated/verdicts-all.md)\n[{}](reproduce.md)\n\n", m.title_introduction, m.answer_all_verdicts, m.title_reproduce);
    let mut repro = format!("# {}\n\n{}\n\n", m.title_reproducibility, m.reproducibility_intro);
    let mut front = text::header(&[&m.front_study, &m.front_runs, &m.front_protocol, &m.front_dataset, &m.front_engine]);
    // A study's hand-written note, its placeholders filled from `d` (and,
    // for runs of other studies, from every study at its own protocol).
    // The notes describe the committed runs: a book of other data leaves them out.
    let literature = literature::Literature::load(&opts.book.join("literature.toml"))?;
    let notes = |d: &StudyData, protocol: Option<&Protocol>| -> Result<Option<String>> {
        if !of_committed_data {
            return Ok(None);
        }
        let file = match protocol {
            None => format!("{}.md", d.study.name),
            Some(p) => format!("{}.{}.md", d.study.name, p.slug()),
        };
        let path = hand.join("notes").join(&file);
        match std::fs::read_to_string(&path) {
            Ok(note) => Ok(Some(notes::fill(&note, &format!("book/src/{}/notes/{file}", m.lang), d, data, &literature)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::Error::from(e).context(format!("reading {}", path.display()))),
        }
    };
    for d in data {
        let study = &d.study;
        let dir = generated.join(&study.name);
        let pages = StudyPages { m, data: d, peers: data, dir: &dir, colors: &colors };
        let files = [
            ("purpose.md", &m.title_purpose_conditions, pages.purpose()?),
            ("predictions.md", &m.title_predictions, pages.predictions()),
            ("results.md", &m.title_results, pages.results()?),
            ("verdicts.md", &m.title_verdicts, pages.verdicts()),
            ("discussion.md", &m.title_discussion, pages.discussion(notes(d, None)?.as_deref())?),
        ];
        let _ = writeln!(summary, "# {}\n", study.title_in(&m.lang));
        for (file, title, text) in files {
            write_atomic(&dir.join(file), text.as_bytes())?;
            let _ = writeln!(summary, "- [{title}](generated/{}/{file})", study.name);
        }
        summary.push('\n');
        front.push_str(&front_row(m, d, appendix));
        repro.push_str(&repro_table(m, d, &pages));
    }
    // Runs at reduced protocols: their own part of the book, never mixed with the above.
    if !appendix.is_empty() {
        let _ = writeln!(summary, "# {}\n", m.title_appendix_reduced);
        for d in appendix {
            let (study, slug) = (&d.study, d.protocol.slug());
            let dir = generated.join(&study.name).join(&slug);
            let pages = StudyPages { m, data: d, peers: appendix, dir: &dir, colors: &colors };
            let title = fill(&m.appendix_study, &[("study", study.title_in(&m.lang)), ("protocol", &text::protocol(m, &d.protocol))]);
            let _ = writeln!(summary, "- [{title}](generated/{}/{slug}/results.md)", study.name);
            write_atomic(&dir.join("results.md"), pages.results()?.as_bytes())?;
            for (file, title, text) in [("verdicts.md", &m.title_verdicts, pages.verdicts()), ("discussion.md", &m.title_discussion, pages.discussion(notes(d, Some(&d.protocol))?.as_deref())?)] {
                write_atomic(&dir.join(file), text.as_bytes())?;
                let _ = writeln!(summary, "  - [{title}](generated/{}/{slug}/{file})", study.name);
            }
            repro.push_str(&repro_table(m, d, &pages));
        }
        summary.push('\n');
    }
    let _ = writeln!(summary, "# {}\n\n- [{}](generated/reproducibility.md)", m.title_reproducibility, m.title_runs_hashes);
    write_atomic(&generated.join("reproducibility.md"), repro.as_bytes())?;
    write_atomic(&generated.join("front.md"), front.as_bytes())?;
    write_atomic(&generated.join("reproduce-facts.md"), reproduce::facts(m, data, appendix).as_bytes())?;
    write_atomic(&generated.join("answer.md"), answer::answer(m, data, &colors, &generated)?.as_bytes())?;
    write_atomic(&generated.join("verdicts-all.md"), answer::all_verdicts(m, data, appendix, &colors, &generated)?.as_bytes())?;
    write_atomic(&src.join("SUMMARY.md"), summary.as_bytes())?;

    let mut config = mdbook_driver::config::Config::from_disk(opts.book.join("book.toml")).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    config.book.language = Some(m.lang.clone());
    config.book.title = Some(m.book_title.clone());
    config.book.src = PathBuf::from("src");
    if let Some(repo) = &opts.repository {
        config.set("output.html.git-repository-url", repo).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    }
    config.build.build_dir = std::path::absolute(out)?;
    let book = mdbook_driver::MDBook::load_with_config(&stage, config).map_err(|e| anyhow::anyhow!("{e:#}")).with_context(|| format!("cannot load the `{}` book in {}", m.lang, stage.display()))?;
    book.build().map_err(|e| anyhow::anyhow!("{e:#}")).with_context(|| format!("mdBook failed to build the `{}` edition", m.lang))?;
    search::finish(out, m)
}

/// The first 12 characters of a hash, the whole of it on hover.
fn short_hash(h: &str) -> String {
    format!("<code title=\"{h}\">{}</code>", &h[..h.len().min(12)])
}

/// The front page's line for a study: what was run, on what, with what.
fn front_row(m: &Messages, d: &StudyData, appendix: &[StudyData]) -> String {
    let study = &d.study;
    let n_used = d.runs.iter().filter(|r| r.usable()).count();
    let seeds = study.seeds.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(&m.list_separator);
    let protocol = fill(&m.front_protocol_cell, &[("protocol", &text::protocol(m, &d.protocol)), ("seeds", &seeds)]);
    let rec = d.runs.iter().find_map(|r| r.record()).or_else(|| appendix.iter().filter(|a| a.study.name == study.name).flat_map(|a| &a.runs).find_map(|r| r.record()));
    let ds = rec.map_or("–".to_string(), |r| format!("{} ({})", r.dataset.dataset, short_hash(&r.dataset.tensors_sha256)));
    let mut commits: Vec<&str> = d.runs.iter().filter_map(|r| r.record()?.engine.git_commit.as_deref()).collect();
    commits.sort();
    commits.dedup();
    let commit = match commits.as_slice() {
        [one] => short_hash(one),
        [] => String::new(),
        many => fill(&m.front_engine_commits, &[("n", &many.len().to_string())]),
    };
    let engine = rec.map_or("–".to_string(), |r| format!("actlab {} {commit}{}{} {}", r.engine.version, m.list_separator, r.device.class.to_uppercase(), r.device.name));
    text::row(&[format!("[{}](generated/{}/results.md)", study.title_in(&m.lang), study.name), format!("{n_used}/{}", d.runs.len()), protocol, ds, engine])
}

/// The reproducibility chapter's table for a study at one protocol: what is
/// the same for every run is said once above it.
fn repro_table(m: &Messages, d: &StudyData, pages: &StudyPages) -> String {
    let mut t = format!("## {} — {}\n\n", d.study.title_in(&m.lang), text::protocol(m, &d.protocol));
    let recs: Vec<_> = d.runs.iter().filter_map(|r| r.record()).collect();
    if let Some(first) = recs.first() {
        let same = |f: &dyn Fn(&crate::train::record::RunRecord) -> String| recs.iter().all(|r| f(r) == f(first));
        let ds = |r: &crate::train::record::RunRecord| fill(&m.dataset_tensors, &[("dataset", &r.dataset.dataset), ("hash", &short_hash(&r.dataset.tensors_sha256))]);
        if same(&ds) {
            let _ = writeln!(t, "{}\n", fill(&m.label_value, &[("label", &m.col_dataset), ("value", &ds(first))]));
        }
    }
    t.push_str(&text::header(&[&m.col_function, &m.col_seed, &m.col_state, &m.col_epochs, &m.col_engine, &m.col_device, &m.col_history_sha]));
    for r in &d.runs {
        t.push_str(&match r.record() {
            Some(rec) => text::row(&[
                r.activation.name().to_string(),
                r.seed.to_string(),
                text::run_state(m, r),
                rec.epochs_completed.to_string(),
                format!("{} {}", rec.engine.version, rec.engine.git_commit.as_deref().map_or(String::new(), short_hash)),
                format!("{} ({})", rec.device.class.to_uppercase(), rec.device.threads),
                short_hash(&rec.history_sha256),
            ]),
            None => text::row(&[r.activation.name().to_string(), r.seed.to_string(), text::run_state(m, r), String::new(), String::new(), String::new(), String::new()]),
        });
    }
    let missing = pages.missing();
    if !missing.is_empty() && missing.len() < d.runs.len() {
        let _ = writeln!(t, "\n{}", fill(&m.not_finished, &[("runs", &missing.join(&m.list_separator))]));
    }
    t.push('\n');
    t
}
