//! The book from artifacts: statistics, chapters, charts, HTML, and honest
//! handling of missing, partial and corrupt runs; `verify` catches changes.

use crate::common;
use actlab::activation::Activation;
use actlab::engine::device::Selected;
use actlab::report::{self, data};
use actlab::store::Runs;
use actlab::study::Study;
use actlab::train::{self, Reporter};
use std::path::{Path, PathBuf};

const STUDY: &str = r#"
name = "tiny"
title = "A tiny study"
description = "Two functions, three seeds."
dataset = "cifar10"
seeds = [1, 2, 3]
baseline = "relu"
[protocol]
epochs = 2
[[functions]]
name = "relu"
prediction = "baseline"
[[functions]]
name = "softplus_linear"
prediction = "better than relu"
claims = [{ metric = "plateau_val_accuracy", than = "relu", expect = "higher" }]
"#;

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    study: Study,
    data: actlab::data::Dataset,
}

/// A study trained for real on synthetic data, and a copy of the book skeleton.
fn fixture(seeds_done: usize) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    std::fs::create_dir_all(root.join("studies")).unwrap();
    std::fs::write(root.join("studies/tiny.toml"), STUDY).unwrap();
    std::fs::write(root.join("studies/index.toml"), "studies = [\"tiny\"]\n").unwrap();
    let study = Study::load(root.join("studies/tiny.toml").to_str().unwrap()).unwrap();
    let data = common::synthetic_dataset(128, 64);
    for spec in study.grid().into_iter().filter(|r| r.seed as usize <= seeds_done) {
        let cfg = study.config(&spec, &study.protocol);
        train::run(&cfg, &data, &Runs::at(root.join("artifacts")).on(&data.manifest.tensors_sha256).dir(&cfg), &Reporter::default(), None).unwrap();
    }
    // The repository's book skeleton: config, style, catalogues, hand-written pages.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("book");
    for f in ["book.toml", "actlab.css", "actlab.js", "i18n/en.toml", "i18n/ja.toml", "src/en/introduction.md", "src/en/reproduce.md", "src/ja/introduction.md", "src/ja/reproduce.md"] {
        let dst = root.join("book").join(f);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(repo.join(f), dst).unwrap();
    }
    Fixture { _tmp: tmp, root, study, data }
}

impl Fixture {
    /// The published runs of the synthetic data (their own subtree of the artifacts).
    fn artifacts(&self) -> Runs {
        Runs::at(self.root.join("artifacts")).on(&self.data.manifest.tensors_sha256)
    }
    /// The published folder of `function` seed `seed` at the study's protocol.
    fn run_dir(&self, function: &str, seed: u64) -> PathBuf {
        let spec = self.study.grid().into_iter().find(|r| r.activation.name() == function && r.seed == seed).unwrap();
        self.artifacts().dir(&self.study.config(&spec, &self.study.protocol))
    }
    /// `actlab verify` on this study's runs (or the one named `FUNCTION/SEED`).
    fn verify(&self, epochs: usize, run: Option<&str>) -> anyhow::Result<actlab::verify::Table> {
        let runs = actlab::verify::select(actlab::verify::published(&self.artifacts())?, Some(&self.study), run)?;
        actlab::verify::verify(&runs, &self.data, epochs, &Selected::Cpu)
    }
}

fn options(f: &Fixture) -> report::Options {
    report::Options {
        studies: f.root.join("studies"),
        artifacts: f.root.join("artifacts"),
        book: f.root.join("book"),
        langs: None,
        repository: Some("https://example.org/actlab".into()),
        dataset: Some(f.data.manifest.tensors_sha256.clone()),
        allow_damaged: false,
    }
}

fn build(f: &Fixture) -> report::Built {
    report::build(&options(f)).unwrap()
}

/// `report --dataset` takes the hash a user has at hand: the full one, or
/// the prefix that names its `data-<hash>` folder.
#[test]
fn a_dataset_is_named_by_its_hash_or_any_unique_prefix() {
    let f = fixture(1);
    let full = f.data.manifest.tensors_sha256.clone();
    let tree = Runs::at(f.root.join("artifacts"));
    assert_eq!(tree.resolve_dataset(&full).unwrap(), full);
    assert_eq!(tree.resolve_dataset(&full[..12]).unwrap(), full);
    assert_eq!(tree.resolve_dataset(&format!("data-{}", &full[..12])).unwrap(), full, "the folder's own name");
    assert_eq!(tree.resolve_dataset(&full[..8].to_uppercase()).unwrap(), full);
    let jpeg = actlab::data::JPEG_Q75_TENSORS_SHA256;
    assert_eq!(tree.resolve_dataset(&jpeg[..10]).unwrap(), jpeg);
    let other = if full.starts_with("000000") { "ffffff" } else { "000000" };
    let e = tree.resolve_dataset(other).unwrap_err().to_string();
    assert!(e.contains("no published runs"), "{e}");
    let e = tree.resolve_dataset("abc").unwrap_err().to_string();
    assert!(e.contains("64 hex digits"), "{e}");
    let mut o = options(&f);
    o.dataset = Some(full[..12].to_string());
    assert!(report::build(&o).unwrap().runs_used > 0, "a book of the prefix's runs");
}

