//! Studies: strict study files, shards that cover the grid once, and a real
//! process killed mid-run that resumes to bit-identical results.

use crate::common;
use actlab::study::{Shard, Study};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn parse(text: &str) -> anyhow::Result<Study> {
    Study::parse(text, Path::new("studies/t.toml"))
}

const GOOD: &str = r#"
name = "t"
title = "A test"
dataset = "cifar10"
seeds = [1, 2]
baseline = "relu"
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
        assert_eq!((s.protocol.epochs, s.protocol.batch_size, s.seeds.clone()), (50, 64, vec![1, 2, 3]));
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
baseline = "relu"
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
        (DESIGNED.replace("\"softplus_linear\"]]", "\"zero_fit_linear\"]]"), vec!["t.toml", "line 11", "design.cells", "zero_fit_linear", "not one of the study's functions"]),
        (DESIGNED.replace("[\"signed_sqrt\", \"softplus_linear\"]", "[\"signed_sqrt\"]"), vec!["line 11", "design.cells", "two rows of two"]),
        (DESIGNED.replace("\"softplus_linear\"]]", "\"relu\"]]"), vec!["design.cells", "different function"]),
        (DESIGNED.replace("credits = \"columns\"", "credits = \"diagonal\""), vec!["line 12", "design.credits", "diagonal", "\"rows\" or \"columns\""]),
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
        (GOOD.replace("epochs = 2", "epochs = 2\nepoch = 3"), vec!["t.toml", "line 9", "epoch"]),
        (GOOD.replace("name = \"tanh\"", "name = \"swish\""), vec!["t.toml", "line 12", "swish", "softplus_linear"]),
        (GOOD.replace("epochs = 2", "epochs = 0"), vec!["t.toml", "line 8", "protocol.epochs"]),
        (GOOD.replace("seeds = [1, 2]", "seeds = [1, 1]"), vec!["line 5", "seeds", "twice"]),
        (GOOD.replace("title = \"A test\"\n", ""), vec!["t.toml", "title"]),
        (GOOD.replace("dataset = \"cifar10\"", "dataset = \"mnist\""), vec!["line 4", "dataset", "mnist"]),
        (GOOD.replace("expect = \"lower\"", "expect = \"worse\""), vec!["t.toml", "worse"]),
        (GOOD.replace("[protocol]", "[protocol]\nlearning_rate = -1.0"), vec!["protocol.learning_rate", "positive"]),
        (GOOD.replace("seeds = [1, 2]", "architecture = \"resnet\"\nseeds = [1, 2]"), vec!["line 5", "architecture", "resnet", "\"article\""]),
        (GOOD.replace("[protocol]", "[protocol]\noptimizer = \"rmsprop\""), vec!["line 8", "protocol.optimizer", "rmsprop", "\"sgd\""]),
        (GOOD.replace("[protocol]", "[protocol]\nmomentum = 0.9"), vec!["line 8", "protocol.momentum", "not a setting of Adam"]),
        (GOOD.replace("[protocol]", "[protocol]\noptimizer = \"sgd\"\nbeta1 = 0.5"), vec!["line 9", "protocol.beta1", "not a setting of SGD"]),
        (GOOD.replace("[protocol]", "[protocol]\noptimizer = \"sgd\"\nmomentum = 1.0"), vec!["line 9", "protocol.momentum", "[0, 1)"]),
        (GOOD.replace("baseline = \"relu\"", "baseline = \"gelu\""), vec!["line 6", "baseline", "gelu", "relu, tanh"]),
        (GOOD.replace("expect = \"lower\"", "expect = \"similar\""), vec!["t.toml", "similar_margin", "0.02"]),
        (GOOD.replace("baseline = \"relu\"", "baseline = \"relu\"\nsimilar_margin = 2"), vec!["line 7", "similar_margin", "between 0 and 1"]),
        (format!("{GOOD}[hypothesis]\ntext = \"h\"\ndecided_by = [\"gelu\"]\n"), vec!["t.toml", "line 17", "hypothesis.decided_by", "gelu", "relu, tanh"]),
        (format!("{GOOD}[hypothesis]\ntext = \"h\"\ndecided_by = [\"relu\"]\n"), vec!["line 17", "hypothesis.decided_by", "no claims"]),
    ];
    // SGD with Keras' default learning rate unless given.
    let sgd = parse(&GOOD.replace("[protocol]", "[protocol]\noptimizer = \"sgd\"\nmomentum = 0.9")).unwrap();
    assert_eq!(sgd.protocol.optimizer, actlab::nn::optim::OptimizerConfig::Sgd(actlab::nn::optim::SgdConfig { learning_rate: 0.01, momentum: 0.9 }));
    assert_eq!(sgd.protocol.slug(), "e2-b64-sgd0.01m0.9");
    let s = parse(&format!("{GOOD}[hypothesis]\ntext = \"h\"\ndecided_by = [\"tanh\"]\nsame_question_as = \"other\"\n")).unwrap();
    let h = s.hypothesis.unwrap();
    assert_eq!((h.decided_by, h.same_question_as.as_deref()), (vec![actlab::activation::Activation::Tanh], Some("other")));
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

