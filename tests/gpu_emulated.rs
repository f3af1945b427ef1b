//! The GPU engine, checked without a GPU: its CUDA C runs on the host
//! emulator (`emulator/`), driven by the same Rust code that drives CUDA, and
//! must reproduce the CPU engine bit for bit: each GEMM kernel on awkward
//! shapes, and whole batched training steps of several runs (parameters,
//! Adam moments, losses, accuracies and evaluation).

mod common;
mod emulator;

use actlab::activation::Activation;
use actlab::data::{Split, IMAGE_BYTES};
use actlab::engine::gemm::{gemm, MatRef};
use actlab::engine::launch::{Arg, DeviceVec};
use actlab::engine::rng::{Purpose, Rng};
use actlab::nn::adam::{Adam, AdamConfig};
use actlab::nn::gpu::{program, GpuRuns};
use actlab::nn::loss::BatchStats;
use actlab::nn::model::{DropoutKey, Model};
use emulator::{Emulated, Gemm};

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut v = vec![0.0; n];
    Rng::new(seed).fill_uniform(Purpose::Synthetic, 0, &mut v);
    // Signed values, with exact zeros of both signs now and then.
    v.iter().enumerate().map(|(i, x)| if i % 17 == 3 { -0.0 } else if i % 19 == 5 { 0.0 } else { 2.0 * x - 1.0 }).collect()
}

#[test]
fn gemm_kernels_match_the_cpu_gemm() {
    let dev = Emulated::build(&program(&[Activation::Relu]), Gemm::Kernel).unwrap();
    let runs = 2;
    // (m, n, k): edges in every direction, k shorter and longer than a tile, k = 0.
    for (m, n, k) in [(70, 37, 41), (5, 3, 2), (17, 80, 16), (20, 9, 150), (3, 4, 0)] {
        for (a_t, b_t, accumulate) in [(false, false, true), (true, false, false), (false, true, false), (true, true, true)] {
            for kernel in ["gemm_64", "gemm_16"] {
                let (mut a, mut b) = (values(runs * m * k, 1), values(runs * k * n, 2));
                let mut c0: Vec<f32> = values(runs * m * n, 3).iter().map(|v| if accumulate { -v } else { f32::NAN }).collect();
                if m == 5 {
                    // Sums of −0 must stay −0: no FMA may run past the real k.
                    a.fill(-0.0);
                    b.iter_mut().for_each(|v| *v = v.abs() + 0.5);
                    c0.iter_mut().for_each(|v| *v = if accumulate { -0.0 } else { *v });
                }
                let mut want = c0.clone();
                for r in 0..runs {
                    let (av, ..) = view(&a[r * m * k..(r + 1) * m * k], m, k, a_t);
                    let (bv, ..) = view(&b[r * k * n..(r + 1) * k * n], k, n, b_t);
                    gemm(m, n, k, av, bv, &mut want[r * m * n..(r + 1) * m * n], n, accumulate);
                }
                let (_, a_rs, a_cs) = view(&a, m, k, a_t);
                let (_, b_rs, b_cs) = view(&b, k, n, b_t);
                let (ad, bd) = (DeviceVec::from_slice(&dev, &a).unwrap(), DeviceVec::from_slice(&dev, &b).unwrap());
                let cd = DeviceVec::from_slice(&dev, &c0).unwrap();
                let tile = if kernel == "gemm_64" { 64 } else { 16 };
                let l = |v: usize| Arg::I64(v as i64);
                let args = [Arg::I32(m as i32), Arg::I32(n as i32), Arg::I32(k as i32), ad.arg(), l(a_rs), l(a_cs), l(m * k), bd.arg(), l(b_rs), l(b_cs), l(k * n), cd.arg(), l(n), l(m * n), Arg::I32(accumulate as i32)];
                use actlab::engine::launch::Device;
                dev.launch(kernel, [n.div_ceil(tile).max(1) as u32, m.div_ceil(tile).max(1) as u32, runs as u32], 256, &args).unwrap();
                let got = cd.read(&dev, 0, runs * m * n).unwrap();
                let want_bits: Vec<u32> = if k == 0 && !accumulate { vec![0; want.len()] } else { bits(&want) };
                assert_eq!(bits(&got), want_bits, "{kernel} m={m} n={n} k={k} aT={a_t} bT={b_t} acc={accumulate}");
            }
        }
    }
}

/// A `rows×cols` matrix over row-major storage of it, or of its transpose.
fn view(d: &[f32], rows: usize, cols: usize, t: bool) -> (MatRef<'_>, usize, usize) {
    if t { (MatRef::transposed(d, rows), 1, rows) } else { (MatRef::rows(d, cols), cols, 1) }
}

fn split(n: usize, seed: u64) -> Split {
    let rng = Rng::new(seed);
    let mut px = vec![0f32; n * IMAGE_BYTES];
    rng.fill_uniform(Purpose::Synthetic, 7, &mut px);
    Split { images: px.iter().map(|v| (v * 256.0) as u8).collect(), labels: (0..n).map(|i| rng.below(Purpose::Synthetic, 8, i as u64, 10) as u8).collect() }
}

/// A run trained on the CPU as `train::run` does, one epoch.
struct CpuRun {
    model: Model,
    adam: Adam,
    stats: BatchStats,
}