#[test]
fn per_run_measures_match_hand_computation() {
    let f = fixture(3);
    let d = data::load(&f.study, &f.artifacts(), &f.study.protocol).unwrap();
    for func in &f.study.functions {
        let ms = d.measures(func.activation);
        assert_eq!(ms.len(), 3);
        for (seed, m) in ms {
            // Recompute from the CSV file with plain Rust: two epochs, so the plateau is both.
            let text = std::fs::read_to_string(f.run_dir(func.activation.name(), seed).join("history.csv")).unwrap();
            let rows: Vec<Vec<f64>> = text.lines().skip(1).map(|l| l.split(',').map(|x| x.parse().unwrap()).collect()).collect();
            assert_eq!(rows.len(), 2);
            let mean = |k: usize| rows.iter().map(|r| r[k]).sum::<f64>() / 2.0;
            assert!((m.plateau_val_accuracy - mean(3)).abs() < 1e-12);
            assert!((m.best_val_accuracy - rows.iter().map(|r| r[3]).fold(f64::MIN, f64::max)).abs() < 1e-12);
            assert!((m.overfit_gap - (mean(1) - mean(3))).abs() < 1e-12);
            assert_eq!(m.final_val_loss, rows[1][2]);
        }
        // The band over seeds is the mean of the three histories, epoch by epoch.
        let b = d.band(func.activation, "val_accuracy");
        let by_hand: f64 = d.usable(func.activation).map(|r| r.history[1].val_accuracy).sum::<f64>() / 3.0;
        assert!((b.mean[1] - by_hand).abs() < 1e-12);
    }
}

/// Every Markdown table in `md` has as many cells in each row as in its header.
fn table_widths_agree(md: &str) -> Result<(), String> {
    let cells = |l: &str| {
        let inner = l.trim().trim_start_matches('|').trim_end_matches('|');
        let mut n = 1;
        let mut prev = ' ';
        for c in inner.chars() {
            if c == '|' && prev != '\\' {
                n += 1;
            }
            prev = c;
        }
        n
    };
    let mut header: Option<usize> = None;
    for l in md.lines() {
        if !l.trim_start().starts_with('|') {
            header = None;
            continue;
        }
        match header {
            None => header = Some(cells(l)),
            Some(h) if cells(l) != h => return Err(format!("{} cells, header has {h}: {l}", cells(l))),
            _ => {}
        }
    }
    Ok(())
}

fn svg_refs(md: &str) -> Vec<String> {
    md.split("](").skip(1).filter_map(|s| s.split(')').next()).filter(|s| s.ends_with(".svg")).map(String::from).collect()
}