use common::actlab;

/// The subtree of a store or the artifacts that holds the runs of the
/// dataset cached in `data_dir` (`data-<12 hex>`: the tests' data is never the committed runs').
pub fn tree(data_dir: &Path) -> String {
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(data_dir.join("cifar10.json")).unwrap()).unwrap();
    format!("data-{}", &m["tensors_sha256"].as_str().unwrap()[..12])
}

fn text(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// `study run t.toml` with the run store and the published artifacts named.
fn study_args<'a>(data: &'a str, store: &'a str, artifacts: &'a str) -> Vec<&'a str> {
    vec!["study", "run", "t.toml", "--data-dir", data, "--store", store, "--artifacts", artifacts, "--threads", "2"]
}

#[test]
fn killed_study_resumes_bit_identically_from_the_store_in_a_fresh_checkout() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let data = dataset(root);
    let t = tree(&data);
    std::fs::write(root.join("t.toml"), GOOD.replace("epochs = 2", "epochs = 4").replace("seeds = [1, 2]", "seeds = [7]")).unwrap();
    let data = data.to_str().unwrap();

    // Uninterrupted reference.
    let out = actlab(&study_args(data, "store-clean", "clean"), root);
    assert!(out.status.success(), "{}", text(&out));

    // The same study from one checkout, killed with SIGKILL right after its first checkpoint.
    let mut child = common::actlab_command(root).args(study_args(data, "store", "checkout-1")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let ck = root.join(format!("store/{t}/e4-b64/relu/seed-7/checkpoint.safetensors"));
    let t0 = Instant::now();
    while !ck.exists() {
        assert!(t0.elapsed() < Duration::from_secs(120), "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    // Not reaped: the process stays a zombie while the next one starts (a PID
    // lock would still look held). Wait until the kernel has made it one.
    let stat = format!("/proc/{}/stat", child.id());
    while !std::fs::read_to_string(&stat).is_ok_and(|s| s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z'))) {
        assert!(t0.elapsed() < Duration::from_secs(120), "the killed process never became a zombie");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(!root.join(format!("checkout-1/{t}/e4-b64/relu/seed-7")).exists(), "a killed run must not be published");
    let status = actlab(&["study", "status", "t.toml", "--store", "store", "--artifacts", "checkout-2"], root);
    assert!(text(&status).contains("partial (epoch"), "{}", text(&status));

    // A fresh checkout (new artifacts folder) and the same store, started at
    // once: the dead process's lock is no lock, and the run resumes.
    let out = actlab(&study_args(data, "store", "checkout-2"), root);
    child.wait().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("busy"), "{}", text(&out));
    for run in [format!("{t}/e4-b64/relu/seed-7"), format!("{t}/e4-b64/tanh/seed-7")] {
        let run = run.as_str();
        for f in ["history.csv", "diagnostics.csv", "run.json"] {
            assert!(root.join("store").join(run).join(f).exists(), "{run}/{f} is kept in the store");
        }
        for f in ["history.csv", "diagnostics.csv"] {
            let a = std::fs::read_to_string(root.join("clean").join(run).join(f)).unwrap();
            let b = std::fs::read_to_string(root.join("checkout-2").join(run).join(f)).unwrap();
            assert_eq!(a, b, "{run}/{f}");
        }
        let sha = |d: &str| {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join(d).join(run).join("run.json")).unwrap()).unwrap();
            v["params_sha256"].as_str().unwrap().to_string()
        };
        assert_eq!(sha("clean"), sha("checkout-2"), "{run}: parameters differ");
        // Wall time adds up over the resumes, as training time does.
        let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join("checkout-2").join(run).join("run.json")).unwrap()).unwrap();
        assert!(rec["wall_seconds"].as_f64().unwrap() >= rec["train_seconds"].as_f64().unwrap(), "{run}: {rec}");
        assert_eq!(rec["params_sha256_by_epoch"].as_array().map(Vec::len), Some(4), "{run}: a parameter hash per epoch");
        for leftover in ["run.lock", "checkpoint.safetensors"] {
            assert!(!root.join("store").join(run).join(leftover).exists(), "{run}: {leftover} left behind");
            assert!(!root.join("checkout-2").join(run).join(leftover).exists(), "{run}: {leftover} published");
        }
    }
    let status = actlab(&["study", "status", "t.toml", "--store", "store", "--artifacts", "checkout-2"], root);
    assert!(text(&status).contains("2/2 runs complete"), "{}", text(&status));

    // Finished runs are never trained again, and a third checkout gets them published from the store.
    let again = actlab(&study_args(data, "store", "checkout-3"), root);
    assert!(text(&again).contains("0 trained, 2 already done, 0 diverged, 2 published"), "{}", text(&again));
    assert_eq!(std::fs::read(root.join(format!("checkout-3/{t}/e4-b64/tanh/seed-7/history.csv"))).unwrap(), std::fs::read(root.join(format!("clean/{t}/e4-b64/tanh/seed-7/history.csv"))).unwrap());
    // A reduced protocol is another run, beside the first.
    let mut args = study_args(data, "store", "checkout-3");
    args.extend(["--epochs", "1"]);
    let reduced = actlab(&args, root);
    assert!(reduced.status.success() && text(&reduced).contains("2 trained"), "{}", text(&reduced));
    assert!(root.join(format!("checkout-3/{t}/e1-b64/relu/seed-7/run.json")).exists());
}