fn cpu_epoch(act: Activation, seed: u64, batch: usize, train: &Split, first_step: u64, epoch: u64, state: Option<CpuRun>) -> CpuRun {
    let rng = Rng::new(seed);
    let mut run = state.unwrap_or_else(|| {
        let mut model = Model::new(act, batch);
        model.init_glorot(&rng);
        let adam = Adam::new(AdamConfig::default(), model.params.len());
        CpuRun { model, adam, stats: BatchStats::default() }
    });
    run.stats = BatchStats::default();
    let order = rng.permutation(Purpose::Shuffle, epoch, train.len());
    for (s, idx) in order.chunks(batch).enumerate() {
        let images: Vec<u8> = idx.iter().flat_map(|&i| train.image(i as usize).to_vec()).collect();
        let labels: Vec<u8> = idx.iter().map(|&i| train.labels[i as usize]).collect();
        run.model.load_images(&images);
        let st = run.model.loss_and_grads(idx.len(), &labels, Some(DropoutKey { rng: &rng, step: first_step + s as u64 }));
        run.adam.step(&mut run.model.params, &run.model.grads);
        run.stats.add(st);
    }
    run
}

#[test]
fn batched_training_steps_match_the_cpu_bit_for_bit() {
    // Two runs of one function side by side, then a layer-wise function;
    // a last batch smaller than the others; two epochs.
    let acts = [Activation::Relu, Activation::Relu, Activation::ZeroFitLinear];
    let seeds = [1u64, 2, 3];
    let batch = 4;
    let (train, test) = (split(10, 11), split(6, 12));
    let steps = train.len().div_ceil(batch) as u64;

    let mut gpu = GpuRuns::new(&acts, &seeds, batch, AdamConfig::default(), |p| Emulated::build(p, Gemm::Loop)).unwrap();
    let mut cpu: Vec<Option<CpuRun>> = acts.iter().map(|_| None).collect();
    for (r, (&act, &seed)) in acts.iter().zip(&seeds).enumerate() {
        let mut m = Model::new(act, batch);
        m.init_glorot(&Rng::new(seed));
        gpu.set_state(r, &m.params, &Adam::new(AdamConfig::default(), m.params.len())).unwrap();
    }
    let mut train_d = gpu.upload(&train).unwrap();
    let test_d = gpu.upload(&test).unwrap();

    for epoch in 0..2u64 {
        let orders: Vec<Vec<u32>> = seeds.iter().map(|&s| Rng::new(s).permutation(Purpose::Shuffle, epoch, train.len())).collect();
        gpu.set_orders(&mut train_d, &orders).unwrap();
        gpu.reset_stats().unwrap();
        for s in 0..steps {
            let start = s as usize * batch;
            gpu.train_step(&train_d, start, batch.min(train.len() - start), epoch * steps + s).unwrap();
        }
        let gpu_stats = gpu.stats(train.len()).unwrap();
        for r in 0..acts.len() {
            let run = cpu_epoch(acts[r], seeds[r], batch, &train, epoch * steps, epoch, cpu[r].take());
            let what = format!("run {r} ({} seed {}) epoch {epoch}", acts[r], seeds[r]);
            assert_eq!(gpu_stats[r].loss_sum.to_bits(), run.stats.loss_sum.to_bits(), "{what}: loss");
            assert_eq!(gpu_stats[r].correct, run.stats.correct, "{what}: accuracy");
            let (params, adam) = gpu.state(r).unwrap();
            assert_eq!(bits(&params), bits(&run.model.params), "{what}: parameters");
            assert_eq!(bits(&adam.m), bits(&run.adam.m), "{what}: Adam m");
            assert_eq!(bits(&adam.v), bits(&run.adam.v), "{what}: Adam v");
            assert_eq!(adam.t, run.adam.t);
            cpu[r] = Some(run);
        }
    }
    // The runs really differ from each other (seeds and functions).
    assert_ne!(bits(&gpu.state(0).unwrap().0), bits(&gpu.state(1).unwrap().0));

    let gpu_eval = gpu.evaluate(&test_d).unwrap();
    for (r, run) in cpu.iter_mut().enumerate() {
        let want = actlab::train::evaluate(&mut run.as_mut().unwrap().model, &test);
        assert_eq!(gpu_eval[r].loss_sum.to_bits(), want.loss_sum.to_bits(), "run {r}: evaluation loss");
        assert_eq!((gpu_eval[r].correct, gpu_eval[r].samples), (want.correct, want.samples), "run {r}: evaluation accuracy");
    }
}

#[test]
fn runs_trained_together_write_what_each_writes_alone_on_the_cpu() {
    use actlab::train::{self, Reporter, TrainConfig};
    let data = common::synthetic_dataset(10, 6);
    let configs: Vec<TrainConfig> = [(Activation::Relu, 1), (Activation::ZeroFitLinear, 2)]
        .into_iter()
        .map(|(a, s)| TrainConfig { epochs: 3, batch_size: 4, train_limit: None, test_limit: None, ..TrainConfig::article(a, s) })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = (0..configs.len()).map(|i| tmp.path().join(format!("gpu-{i}"))).collect();
    // The GPU resumes what the CPU started: one epoch there, the rest together.
    for (c, d) in configs.iter().zip(&dirs) {
        train::run(c, &data, d, &Reporter::default(), Some(1)).unwrap();
    }
    let together = train::gpu::run_on(&configs, &dirs, &data, "emulated GPU", |p| Emulated::build(p, Gemm::Loop), &Reporter::default()).unwrap();
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