#[test]
fn the_book_has_every_chapter_valid_charts_and_the_results_table() {
    let f = fixture(3);
    let b = build(&f);
    assert_eq!((b.runs_used, b.runs_total), (6, 6));
    assert_eq!(b.languages, ["en", "ja"]);
    let pages = f.root.join("book/build/en/src/generated/tiny");
    for page in ["purpose", "predictions", "results", "verdicts", "discussion"] {
        let md = std::fs::read_to_string(pages.join(format!("{page}.md"))).unwrap();
        for r in svg_refs(&md) {
            let svg = std::fs::read_to_string(pages.join(&r)).unwrap_or_else(|_| panic!("{page}.md references missing {r}"));
            assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{r} is not an SVG document");
            assert!(svg.matches("<text").count() >= 3, "{r} has no labels");
        }
        for lang in ["en", "ja"] {
            assert!(f.root.join(format!("book/book/{lang}/generated/tiny/{page}.html")).exists(), "{lang}/{page}.html");
        }
    }
    let results = std::fs::read_to_string(f.root.join("book/book/en/generated/tiny/results.html")).unwrap();
    assert!(results.contains("<table") && results.contains("softplus_linear (3/3 runs)") && results.contains("csv/relu-seed-2.csv"));
    assert!(f.root.join("book/book/en/generated/tiny/csv/relu-seed-2.csv").exists());
    // The Japanese edition: the same numbers, its own words, a switch back.
    let ja = std::fs::read_to_string(f.root.join("book/book/ja/generated/tiny/results.html")).unwrap();
    assert!(ja.contains("softplus_linear（3/3 実行）") && ja.contains("lang-switch-"));
    let en_md = std::fs::read_to_string(pages.join("results.md")).unwrap();
    let ja_md = std::fs::read_to_string(f.root.join("book/build/ja/src/generated/tiny/results.md")).unwrap();
    let numbers = |s: &str| s.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '±')).filter(|t| t.contains('.') && t.len() > 3).map(String::from).collect::<Vec<_>>();
    assert_eq!(numbers(&en_md), numbers(&ja_md), "both editions show the same numbers");
    let svg_ja = std::fs::read_to_string(f.root.join("book/build/ja/src/generated/tiny/img/accuracy-relu.svg")).unwrap();
    assert!(svg_ja.contains("エポック") && svg_ja.contains("Noto Sans CJK JP"));
    // Every internal link and image resolves; a planted broken link is caught.
    assert!(report::links::broken_links(&b.html).unwrap().is_empty());
    let p = f.root.join("book/book/ja/introduction.html");
    let html = std::fs::read_to_string(&p).unwrap().replace("</body>", "<a href=\"generated/nowhere.html\">x</a></body>");
    std::fs::write(&p, html).unwrap();
    let broken = report::links::broken_links(&b.html).unwrap();
    assert_eq!(broken.len(), 1);
    assert_eq!(broken[0].1, "generated/nowhere.html");
    // Every generated table, in both editions, keeps its columns (a `|` in a cell would split it).
    for lang in ["en", "ja"] {
        for p in markdown_files(&f.root.join(format!("book/build/{lang}/src/generated"))) {
            table_widths_agree(&std::fs::read_to_string(&p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        }
    }
    assert!(table_widths_agree("| a | b |\n|---|---|\n| mean |x| | y |\n").is_err(), "the check catches a split row");
    let verdicts = std::fs::read_to_string(pages.join("verdicts.md")).unwrap();
    assert!(verdicts.contains("mean val_accuracy of the last 2 epochs higher than relu") && verdicts.contains("paired by seed, n = 3") && ["supported", "contradicted", "inconclusive"].iter().any(|v| verdicts.contains(&format!("**{v}**"))), "{verdicts}");
    // The rule for "similar" claims is stated only where the study has a margin for them.
    assert_eq!(verdicts.contains("two one-sided tests"), f.study.similar_margin.is_finite(), "{verdicts}");
    assert!(!verdicts.contains("±–"), "{verdicts}");
    let repro = std::fs::read_to_string(f.root.join("book/build/en/src/generated/reproducibility.md")).unwrap();
    let sha = actlab::io::sha256_file(&f.run_dir("relu", 3).join("history.csv")).unwrap();
    assert!(repro.contains(&format!("<code title=\"{sha}\">{}</code>", &sha[..12])), "the full hash on hover, 12 characters shown");
    assert!(f.root.join("book/book/en/generated/tiny/csv/tiny-all-runs.csv").exists(), "one download of every run");
    let index = std::fs::read_to_string(f.root.join("book/book/en/index.html")).unwrap();
    assert!(index.contains("A tiny study") && index.contains("actlab 0."), "front page lists the study and engine");
    // Hand-written notes describe the committed runs: a book of other data leaves them out, untouched.
    std::fs::create_dir_all(f.root.join("book/src/en/notes")).unwrap();
    std::fs::write(f.root.join("book/src/en/notes/tiny.md"), "A note by a person, {{history relu/seed-9 val_accuracy 1}}.").unwrap();
    build(&f);
    assert!(!std::fs::read_to_string(pages.join("discussion.md")).unwrap().contains("A note by a person"));
    assert!(std::fs::read_to_string(f.root.join("book/src/en/notes/tiny.md")).unwrap().starts_with("A note by a person"));
    // A note's numbers come from the runs: a placeholder is filled from history.csv,
    // one that names no run is an error naming the note, and so is a number typed by hand.
    let d = data::load(&f.study, &f.artifacts(), &f.study.protocol).unwrap();
    let all = [d];
    let lit = report::literature::Literature::parse("[he2015]\ncite = \"He et al. (2015)\"\nsource = \"the paper\"\n[he2015.figures]\nrelu_top1 = \"33.82 %\"\n").unwrap();
    let fill = |note: &str| report::notes::fill(note, "book/src/en/notes/tiny.md", &all[0], &all, &lit);
    let history = std::fs::read_to_string(f.run_dir("relu", 2).join("history.csv")).unwrap();
    let last = history.lines().next_back().unwrap().split(',').next_back().unwrap().parse::<f64>().unwrap();
    assert_eq!(fill("relu seed 2 ends at {{history relu/seed-2 val_accuracy last :4}}.").unwrap(), format!("relu seed 2 ends at {last:.4}."));
    assert_eq!(fill("{{#include x.md}} stays").unwrap(), "{{#include x.md}} stays", "mdBook's own syntax is left alone");
    // The seeds at chance, counted from the histories by hand (two epochs: the plateau is their mean).
    let at_chance = (1..=3)
        .filter(|s| {
            let text = std::fs::read_to_string(f.run_dir("relu", *s).join("history.csv")).unwrap();
            let v: Vec<f64> = text.lines().skip(1).map(|l| l.split(',').nth(3).unwrap().parse().unwrap()).collect();
            v.iter().sum::<f64>() / v.len() as f64 <= 0.15
        })
        .count();
    // Clopper–Pearson 95 % intervals of k of 3, in whole percent.
    let interval = ["0–71", "1–91", "9–99", "29–100"][at_chance];
    assert_eq!(fill("{{at_chance relu}}").unwrap(), format!("{at_chance}/3 ({interval} %)"));
    assert_eq!(fill("{{at_chance tiny/relu}}").unwrap(), fill("{{at_chance relu}}").unwrap());
    // Still at chance through epoch 1: each seed's first val_accuracy, by hand.
    let stayed = (1..=3)
        .filter(|s| {
            let text = std::fs::read_to_string(f.run_dir("relu", *s).join("history.csv")).unwrap();
            text.lines().nth(1).unwrap().split(',').nth(3).unwrap().parse::<f64>().unwrap() <= 0.15
        })
        .count();
    assert_eq!(fill("{{stays_at_chance relu 1}}").unwrap(), format!("{stayed}/3 ({} %)", ["0–71", "1–91", "9–99", "29–100"][stayed]));
    assert!(format!("{:#}", fill("{{stays_at_chance relu 3}}").unwrap_err()).contains("has 3 epochs or more"));
    // The protocol's length, as the runs' histories have it.
    let epochs = std::fs::read_to_string(f.run_dir("relu", 1).join("history.csv")).unwrap().lines().count() - 1;
    assert_eq!(fill("{{protocol epochs}} epochs").unwrap(), format!("{epochs} epochs"));
    assert!(format!("{:#}", fill("{{protocol seeds}}").unwrap_err()).contains("no protocol field `seeds`"));
    // The study's protocol: Keras' Adam, learning rate 0.001, written as the book writes it.
    assert_eq!(fill("at {{learning_rate}} and {{learning_rate tiny}}").unwrap(), "at 1e-3 and 1e-3");
    assert!(format!("{:#}", fill("{{learning_rate nowhere}}").unwrap_err()).contains("no study `nowhere`"));
    assert!(format!("{:#}", fill("{{at_chance gelu}}").unwrap_err()).contains("no finished run of `gelu`"));
    // A reading picked by the rule: three seeds' intervals always overlap, and both texts are filled.
    assert_eq!(fill("so {{if apart relu tiny/softplus_linear}}apart{{else}}{{at_chance relu}} overlaps{{end}}.").unwrap(), format!("so {} overlaps.", fill("{{at_chance relu}}").unwrap()));
    assert_eq!(fill("{{if overlap relu softplus_linear and overlap relu relu}}both{{end}}, {{if overlap relu relu and apart relu relu}}both{{else}}not both{{end}}").unwrap(), "both, not both");
    // A reading picked by a claim's verdict: the one outcome the Verdicts page gives holds.
    let outcome = match report::rules::judge(&all[0]).iter().find(|j| j.function.name() == "softplus_linear").unwrap().verdict {
        report::rules::Verdict::Supported => "supported",
        report::rules::Verdict::Contradicted => "contradicted",
        _ => "undecided",
    };
    for o in ["supported", "contradicted", "undecided"] {
        let kept = fill(&format!("{{{{if verdict softplus_linear {o}}}}}yes{{{{else}}}}no{{{{end}}}}")).unwrap();
        assert_eq!(kept, if o == outcome { "yes" } else { "no" }, "{o} (the verdict is {outcome})");
        assert_eq!(fill(&format!("{{{{if verdict tiny/softplus_linear {o}}}}}yes{{{{end}}}}")).unwrap(), if o == outcome { "yes" } else { "" });
    }
    // A claim's numbers, as the Verdicts page judges it: the paired difference
    // of the plateaus, computed from the histories by hand over the seeds
    // where both sides learned (the plateau of two epochs is their mean).
    let plateau = |function: &str, s: u64| {
        let text = std::fs::read_to_string(f.run_dir(function, s).join("history.csv")).unwrap();
        let v: Vec<f64> = text.lines().skip(1).map(|l| l.split(',').nth(3).unwrap().parse().unwrap()).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let pairs: Vec<f64> = (1..=3).map(|s| (plateau("softplus_linear", s), plateau("relu", s))).filter(|(a, b)| *a > 0.15 && *b > 0.15).map(|(a, b)| a - b).collect();
    if pairs.len() >= 2 && pairs.iter().any(|d| (d - pairs[0]).abs() > 1e-12) {
        let by_hand = pairs.iter().sum::<f64>() / pairs.len() as f64;
        assert_eq!(fill("{{claim softplus_linear difference :6}}").unwrap(), format!("{by_hand:.6}"));
        let number = |field: &str| fill(&format!("{{{{claim softplus_linear {field} :9}}}}")).unwrap().parse::<f64>().unwrap();
        assert!(number("low") < by_hand && by_hand < number("high"), "the interval holds the difference");
        assert!(number("p_holm") > 0.0 && number("p_holm") <= 1.0);
    }
    assert!(format!("{:#}", fill("{{claim relu difference}}").unwrap_err()).contains("`relu` makes no claim"));
    assert!(format!("{:#}", fill("{{claim softplus_linear median}}").unwrap_err()).contains("no claim field `median`"));
    // Which layer goes flat first, counted from steps.csv by hand: the
    // layers whose mean pre-activation is below −5 at the earliest step.
    let first_flat = |s: u64| -> Vec<String> {
        let text = std::fs::read_to_string(f.run_dir("relu", s).join("steps.csv")).unwrap();
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        let rows: Vec<Vec<f64>> = text.lines().skip(1).map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
        let layers: Vec<(String, Option<f64>)> = header
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.strip_suffix("_pre_mean").map(|l| (l.to_string(), rows.iter().find(|r| r[i] < -5.0).map(|r| r[0]))))
            .collect();
        let first = layers.iter().filter_map(|l| l.1).reduce(f64::min);
        layers.into_iter().filter(|l| first.is_some() && l.1 == first).map(|l| l.0).collect()
    };
    for layer in ["conv1", "dense1"] {
        let k = (1..=3).filter(|s| first_flat(*s).iter().any(|l| l == layer)).count();
        assert_eq!(fill(&format!("{{{{flat_first relu {layer}}}}}")).unwrap(), format!("{k}/3 ({} %)", ["0–71", "1–91", "9–99", "29–100"][k]));
    }
    assert!(format!("{:#}", fill("{{flat_first relu dense9}}").unwrap_err()).contains("no activated layer `dense9`"));
    // A published figure, as the literature file gives it (a typed decimal would be refused).
    assert_eq!(fill("ReLU: {{published he2015 relu_top1}} top-1 error").unwrap(), "ReLU: 33.82 % top-1 error");
    for (note, says) in [
        ("{{if verdict relu supported}}a{{end}}", "`relu` makes no claim in study tiny"),
        ("{{if verdict softplus_linear maybe}}a{{end}}", "`maybe` is not one of"),
        ("{{published he2015 relu_top5}}", "has no figure `relu_top5` (it has relu_top1)"),
        ("{{published maas2013 relu_top1}}", "no paper `maas2013`"),
        ("{{published he2015 relu_top1 :2}}", "as the paper gives it"),
        ("{{if apart relu softplus_linear}}a{{else}}b", "has no `{{end}}`"),
        ("{{if apart relu}}a{{end}}", "a condition is `apart A B`, `overlap A B`, `verdict A"),
        ("{{if apart relu softplus_linear}}{{if apart relu relu}}a{{end}}{{end}}", "readings do not nest"),
        ("{{if apart relu softplus_linear}}{{history relu/seed-9 loss 1}}{{else}}b{{end}}", "no run relu seed 9"),
        ("{{if apart relu softplus_linear}}a{{else}}at 0.61{{end}}", "`0.61` is typed by hand"),
    ] {
        let e = format!("{:#}", fill(note).unwrap_err());
        assert!(e.contains("book/src/en/notes/tiny.md") && e.contains(says), "{note}: {e}");
    }
    for (note, says) in [("{{history relu/seed-9 val_accuracy 1}}", "no run relu seed 9"), ("{{history relu/seed-1 val_acc 1}}", "`val_acc` is not one of"), ("relu ends at 0.61.", "`0.61` is typed by hand"), ("{{history tiny/relu/seed-1 loss 3}}", "epoch 3 is not among")] {
        let e = format!("{:#}", fill(note).unwrap_err());
        assert!(e.contains("book/src/en/notes/tiny.md") && e.contains(says), "{e}");
    }
}

#[test]
fn missing_partial_and_corrupt_runs_are_marked_not_dropped() {
    let f = fixture(2);
    // relu seed 3: partial (a checkpoint after one epoch).
    let spec = &f.study.grid()[2];
    train::run(&f.study.config(spec, &f.study.protocol), &f.data, &f.run_dir("relu", 3), &Reporter::default(), Some(1)).unwrap();
    // softplus_linear seed 2: history edited after the fact.
    let h = f.run_dir("softplus_linear", 2).join("history.csv");
    let text = std::fs::read_to_string(&h).unwrap().replace(',', ";");
    std::fs::write(&h, text).unwrap();
    // softplus_linear seed 1: run.json unreadable.
    std::fs::write(f.run_dir("softplus_linear", 1).join("run.json"), "{ not json").unwrap();
    // Damaged runs fail the build, naming each, unless asked to build anyway.
    let e = format!("{:#}", report::build(&options(&f)).err().expect("damaged runs fail the build"));
    assert!(e.contains("2 published runs are damaged") && e.contains("--allow-damaged"), "{e}");
    let b = report::build(&report::Options { allow_damaged: true, ..options(&f) }).unwrap();
    assert_eq!((b.runs_used, b.runs_total), (2, 6));
    let results = std::fs::read_to_string(f.root.join("book/build/en/src/generated/tiny/results.md")).unwrap();
    assert!(results.contains("relu (2/3 runs)") && results.contains("softplus_linear (0/3 runs)"), "{results}");
    assert!(results.contains("partial (epoch 1)"));
    assert!(results.contains("does not match the sha256"));
    assert!(results.contains("corrupt"));
    assert!(results.contains("missing"));
    // The pages name folders inside the artifacts, never this machine's paths.
    assert!(!results.contains(&*f.root.to_string_lossy()), "a local path in the book: {results}");
    // A run of another identity where the folder says otherwise is refused outright.
    let dir = f.run_dir("relu", 2);
    let mut rec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    rec["engine"]["arithmetic"] = 2.into();
    std::fs::write(dir.join("run.json"), rec.to_string()).unwrap();
    let e = format!("{:#}", report::build(&report::Options { allow_damaged: true, ..options(&f) }).err().expect("mixed identities fail the build"));
    assert!(e.contains("relu/seed-2") && e.contains("arithmetic 2 vs 1"), "{e}");
    // No artifacts folder is an error, not an empty book.
    let e = format!("{:#}", report::build(&report::Options { artifacts: f.root.join("nowhere"), ..options(&f) }).err().expect("no artifacts"));
    assert!(e.contains("no artifacts folder"), "{e}");
}

#[test]
fn verify_confirms_reruns_and_catches_differences() {
    let f = fixture(1);
    let t = f.verify(2, None).unwrap();
    assert_eq!(t.rows.len(), 2);
    assert!(!t.failed(), "{}", t.render());
    assert!(t.render().contains("yes"));

    // Change one history and its recorded hash consistently: the rerun disagrees.
    let dir = f.run_dir("relu", 1);
    let text = std::fs::read_to_string(dir.join("history.csv")).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[1] = lines[1].replacen('.', ".9", 1);
    let edited = lines.join("\n") + "\n";
    std::fs::write(dir.join("history.csv"), &edited).unwrap();
    let mut rec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    rec["history_sha256"] = actlab::io::sha256_hex(edited.as_bytes()).into();
    std::fs::write(dir.join("run.json"), rec.to_string()).unwrap();
    let t = f.verify(1, Some("relu/1")).unwrap();
    assert!(t.failed(), "{}", t.render());

    // A run recorded on a GPU is checked like any other (the engines agree bit for bit)...
    rec["device"]["class"] = "cuda".into();
    std::fs::write(dir.join("run.json"), rec.to_string()).unwrap();
    let t = f.verify(1, Some("relu/1")).unwrap();
    assert!(t.failed(), "{}", t.render());
    // ...but one recorded on other data is not retrained, and that fails too: nothing was shown identical.
    rec["dataset"]["tensors_sha256"] = "f".repeat(64).into();
    std::fs::write(dir.join("run.json"), rec.to_string()).unwrap();
    let t = f.verify(1, Some("relu/1")).unwrap();
    assert!(t.failed() && t.render().contains("NOT CHECKED") && t.render().contains("dataset"), "{}", t.render());
    assert!(f.verify(1, Some("tanh/1")).is_err());
    let _ = Activation::Relu;
}

#[test]
fn every_catalogue_has_every_key_with_the_same_placeholders() {
    use actlab::report::messages::{placeholders, Messages};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/i18n");
    let langs = Messages::languages(&dir).unwrap();
    assert!(langs.len() >= 2 && langs[0] == "en", "{langs:?}");
    let en = Messages::load(&dir, "en").unwrap();
    for lang in &langs {
        let m = Messages::load(&dir, lang).unwrap(); // fails on a missing, unknown or empty key
        for ((k, a), (_, b)) in en.entries().into_iter().zip(m.entries()) {
            assert_eq!(placeholders(a), placeholders(b), "{lang}: `{k}` must use the same placeholders as English");
        }
        assert!(Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src").join(lang).join("introduction.md").exists(), "{lang}: hand-written pages");
    }
    // A catalogue without a key is refused, naming the key.
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(dir.join("ja.toml")).unwrap();
    let cut: String = text.lines().filter(|l| !l.starts_with("title_verdicts")).map(|l| format!("{l}\n")).collect();
    std::fs::write(tmp.path().join("ja.toml"), cut).unwrap();
    let e = format!("{:#}", Messages::load(tmp.path(), "ja").unwrap_err());
    assert!(e.contains("title_verdicts"), "{e}");
}

/// Every Markdown file under `dir`, recursively.
fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    out
}

/// The unsigned intervals in `text` (`[0.757, 0.787]`, `1–91 %`): accuracies
/// and rates, as (low, high, scale). Signed ones (`[-0.05, +0.02]`) are differences.
fn unsigned_intervals(text: &str) -> Vec<(f64, f64, f64)> {
    let number = |s: &str| s.parse::<f64>().ok();
    let mut out = vec![];
    for part in text.split('[').skip(1) {
        let Some(inner) = part.split(']').next() else { continue };
        if let [a, b] = inner.split(", ").collect::<Vec<_>>()[..]
            && let (Some(lo), Some(hi)) = (number(a), number(b))
            && a.starts_with(|c: char| c.is_ascii_digit())
            && b.starts_with(|c: char| c.is_ascii_digit())
        {
            out.push((lo, hi, 1.0));
        }
    }
    for part in text.split(" %").collect::<Vec<_>>().iter().rev().skip(1) {
        let tail: String = part.chars().rev().take_while(|c| c.is_ascii_digit() || *c == '–').collect::<Vec<_>>().into_iter().rev().collect();
        if let Some((a, b)) = tail.split_once('–')
            && let (Some(lo), Some(hi)) = (number(a), number(b))
        {
            out.push((lo, hi, 100.0));
        }
    }
    out
}

/// The book built from this repository's own studies and artifacts: what
/// `make report` publishes, read page by page in both editions.
#[test]
fn the_published_book_has_no_impossible_interval_and_each_block_once() {
    assert_eq!(unsigned_intervals("a [0.75, 0.79] b [-0.3, +0.2] c (1–91 %) d [−0.348, 1.327]"), vec![(0.75, 0.79, 1.0), (1.0, 91.0, 100.0)]);
    assert_eq!(unsigned_intervals("[0.5, 1.327]"), vec![(0.5, 1.327, 1.0)], "an accuracy above 1 is found");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let book = tmp.path().join("book");
    let mut stack = vec![repo.join("book")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(repo.join("book")).unwrap();
            if rel.starts_with("book") || rel.starts_with("build") {
                continue; // outputs of an earlier build
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                std::fs::create_dir_all(book.join(rel).parent().unwrap()).unwrap();
                std::fs::copy(&p, book.join(rel)).unwrap();
            }
        }
    }
    let opts = report::Options { studies: repo.join("studies"), artifacts: repo.join("artifacts"), book: book.clone(), langs: None, repository: None, dataset: None, allow_damaged: false };
    let built = report::build(&opts).unwrap(); // every note's placeholders resolve
    assert!(built.runs_used > 0);
    for lang in ["en", "ja"] {
        let src = book.join("build").join(lang).join("src");
        for page in markdown_files(&src) {
            let text = std::fs::read_to_string(&page).unwrap();
            for (lo, hi, scale) in unsigned_intervals(&text) {
                assert!(0.0 <= lo && lo <= hi && hi <= scale, "{}: interval {lo}–{hi} outside [0, {scale}]", page.display());
            }
        }
        // The landing page: each study x protocol once, each chart once.
        let answer = std::fs::read_to_string(src.join("generated/answer.md")).unwrap();
        let mut links: Vec<&str> = answer.match_indices("](generated/").map(|(i, _)| answer[i + 2..].split(')').next().unwrap()).filter(|l| l.ends_with(".md")).collect();
        let n = links.len();
        links.sort();
        links.dedup();
        assert_eq!(links.len(), n, "{lang}: a block repeats on the landing page:\n{answer}");
        let all = std::fs::read_to_string(src.join("generated/verdicts-all.md")).unwrap();
        let (mut heading, mut blocks) = ("", vec![]);
        for line in all.lines() {
            if line.starts_with("## ") {
                assert!(!blocks.iter().any(|(h, _)| *h == line), "{lang}: protocol `{line}` twice in verdicts-all.md");
                heading = line;
            } else if line.starts_with("- **[") {
                assert!(!blocks.contains(&(heading, line)), "{lang}: `{line}` twice under `{heading}` in verdicts-all.md");
            }
            blocks.push((heading, line));
        }
        // Each of the article's observations quotes its own words, in either edition.
        // (Only positive-only has observations.)
        let study = Study::load(repo.join("studies/positive-only.toml").to_str().unwrap()).unwrap();
        let mut quotes: Vec<(String, &str)> = study.observations.iter().map(|o| (o.function.name().to_string(), o.article_in(lang))).collect();
        let n = quotes.len();
        quotes.sort();
        quotes.dedup();
        assert_eq!(quotes.len(), n, "{lang}: positive-only quotes one sentence for two checks of a function");
        let summary = std::fs::read_to_string(src.join("SUMMARY.md")).unwrap();
        assert_eq!(summary.matches("generated/answer.md").count(), 0, "{lang}: the answer is part of the introduction, not a chapter of its own");
        if lang == "ja" {
            let mut foreign = Vec::new();
            for page in markdown_files(&src).into_iter().filter(|p| !p.starts_with(src.join("notes"))) {
                let text = std::fs::read_to_string(&page).unwrap();
                for w in latin_words(&text).into_iter().filter(|w| !allowed_in_japanese(w)) {
                    foreign.push(format!("{}: {w}", page.strip_prefix(&src).unwrap().display()));
                }
            }
            foreign.dedup();
            assert!(foreign.is_empty(), "English words in Japanese prose (translate them, or put code in backticks):\n{}", foreign.join("\n"));
        }
    }
}

