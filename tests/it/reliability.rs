//! Nothing lost, nothing mistaken: runs on other data live apart and never
//! replace a published run, damaged checkpoints are refused, workers on one
//! store cooperate, `--force` leaves a held run alone, killed writes leave
//! nothing behind, and every exit code tells the truth. Each case drives the
//! real binary on tiny generated data.

use crate::common::{self, actlab};
use crate::study::tree;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

fn text(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// A tiny official-layout dataset imported into `root/<name>` (its cache folder).
fn dataset(root: &Path, name: &str, per_batch: usize) -> PathBuf {
    let (src, _, _) = common::write_official_dir(&root.join(format!("{name}-src")), per_batch, 32);
    let dir = root.join(name);
    let out = actlab(&["data", "--data", src.to_str().unwrap(), "--data-dir", dir.to_str().unwrap()], root);
    assert!(out.status.success(), "{}", text(&out));
    dir
}

const STUDY: &str = r#"
name = "t"
title = "A test"
dataset = "cifar10"
seeds = [1, 2]
baseline = "relu"
[protocol]
epochs = 1
[[functions]]
name = "relu"
[[functions]]
name = "tanh"
"#;

fn study_run(root: &Path, data: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["study", "run", "t.toml", "--data-dir", data.to_str().unwrap(), "--store", "store", "--artifacts", "artifacts", "--threads", "1"];
    args.extend(extra);
    actlab(&args, root)
}

#[test]
fn runs_on_other_data_live_apart_and_never_replace_a_published_run() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::write(root.join("t.toml"), STUDY.replace("seeds = [1, 2]", "seeds = [1]")).unwrap();
    let (a, b) = (dataset(root, "a", 16), dataset(root, "b", 24));
    let (ta, tb) = (tree(&a), tree(&b));
    assert_ne!(ta, tb);
    // A finished run on data a, in the default layout of the store…
    let out = actlab(&["train", "--act", "relu", "--epochs", "1", "--data-dir", a.to_str().unwrap(), "--store", "store", "--threads", "1"], root);
    assert!(out.status.success(), "{}", text(&out));
    let on_a = root.join(format!("store/{ta}/e1-b64/relu/seed-1"));
    let history_a = std::fs::read(on_a.join("history.csv")).unwrap();
    // …is not data b's run: the study on b trains its own, beside it.
    let out = study_run(root, &b, &[]);
    assert!(out.status.success() && text(&out).contains("2 trained, 0 already done"), "{}", text(&out));
    assert_eq!(std::fs::read(on_a.join("history.csv")).unwrap(), history_a);
    let published_b = root.join(format!("artifacts/{tb}/e1-b64/relu/seed-1"));
    assert!(published_b.join("run.json").exists());

    // Where a run of data a stands in b's published folder (copied by hand, say),
    // b's run is not published over it: an error names both identities, exit 1.
    for f in ["history.csv", "diagnostics.csv", "run.json"] {
        std::fs::copy(on_a.join(f), published_b.join(f)).unwrap();
    }
    let out = study_run(root, &b, &[]);
    assert!(!out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("not published") && said.contains("another identity") && said.contains("dataset"), "{said}");
    assert_eq!(std::fs::read(published_b.join("history.csv")).unwrap(), history_a, "the published run is left as it was");
}

