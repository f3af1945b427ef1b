//! Studies: strict study files, shards that cover the grid once, and a real
//! process killed mid-run that resumes to bit-identical results.

mod common;
use actlab::study::{Shard, Study};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn parse(text: &str) -> anyhow::Result<Study> {
    Study::parse(text, Path::new("studies/t.toml"))
}

const GOOD: &str = r#"
name = "t"
title = "A test"
dataset = "cifar10"
seeds = [1, 2]
[protocol]
epochs = 2
[[functions]]
name = "relu"
[[functions]]
name = "tanh"
prediction = "worse"
claims = [{ metric = "best_val_accuracy", than = "relu", expect = "lower" }]
"#;

#[test]
fn shipped_studies_parse() {
    for name in ["positive-only", "earlier"] {
        let s = Study::load(&format!("{}/studies/{name}.toml", env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert_eq!(s.name, name);
        assert_eq!((s.epochs, s.batch_size, s.seeds.clone()), (50, 64, vec![1, 2, 3]));
    }
    let s = Study::load(&format!("{}/studies/positive-only.toml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let names: Vec<_> = s.functions.iter().map(|f| f.activation.name()).collect();
    assert_eq!(names, ["relu", "softplus_linear", "reflection_linear", "zero_fit_linear"]);
    assert!(s.functions[1].prediction.as_deref().unwrap().contains("overfit less"));
}

#[test]
fn the_zero_slope_study_declares_its_2x2_design() {
    let s = Study::load(&format!("{}/studies/zero-slope.toml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let d = s.design.as_ref().unwrap();
    let name = |a: actlab::activation::Activation| a.name();
    assert_eq!((name(d.cell(true, true)), name(d.cell(true, false)), name(d.cell(false, true)), name(d.cell(false, false))), ("relu", "relu_straight_through", "linear_relu_grad", "identity"));
    assert_eq!(d.factors[d.credited], "zero slope below 0");
    assert!(s.functions.iter().all(|f| f.prediction.is_some()), "every function is predicted before running");
}

const DESIGNED: &str = r#"
name = "d"
title = "Designed"
dataset = "cifar10"
seeds = [1, 2]
[design]
hypothesis = "h"
rows = "a"
columns = "b"
cells = [["relu", "tanh"], ["signed_sqrt", "softplus_linear"]]
credits = "columns"
[[functions]]
name = "relu"
[[functions]]
name = "tanh"
[[functions]]
name = "signed_sqrt"
[[functions]]
name = "softplus_linear"
"#;

#[test]
fn bad_designs_name_the_field() {
    assert!(parse(DESIGNED).unwrap().design.is_some());
    let cases = [
        (DESIGNED.replace("\"softplus_linear\"]]", "\"zero_fit_linear\"]]"), vec!["t.toml", "line 10", "design.cells", "zero_fit_linear", "not one of the study's functions"]),
        (DESIGNED.replace("[\"signed_sqrt\", \"softplus_linear\"]", "[\"signed_sqrt\"]"), vec!["line 10", "design.cells", "two rows of two"]),
        (DESIGNED.replace("\"softplus_linear\"]]", "\"relu\"]]"), vec!["design.cells", "different function"]),
        (DESIGNED.replace("credits = \"columns\"", "credits = \"diagonal\""), vec!["line 11", "design.credits", "diagonal", "\"rows\" or \"columns\""]),
        (DESIGNED.replace("credits = \"columns\"\n", ""), vec!["t.toml", "credits"]),
    ];
    for (text, needles) in cases {
        let e = format!("{:#}", parse(&text).expect_err(&text));
        for n in needles {
            assert!(e.contains(n), "`{n}` missing from: {e}");
        }
    }
}

#[test]
fn bad_study_files_name_file_line_and_field() {
    assert!(parse(GOOD).is_ok());
    let cases = [
        (GOOD.replace("epochs = 2", "epochs = 2\nepoch = 3"), vec!["t.toml", "line 8", "epoch"]),
        (GOOD.replace("name = \"tanh\"", "name = \"swish\""), vec!["t.toml", "line 11", "swish", "softplus_linear"]),
        (GOOD.replace("epochs = 2", "epochs = 0"), vec!["t.toml", "line 7", "protocol.epochs"]),
        (GOOD.replace("seeds = [1, 2]", "seeds = [1, 1]"), vec!["line 5", "seeds", "twice"]),
        (GOOD.replace("title = \"A test\"\n", ""), vec!["t.toml", "title"]),
        (GOOD.replace("dataset = \"cifar10\"", "dataset = \"mnist\""), vec!["line 4", "dataset", "mnist"]),
        (GOOD.replace("expect = \"lower\"", "expect = \"worse\""), vec!["t.toml", "worse"]),
        (GOOD.replace("[protocol]", "[protocol]\nlearning_rate = -1.0"), vec!["protocol.learning_rate", "positive"]),
    ];
    for (text, needles) in cases {
        let e = format!("{:#}", parse(&text).expect_err(&text));
        for n in needles {
            assert!(e.contains(n), "`{n}` missing from: {e}");
        }
    }
}

#[test]
fn shards_cover_the_grid_exactly_once() {
    let grid: Vec<usize> = (0..12).collect();
    for n in 1..=5 {
        let mut seen: Vec<usize> = (1..=n).flat_map(|i| Shard { index: i, count: n }.select(&grid)).collect();
        seen.sort();
        assert_eq!(seen, grid, "n = {n}");
    }
    assert!("0/3".parse::<Shard>().is_err());
    assert!("4/3".parse::<Shard>().is_err());
    assert_eq!("2/3".parse::<Shard>().unwrap(), Shard { index: 2, count: 3 });
}

/// A tiny dataset cache made through the real import path.
fn dataset(root: &Path) -> PathBuf {
    let (src, _, _) = common::write_official_dir(&root.join("src"), 64, 64);
    let data_dir = root.join("data");
    let ok = actlab(&["data", "--data", src.to_str().unwrap(), "--data-dir", data_dir.to_str().unwrap()], root).status.success();
    assert!(ok);
    data_dir
}

fn actlab(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_actlab")).args(args).current_dir(cwd).stdin(Stdio::null()).output().unwrap()
}

fn study_args<'a>(data: &'a str, artifacts: &'a str) -> Vec<&'a str> {
    vec!["study", "run", "t.toml", "--data-dir", data, "--artifacts", artifacts, "--threads", "2"]
}

#[test]
fn killed_study_resumes_bit_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let data = dataset(root);
    std::fs::write(root.join("t.toml"), GOOD.replace("epochs = 2", "epochs = 4").replace("seeds = [1, 2]", "seeds = [7]")).unwrap();
    let data = data.to_str().unwrap();

    // Uninterrupted reference.
    let out = actlab(&study_args(data, "clean"), root);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The same study, killed with SIGKILL right after its first checkpoint.
    let mut child = Command::new(env!("CARGO_BIN_EXE_actlab")).args(study_args(data, "killed")).current_dir(root).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let ck = root.join("killed/t/relu/seed-7/checkpoint.safetensors");
    let t0 = Instant::now();
    while !ck.exists() {
        assert!(t0.elapsed() < Duration::from_secs(120), "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!root.join("killed/t/relu/seed-7/history.csv").exists(), "a killed run must not have published artifacts");
    let status = actlab(&["study", "status", "t.toml", "--artifacts", "killed"], root);
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(table.contains("partial (epoch") || table.contains("missing"), "{table}");

    // Resume (the stale lock of the killed process is taken over).
    let out = actlab(&study_args(data, "killed"), root);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for run in ["relu/seed-7", "tanh/seed-7"] {
        for f in ["history.csv", "diagnostics.csv"] {
            let a = std::fs::read(root.join("clean/t").join(run).join(f)).unwrap();
            let b = std::fs::read(root.join("killed/t").join(run).join(f)).unwrap();
            assert_eq!(String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap(), "{run}/{f}");
        }
        let sha = |d: &str| {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join(d).join("t").join(run).join("run.json")).unwrap()).unwrap();
            v["params_sha256"].as_str().unwrap().to_string()
        };
        assert_eq!(sha("clean"), sha("killed"), "{run}: parameters differ");
        assert!(!root.join("killed/t").join(run).join("run.lock").exists());
    }
    let status = actlab(&["study", "status", "t.toml", "--artifacts", "killed"], root);
    assert!(String::from_utf8_lossy(&status.stdout).contains("2/2 runs complete"));

    // Finished runs are left alone; another protocol is refused unless forced.
    let again = actlab(&study_args(data, "killed"), root);
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 trained, 2 already done"));
    let mut args = study_args(data, "killed");
    args.extend(["--epochs", "1"]);
    let other = actlab(&args, root);
    assert!(!other.status.success() && String::from_utf8_lossy(&other.stderr).contains("--force"));
}

#[test]
fn a_diverging_run_is_recorded_not_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let data = dataset(root);
    std::fs::write(root.join("t.toml"), GOOD.replace("[protocol]", "[protocol]\nlearning_rate = 1e30").replace("seeds = [1, 2]", "seeds = [1]")).unwrap();
    let out = actlab(&study_args(data.to_str().unwrap(), "a"), root);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join("a/t/relu/seed-1/run.json")).unwrap()).unwrap();
    assert_eq!(v["status"], "diverged", "{v}");
    assert_eq!(v["epoch"], 1);
    let again = actlab(&study_args(data.to_str().unwrap(), "a"), root);
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 trained"));
}
