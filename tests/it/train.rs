//! Training runs: bit-identical across thread counts and reruns, resumable,
//! and learning on real data.

use crate::common;
use actlab::activation::Activation;
use actlab::data::Dataset;
use actlab::train::{self, Protocol, Reporter, TrainConfig};
use std::path::Path;

fn config(act: Activation, epochs: usize, n: usize) -> TrainConfig {
    TrainConfig::new(act, 3, Protocol { epochs, train_limit: Some(n), test_limit: Some(256), ..Protocol::ARTICLE })
}

/// (history.csv, params sha256, diagnostics.csv) of a run in a fresh directory.
fn run_with_threads(cfg: &TrainConfig, data: &Dataset, dir: &Path, threads: usize) -> (String, String, String) {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let out = pool.install(|| train::run(cfg, data, dir, &Reporter::default(), None)).unwrap();
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    (read("history.csv"), out.record.params_sha256, read("diagnostics.csv"))
}

#[test]
fn same_bits_for_any_thread_count_and_rerun() {
    let data = common::synthetic_dataset(512, 256);
    for act in [Activation::Relu, Activation::ZeroFitLinear] {
        let cfg = config(act, 2, 512);
        let tmp = tempfile::tempdir().unwrap();
        let runs: Vec<_> = [1, 2, 1, 2].iter().enumerate().map(|(i, &t)| run_with_threads(&cfg, &data, &tmp.path().join(i.to_string()), t)).collect();
        for r in &runs[1..] {
            assert_eq!(r, &runs[0], "{act}: runs differ");
        }
        let text = &runs[0].0;
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.starts_with("loss,accuracy,val_loss,val_accuracy\n"));
    }
}

#[test]
fn resume_equals_never_stopping() {
    let data = common::synthetic_dataset(256, 256);
    let cfg = config(Activation::SoftplusLinear, 3, 256);
    let tmp = tempfile::tempdir().unwrap();
    let whole = run_with_threads(&cfg, &data, &tmp.path().join("whole"), 2);
    let dir = tmp.path().join("split");
    let first = train::run(&cfg, &data, &dir, &Reporter::default(), Some(1)).unwrap();
    assert_eq!(first.history.len(), 1);
    assert!(!dir.join("history.csv").exists(), "artifacts must appear only when the run is complete");
    assert!(dir.join("checkpoint.safetensors").exists());
    train::run(&cfg, &data, &dir, &Reporter::default(), Some(1)).unwrap();
    let resumed = run_with_threads(&cfg, &data, &dir, 1);
    assert_eq!(resumed, whole);
    assert!(!dir.join("checkpoint.safetensors").exists());
}

/// The network with batch normalisation: the same bits for any thread
/// count, and a resumed run equals one never stopped, so the moving
/// statistics travel in the checkpoint.
#[test]
fn the_batch_norm_network_is_deterministic_and_resumes() {
    use actlab::nn::arch::Architecture;
    let data = common::synthetic_dataset(256, 256);
    let mut cfg = config(Activation::ZeroFitLinear, 2, 256);
    cfg.protocol.network = Architecture::ArticleBn;
    assert!(cfg.protocol.slug().ends_with("-article-bn"));
    let tmp = tempfile::tempdir().unwrap();
    let whole = run_with_threads(&cfg, &data, &tmp.path().join("whole"), 2);
    assert_eq!(whole, run_with_threads(&cfg, &data, &tmp.path().join("one-thread"), 1));
    let dir = tmp.path().join("split");
    train::run(&cfg, &data, &dir, &Reporter::default(), Some(1)).unwrap();
    assert_eq!(run_with_threads(&cfg, &data, &dir, 1), whole);
    // Diagnostics for the five activated layers, before training and after each epoch.
    assert_eq!(whole.2.lines().count(), 1 + 3 * 5, "{}", whole.2);
    // Another network, other bits.
    assert_ne!(whole, run_with_threads(&config(Activation::ZeroFitLinear, 2, 256), &data, &tmp.path().join("article"), 2));
}

#[test]
fn loss_falls_on_real_images() {
    let Some(shared) = common::shared_cifar("loss_falls_on_real_images") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = actlab::data::load(&tmp.path().join("data"), Some(&shared), false, false).unwrap();
    assert_eq!(data.manifest.dataset, "CIFAR-10 (JPEG q75)");
    assert_eq!((data.train.len(), data.test.len()), (50_000, 10_000));
    let cfg = TrainConfig::new(Activation::Relu, 1, Protocol { epochs: 2, train_limit: Some(2048), test_limit: Some(512), ..Protocol::ARTICLE });
    let out = train::run(&cfg, &data, &tmp.path().join("run"), &Reporter::default(), None).unwrap();
    let h = &out.history;
    assert!(h[1].loss < h[0].loss && h[0].loss < 2.3, "{h:?}");
    assert!(h[1].val_accuracy > 0.2, "{h:?}");
}

fn actlab(args: &[&str]) -> (bool, String) {
    let out = common::actlab(args, &std::env::temp_dir());
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout))
}

#[test]
fn bad_flags_fail_clearly() {
    let (ok, e) = actlab(&["train", "--act", "swish"]);
    assert!(!ok && e.contains("swish") && e.contains("softplus_linear") && e.contains("zero_fit_linear"), "{e}");
    let (ok, e) = actlab(&["train", "--act", "relu", "--epochs", "0"]);
    assert!(!ok && e.contains("--epochs"), "{e}");
    let (ok, e) = actlab(&["train", "--help"]);
    assert!(ok && e.contains("--train-limit") && e.contains("--seed"), "{e}");
}