#[test]
fn a_damaged_checkpoint_is_refused_and_force_starts_over() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let data = dataset(root, "d", 16);
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "--act", "relu", "--epochs", "2", "--data-dir", data.to_str().unwrap(), "--store", "store", "--threads", "1"];
        args.extend(extra);
        actlab(&args, root)
    };
    let clean = train(&["--out", "clean"]);
    assert!(clean.status.success(), "{}", text(&clean));
    // One epoch, then stop: a checkpoint after epoch 1.
    let dir = root.join(format!("store/{}/e2-b64/relu/seed-1", tree(&data)));
    let config = actlab::train::TrainConfig::new(actlab::activation::Activation::Relu, 1, actlab::train::Protocol { epochs: 2, ..actlab::train::Protocol::ARTICLE });
    let ds = actlab::data::load(&data, None, false, false).unwrap();
    actlab::train::run(&config, &ds, &dir, &actlab::train::Reporter::default(), Some(1)).unwrap();
    let ck = dir.join("checkpoint.safetensors");
    let good = std::fs::read(&ck).unwrap();
    // One flipped bit in the parameters, then four bytes of 0xff: each refused, never resumed.
    let n = good.len();
    for (at, damage) in [(n - 1000, vec![good[n - 1000] ^ 0x10]), (n / 2, vec![0xff; 4])] {
        let mut bad = good.clone();
        bad[at..at + damage.len()].copy_from_slice(&damage);
        std::fs::write(&ck, &bad).unwrap();
        let out = train(&[]);
        assert!(!out.status.success(), "{}", text(&out));
        let said = text(&out);
        assert!(said.contains("is damaged") && said.contains("--force"), "{said}");
        assert!(!dir.join("run.json").exists(), "nothing published from a damaged checkpoint");
        assert_eq!(std::fs::read(&ck).unwrap(), bad, "the evidence is left in place");
    }
    // --force trains the run from the start, and it equals the clean run.
    let out = train(&["--force"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(dir.join("history.csv")).unwrap(), std::fs::read(root.join("clean/history.csv")).unwrap());
}

#[test]
fn unpublished_runs_fail_the_study_with_a_line_on_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::write(root.join("t.toml"), STUDY.replace("seeds = [1, 2]", "seeds = [1]")).unwrap();
    let data = dataset(root, "d", 16);
    // The artifacts cannot be written to (a file stands where the folder goes).
    std::fs::create_dir_all(root.join("artifacts")).unwrap();
    std::fs::write(root.join("artifacts").join(tree(&data)), "in the way").unwrap();
    let out = study_run(root, &data, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("relu seed 1") && said.contains("not published") && said.contains("2 runs are not done"), "{said}");
    // Once the way is clear, the finished runs are published without training again.
    std::fs::remove_file(root.join("artifacts").join(tree(&data))).unwrap();
    let out = study_run(root, &data, &[]);
    assert!(out.status.success() && text(&out).contains("0 trained, 2 already done, 0 diverged, 2 published"), "{}", text(&out));
}