#[test]
fn studies_share_a_run_and_the_queue_trains_it_once() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let data = dataset(root);
    let t = tree(&data);
    let data = data.to_str().unwrap();
    let studies = root.join("studies");
    std::fs::create_dir_all(&studies).unwrap();
    // Two studies with relu seed 1 in common, and a function both define under other names.
    let a = GOOD.replace("name = \"t\"", "name = \"a\"").replace("seeds = [1, 2]", "seeds = [1]").replace("epochs = 2", "epochs = 1");
    let a = a + "[[functions]]\nname = \"leaky_a\"\nexpr = \"where(x <= 0, 0.1*x, x)\"\n";
    let b = a.replace("name = \"a\"", "name = \"b\"").replace("name = \"tanh\"", "name = \"signed_sqrt\"").replace("leaky_a\"\nexpr = \"where(x <= 0, 0.1*x, x)", "leaky_b\"\nexpr = \"where( x<=0, 0.10*x, x )");
    std::fs::write(studies.join("a.toml"), a).unwrap();
    std::fs::write(studies.join("b.toml"), b).unwrap();
    std::fs::write(studies.join("index.toml"), "studies = [\"a\", \"b\"]\n").unwrap();
    let queue = |cmd: &str| actlab(&["queue", cmd, "--studies", "studies", "--data-dir", data, "--store", "store", "--artifacts", "artifacts", "--threads", "2"][..if cmd == "run" { 12 } else { 8 }], root);

    let before = queue("status");
    assert!(text(&before).contains("0 done, 0 running, 4 left"), "{}", text(&before));
    let out = queue("run");
    assert!(out.status.success(), "{}", text(&out));
    // relu, tanh, leaky (one definition, two names) and signed_sqrt: 4 runs for 6 grid cells.
    assert!(text(&out).contains("4 trained"), "{}", text(&out));
    let after = queue("status");
    assert!(text(&after).contains("4 done, 0 running, 0 left"), "{}", text(&after));
    // Study b sees the shared runs as done.
    let b = actlab(&["study", "run", "studies/b.toml", "--data-dir", data, "--store", "store", "--artifacts", "artifacts"], root);
    assert!(text(&b).contains("0 trained, 3 already done"), "{}", text(&b));

    // A run another process holds is left to it; the queue comes back to it at
    // the end, and when its holder lets go unfinished, trains it itself.
    std::fs::remove_file(studies.join("b.toml")).unwrap();
    std::fs::write(studies.join("index.toml"), "studies = [\"a\"]\n").unwrap();
    let a2 = std::fs::read_to_string(studies.join("a.toml")).unwrap().replace("seeds = [1]", "seeds = [1, 2]");
    std::fs::write(studies.join("a.toml"), a2).unwrap();
    let held = match actlab::train::RunLock::acquire(&root.join(format!("store/{t}/e1-b64/relu/seed-2"))).unwrap() {
        actlab::train::lock::Acquired::Held(l) => l,
        actlab::train::lock::Acquired::Busy(who) => panic!("held by {who}"),
    };
    let child = common::actlab_command(root).args(["queue", "run", "--studies", "studies", "--data-dir", data, "--store", "store", "--artifacts", "artifacts", "--threads", "2"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let watched = common::watch(child);
    watched.wait_for("waiting for", Duration::from_secs(120));
    drop(held);
    let (status, said) = watched.finish();
    assert!(status.success(), "{said}");
    assert!(said.contains("relu seed 2: ") && said.contains("is training it") && said.contains("3 trained"), "{said}");

    // The time left is at the median pace: one run recorded as a thousand
    // hours slow (trained beside a build, say) does not set the estimate.
    let slow = root.join(format!("store/{t}/e1-b64/relu/seed-1/run.json"));
    let mut rec: serde_json::Value = serde_json::from_slice(&std::fs::read(&slow).unwrap()).unwrap();
    rec["train_seconds"] = serde_json::json!(3.6e6);
    std::fs::write(&slow, serde_json::to_vec(&rec).unwrap()).unwrap();
    let status = text(&queue("status"));
    assert!(status.contains("6 done, 0 running, 0 left"), "{status}");
    std::fs::write(studies.join("a.toml"), std::fs::read_to_string(studies.join("a.toml")).unwrap().replace("seeds = [1, 2]", "seeds = [1, 2, 3]")).unwrap();
    let status = text(&queue("status"));
    assert!(status.contains("6 done, 0 running, 3 left") && status.contains("about 0.0 hours"), "{status}");
}

#[test]
fn a_diverging_run_is_recorded_not_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let data = dataset(root);
    std::fs::write(root.join("t.toml"), GOOD.replace("[protocol]", "[protocol]\nlearning_rate = 1e30").replace("seeds = [1, 2]", "seeds = [1]")).unwrap();
    let out = actlab(&study_args(data.to_str().unwrap(), "store", "a"), root);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join(format!("a/{}/e2-b64-lr1e30/relu/seed-1/run.json", tree(&data)))).unwrap()).unwrap();
    assert_eq!(v["status"], "diverged", "{v}");
    assert_eq!(v["epoch"], 1);
    let again = actlab(&study_args(data.to_str().unwrap(), "store", "a"), root);
    assert!(text(&again).contains("0 trained"), "{}", text(&again));
}

#[test]
fn the_index_refuses_a_same_question_study_it_does_not_list() {
    let dir = tempfile::tempdir().unwrap();
    let with = |other: &str| format!("{}[hypothesis]\ntext = \"h\"\ndecided_by = [\"tanh\"]\nsame_question_as = \"{other}\"\n", GOOD);
    std::fs::write(dir.path().join("index.toml"), "studies = [\"t\"]\n").unwrap();
    std::fs::write(dir.path().join("t.toml"), with("elsewhere")).unwrap();
    let e = format!("{:#}", actlab::study::index::load(dir.path()).unwrap_err());
    assert!(e.contains("same_question_as") && e.contains("elsewhere"), "{e}");
    std::fs::write(dir.path().join("t.toml"), with("t")).unwrap();
    assert!(actlab::study::index::load(dir.path()).is_err(), "a study cannot ask its own question again");
}