/// The Latin-script words of a page's prose: code (spans, blocks,
/// `<code>`), HTML tags, link targets and mdBook directives left out.
fn latin_words(markdown: &str) -> Vec<String> {
    let mut prose = String::new();
    let mut in_block = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
        } else if !in_block && !line.starts_with("# Summary") && !line.contains("{{#") {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    let mut cut = |open: &str, close: &str| {
        while let Some(a) = prose.find(open) {
            let Some(b) = prose[a + open.len()..].find(close) else { break };
            prose.replace_range(a..a + open.len() + b + close.len(), " ");
        }
    };
    cut("<code", "</code>");
    cut("`", "`");
    cut("<", ">");
    cut("](", ")");
    let mut words = Vec::new();
    let mut word = String::new();
    for c in prose.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            if word.chars().any(|c| c.is_ascii_alphabetic()) {
                words.push(std::mem::take(&mut word));
            }
            word.clear();
        }
    }
    words
}

/// Latin script that belongs in the Japanese edition: names (anything with
/// a digit or `_`: functions, layers, CSV columns, hashes, units like q75),
/// one-letter symbols, and the proper nouns, metric names and formula words
/// below. Every other Latin word is untranslated English.
fn allowed_in_japanese(word: &str) -> bool {
    const NAMES: &[&str] = &[
        // functions and their families
        "relu", "ReLU", "tanh", "softplus", "softmax", "sqrt", "sign", "leaky", "identity", "gelu", "silu", "mish", "elu", "GELU", "SiLU", "Mish", "ELU", "PReLU",
        // the article's own word, in its quotes
        "linear",
        // formula words and Keras's metric names
        "ln", "max", "min", "exp", "lr", "momentum", "loss", "accuracy",
        // software, hardware, formats, people, methods
        "actlab", "Keras", "keras", "datasets", "Adam", "SGD", "CIFAR", "JPEG", "CSV", "CNN", "GPU", "CPU", "CUDA", "NVIDIA", "Rust", "mdBook", "GitHub", "README",
        "SLURM", "Kubernetes", "Indexed", "Job", "Intel", "Xeon", "AMD", "EPYC", "Processor", "R",
        "Glorot", "Bengio", "Maas", "He", "Xu", "Student", "Welch", "Holm",
        // the published results' authors, data and functions
        "Hannun", "Ng", "Zhang", "Ren", "Sun", "Wang", "Chen", "Li", "Switchboard", "ImageNet", "Kaggle", "NDSB", "RReLU", "top",
    ];
    word.len() == 1 || word.chars().any(|c| c.is_ascii_digit() || c == '_') || NAMES.contains(&word)
}