#[test]
fn two_workers_on_one_store_compute_each_run_once_and_both_succeed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::write(root.join("t.toml"), STUDY.replace("epochs = 1", "epochs = 2")).unwrap();
    let data = dataset(root, "d", 32);
    let start = || {
        let c = common::actlab_command(root)
            .args(["study", "run", "t.toml", "--data-dir", data.to_str().unwrap(), "--store", "store", "--artifacts", "artifacts", "--threads", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        common::watch(c)
    };
    let (one, two) = (start(), start());
    let (s1, t1) = one.finish();
    let (s2, t2) = two.finish();
    assert!(s1.success() && s2.success(), "{t1}\n---\n{t2}");
    let trained = |t: &str| -> usize { t.lines().find_map(|l| l.strip_prefix("t: ")).and_then(|l| l.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no summary in {t}")) };
    assert_eq!(trained(&t1) + trained(&t2), 4, "each of the 4 runs trained once:\n{t1}\n---\n{t2}");
    for f in ["relu/seed-1", "relu/seed-2", "tanh/seed-1", "tanh/seed-2"] {
        assert!(root.join(format!("artifacts/{}/e2-b64/{f}/run.json", tree(&data))).exists(), "{f} published");
    }
}

#[test]
fn force_never_touches_a_run_another_process_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::write(root.join("t.toml"), STUDY.replace("seeds = [1, 2]", "seeds = [1]").replace("epochs = 1", "epochs = 2").replace("[[functions]]\nname = \"tanh\"\n", "")).unwrap();
    let data = dataset(root, "d", 16);
    let dir = root.join(format!("store/{}/e2-b64/relu/seed-1", tree(&data)));
    let config = actlab::train::TrainConfig::new(actlab::activation::Activation::Relu, 1, actlab::train::Protocol { epochs: 2, ..actlab::train::Protocol::ARTICLE });
    let ds = actlab::data::load(&data, None, false, false).unwrap();
    actlab::train::run(&config, &ds, &dir, &actlab::train::Reporter::default(), Some(1)).unwrap();
    let before = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    let held = match actlab::train::RunLock::acquire(&dir).unwrap() {
        actlab::train::lock::Acquired::Held(l) => l,
        actlab::train::lock::Acquired::Busy(who) => panic!("held by {who}"),
    };
    let child = common::actlab_command(root)
        .args(["study", "run", "t.toml", "--force", "--data-dir", data.to_str().unwrap(), "--store", "store", "--artifacts", "artifacts", "--threads", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let watched = common::watch(child);
    watched.wait_for("waiting for", Duration::from_secs(120));
    assert_eq!(std::fs::read(dir.join("checkpoint.safetensors")).unwrap(), before, "--force left the held run's checkpoint alone");
    drop(held);
    // Its holder let go unfinished: the run is resumed (not started over), and it ends.
    let (status, said) = watched.finish();
    assert!(status.success(), "{said}");
    let resumed = std::fs::read_to_string(dir.join("history.csv")).unwrap();
    let fresh = actlab(&["train", "--act", "relu", "--epochs", "2", "--data-dir", data.to_str().unwrap(), "--out", "fresh", "--threads", "1"], root);
    assert!(fresh.status.success(), "{}", text(&fresh));
    assert_eq!(resumed, std::fs::read_to_string(root.join("fresh/history.csv")).unwrap());
}

#[test]
fn a_killed_writes_leftovers_are_removed_when_the_run_is_next_opened() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let data = dataset(root, "d", 16);
    let dir = root.join("run");
    let config = actlab::train::TrainConfig::new(actlab::activation::Activation::Relu, 1, actlab::train::Protocol { epochs: 2, ..actlab::train::Protocol::ARTICLE });
    let ds = actlab::data::load(&data, None, false, false).unwrap();
    actlab::train::run(&config, &ds, &dir, &actlab::train::Reporter::default(), Some(1)).unwrap();
    // What `kill -9` during a checkpoint write leaves: a temporary file of another process.
    let leftover = dir.join(".checkpoint.safetensors.tmp-999999");
    std::fs::write(&leftover, vec![0u8; 4096]).unwrap();
    actlab::train::run(&config, &ds, &dir, &actlab::train::Reporter::default(), None).unwrap();
    assert!(!leftover.exists(), "the leftover was removed");
    let mut names: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["diagnostics.csv", "history.csv", "run.json", "steps.csv"]);
}

#[test]
fn impossible_requests_fail_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let data = dataset(root, "d", 16);
    // A limit above the dataset's size.
    let out = actlab(&["train", "--act", "relu", "--epochs", "1", "--train-limit", "999999", "--data-dir", data.to_str().unwrap(), "--store", "store"], root);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("--train-limit 999999 is larger than the dataset (80 images"), "{}", text(&out));
    // A book from artifacts that do not exist.
    let out = actlab(&["report", "--artifacts", "/nonexistent/artifacts", "--studies", &format!("{}/studies", env!("CARGO_MANIFEST_DIR")), "--book", "book"], root);
    assert!(!out.status.success() && text(&out).contains("no artifacts folder"), "{}", text(&out));
    // `verify` with data on which no published run was computed.
    let out = actlab(&["verify", "--artifacts", &format!("{}/artifacts", env!("CARGO_MANIFEST_DIR")), "--data-dir", data.to_str().unwrap()], root);
    assert!(!out.status.success() && text(&out).contains("no published runs computed on the data in the cache"), "{}", text(&out));
}
