//! The GPU engine, checked without a GPU: its CUDA C runs on the host
//! emulator (`emulator/`), driven by the same Rust code that drives CUDA, and
//! must reproduce the CPU engine bit for bit: each GEMM kernel on awkward
//! shapes, and whole batched training steps of several runs (parameters,
//! optimizer state, losses, accuracies and evaluation).

use crate::common;
use crate::emulator;


use actlab::activation::Activation;
use actlab::nn::arch::Architecture;
use actlab::nn::gpu::program;
use actlab::nn::optim::{OptimizerConfig, SgdConfig};
use actlab::train::gpu::check::{check_gemm, check_training};
use emulator::{Emulated, Gemm};

/// The check `actlab device-check` runs on a GPU, on the emulator with the
/// real GEMM kernels (threads and barriers emulated).
#[test]
fn gemm_kernels_match_the_cpu_gemm() {
    let dev = Emulated::build(&program(&[Activation::Relu]), Gemm::Kernel).unwrap();
    let d = check_gemm(&dev).unwrap();
    assert!(d.is_empty(), "{}", d.join("\n"));
}

/// Likewise for whole training steps of three runs together (GEMMs by the
/// loop), with each optimizer, and in the network with batch normalisation.
#[test]
fn batched_training_steps_match_the_cpu_bit_for_bit() {
    let sgd = OptimizerConfig::Sgd(SgdConfig { learning_rate: 0.01, momentum: 0.9 });
    for (network, optimizer) in [(Architecture::Article, OptimizerConfig::ARTICLE), (Architecture::Article, sgd), (Architecture::ArticleBn, OptimizerConfig::ARTICLE)] {
        let d = check_training(network, optimizer, |p| Emulated::build(p, Gemm::Loop)).unwrap();
        assert!(d.is_empty(), "{} network, {}: {}", network.name(), optimizer.name(), d.join("\n"));
    }
}

#[test]
fn runs_trained_together_write_what_each_writes_alone_on_the_cpu() {
    use actlab::train::{self, Protocol, Reporter, TrainConfig};
    let data = common::synthetic_dataset(10, 6);
    let configs: Vec<TrainConfig> = [(Activation::Relu, 1), (Activation::ZeroFitLinear, 2)]
        .into_iter()
        .map(|(a, s)| TrainConfig::new(a, s, Protocol { epochs: 3, batch_size: 4, ..Protocol::ARTICLE }))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = (0..configs.len()).map(|i| tmp.path().join(format!("gpu-{i}"))).collect();
    // The GPU resumes what the CPU started: one epoch there, the rest together.
    for (c, d) in configs.iter().zip(&dirs) {
        train::run(c, &data, d, &Reporter::default(), Some(1)).unwrap();
    }
    let ended = train::gpu::run_on(&configs, &dirs, &data, "emulated GPU", |p| Emulated::build(p, Gemm::Loop), &Reporter::default(), false).unwrap();
    let together: Vec<train::Outcome> = ended.into_iter().zip(&dirs).map(|(e, d)| e.trained(d).unwrap()).collect();
    for (i, (c, d)) in configs.iter().zip(&dirs).enumerate() {
        let alone = tmp.path().join(format!("cpu-{i}"));
        let cpu = train::run(c, &data, &alone, &Reporter::default(), None).unwrap();
        let read = |dir: &std::path::Path, f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        for f in ["history.csv", "diagnostics.csv"] {
            assert_eq!(read(d, f), read(&alone, f), "{} seed {}: {f}", c.activation, c.seed);
        }
        assert_eq!(together[i].record.params_sha256, cpu.record.params_sha256);
        assert_eq!(together[i].record.history_sha256, cpu.record.history_sha256);
        assert_eq!((together[i].record.device.class.as_str(), together[i].record.epochs_completed), ("cuda", 3));
        assert!(!d.join("checkpoint.safetensors").exists());
    }
}
