//! Checks of the GPU engine against the CPU engine, bit for bit, on any
//! [`Device`]: `actlab device-check` runs them on a GPU, the tests on the
//! host emulator. Each returns the differences found, one line each, naming
//! the first element that differs (empty: bit-identical).

use super::GpuTrainer;
use crate::activation::Activation;
use crate::data::{Split, IMAGE_BYTES};
use crate::nn::arch::Architecture;
use crate::nn::optim::{Optimizer, OptimizerConfig};
use crate::nn::loss::BatchStats;
use crate::nn::model::Model;
use crate::train::train_epoch;
use crate::train::trainer::{CpuTrainer, Trainer};
use crate::engine::cpu::gemm::{gemm, MatRef};
use crate::engine::launch::{Arg, Device, DeviceVec};
use crate::engine::rng::{Purpose, Rng};
use anyhow::Result;

/// The first differing element of two f32 arrays, in words.
fn first_difference(what: &str, cpu: &[f32], other: &[f32]) -> Option<String> {
    let i = cpu.iter().zip(other).position(|(c, o)| c.to_bits() != o.to_bits())?;
    Some(format!("{what}: element {i} of {}: CPU {:e}, device {:e}", cpu.len(), cpu[i], other[i]))
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut v = vec![0.0; n];
    Rng::new(seed).fill_uniform(Purpose::Synthetic, 0, &mut v);
    // Signed values, with exact zeros of both signs now and then.
    v.iter().enumerate().map(|(i, x)| if i % 17 == 3 { -0.0 } else if i % 19 == 5 { 0.0 } else { 2.0 * x - 1.0 }).collect()
}

/// A `rows×cols` matrix over row-major storage of it (or of its transpose):
/// the view and its (row, column) strides.
fn view(d: &[f32], rows: usize, cols: usize, transposed: bool) -> (MatRef<'_>, usize, usize) {
    if transposed { (MatRef::transposed(d, rows), 1, rows) } else { (MatRef::rows(d, cols), cols, 1) }
}

/// Both GEMM kernels against `engine::cpu::gemm`, for 2 runs, on shapes with
/// partial tiles, several k tiles, k = 0, transposed views, accumulation
/// and sums of −0 (no FMA may run past the real k).
pub fn check_gemm<D: Device>(dev: &D) -> Result<Vec<String>> {
    let runs = 2;
    let mut differences = Vec::new();
    for (m, n, k) in [(70, 37, 41), (5, 3, 2), (17, 80, 16), (20, 9, 150), (3, 4, 0)] {
        for (a_t, b_t, accumulate) in [(false, false, true), (true, false, false), (false, true, false), (true, true, true)] {
            let (mut a, mut b) = (values(runs * m * k, 1), values(runs * k * n, 2));
            let mut c0: Vec<f32> = values(runs * m * n, 3).iter().map(|v| if accumulate { -v } else { f32::NAN }).collect();
            if m == 5 {
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
            if k == 0 && !accumulate {
                want.fill(0.0);
            }
            let (_, a_rs, a_cs) = view(&a, m, k, a_t);
            let (_, b_rs, b_cs) = view(&b, k, n, b_t);
            // The weight-gradient layout (Aᵀ·B) also sums B's columns, as `bias_grad`.
            let ones = a_t && !b_t;
            let mut want_ones = vec![0f32; runs * n];
            for (r, sums) in want_ones.chunks_mut(n).enumerate() {
                for kk in 0..k {
                    for (j, s) in sums.iter_mut().enumerate() {
                        *s += b[r * k * n + kk * b_rs + j * b_cs];
                    }
                }
            }
            let (ad, bd) = (DeviceVec::from_slice(dev, &a)?, DeviceVec::from_slice(dev, &b)?);
            for (kernel, tile) in [("gemm_64", 64), ("gemm_16", 16)] {
                let cd = DeviceVec::from_slice(dev, &c0)?;
                // The sums go where they would in the parameter vector: a run stride of C's.
                let od = DeviceVec::<D, f32>::zeros(dev, runs * m * n + n)?;
                let l = |v: usize| Arg::I64(v as i64);
                let args = [Arg::I32(m as i32), Arg::I32(n as i32), Arg::I32(k as i32), ad.arg(), l(a_rs), l(a_cs), l(m * k), bd.arg(), l(b_rs), l(b_cs), l(k * n), cd.arg(), l(n), l(m * n), Arg::I32(accumulate as i32), if ones { od.arg() } else { Arg::Null }];
                let rows = m + ones as usize;
                dev.launch(kernel, [n.div_ceil(tile).max(1) as u32, rows.div_ceil(tile).max(1) as u32, runs as u32], 256, &args)?;
                let what = format!("{kernel} m={m} n={n} k={k} A{} B{} {}", if a_t { "ᵀ" } else { "" }, if b_t { "ᵀ" } else { "" }, if accumulate { "C+=" } else { "C=" });
                differences.extend(first_difference(&what, &want, &cd.read(dev, 0, runs * m * n)?));
                if ones {
                    let got: Vec<f32> = (0..runs).map(|r| od.read(dev, r * m * n, n)).collect::<Result<Vec<_>>>()?.concat();
                    differences.extend(first_difference(&format!("{what} column sums"), &want_ones, &got));
                }
            }
        }
    }
    Ok(differences)
}

/// A split of `n` random images and labels.
fn split(n: usize, seed: u64) -> Split {
    let rng = Rng::new(seed);
    let mut px = vec![0f32; n * IMAGE_BYTES];
    rng.fill_uniform(Purpose::Synthetic, 7, &mut px);
    Split { images: px.iter().map(|v| (v * 256.0) as u8).collect(), labels: (0..n).map(|i| rng.below(Purpose::Synthetic, 8, i as u64, 10) as u8).collect() }
}

/// Per-tensor differences of two flat parameter-shaped vectors of `network`.
fn tensor_differences(network: Architecture, what: &str, cpu: &[f32], other: &[f32]) -> Vec<String> {
    let plan = network.plan();
    plan.params.iter().zip(&plan.ranges).filter_map(|(p, r)| first_difference(&format!("{what} {}", p.name()), &cpu[r.clone()], &other[r.clone()])).collect()
}

fn stats_difference(what: &str, cpu: &BatchStats, other: &BatchStats) -> Option<String> {
    (cpu.loss_sum.to_bits() != other.loss_sum.to_bits() || cpu.correct != other.correct)
        .then(|| format!("{what}: CPU loss sum {:e}, {} correct; device {:e}, {} correct", cpu.loss_sum, cpu.correct, other.loss_sum, other.correct))
}

/// Three runs trained together for two epochs on random images (two relu
/// seeds side by side, then zero_fit_linear; a short last batch), against
/// the same runs on the CPU, both driven by the one epoch loop
/// ([`train_epoch`]): the first step's gradients per tensor, then each
/// epoch's loss, accuracy, parameters and optimizer state, and evaluation.
/// `device` compiles the program it is given.
pub fn check_training<D: Device>(network: Architecture, optimizer: OptimizerConfig, device: impl FnOnce(&str) -> Result<D>) -> Result<Vec<String>> {
    let acts = [Activation::Relu, Activation::Relu, Activation::ZeroFitLinear];
    let seeds = [1u64, 2, 3];
    let batch = 4;
    let (train, test) = (split(10, 11), split(6, 12));
    let mut cpu = CpuTrainer::new(network, &acts, &seeds, batch, optimizer, &train, &test);
    let mut gpu = GpuTrainer::new(network, &acts, &seeds, batch, optimizer, &train, &test, device)?;
    for (r, (&act, &seed)) in acts.iter().zip(&seeds).enumerate() {
        let mut model = Model::new(network, act, 1);
        model.init_glorot(&Rng::new(seed));
        let fresh = Optimizer::new(optimizer, model.params.len());
        cpu.load(r, &model.params, &fresh)?;
        gpu.load(r, &model.params, &fresh)?;
    }
    let mut differences = Vec::new();

    // The first batch's gradients without dropout: where a difference starts.
    for (r, (c, g)) in cpu.gradients(batch)?.iter().zip(gpu.gradients(batch)?).enumerate() {
        differences.extend(tensor_differences(network, &format!("run {r} first gradients"), c, &g));
    }
    let rngs: Vec<Rng> = seeds.iter().map(|&s| Rng::new(s)).collect();
    for epoch in 0..2 {
        let on = |t: &mut dyn Trainer| train_epoch(t, &rngs, epoch, train.len(), batch, |_, _, _| Ok(()));
        let (want, got) = (on(&mut cpu)?, on(&mut gpu)?);
        for r in 0..acts.len() {
            let what = format!("run {r} ({} seed {}) epoch {}", acts[r], seeds[r], epoch + 1);
            differences.extend(stats_difference(&format!("{what} training"), &want[r], &got[r]));
            let ((cp, ca), (gp, ga)) = (cpu.state(r)?, gpu.state(r)?);
            differences.extend(tensor_differences(network, &format!("{what} parameters"), &cp, &gp));
            for ((name, c), g) in optimizer.state_names().iter().zip(&ca.state).zip(&ga.state) {
                differences.extend(tensor_differences(network, &format!("{what} {name}"), c, g));
            }
        }
    }
    for (r, (c, g)) in cpu.evaluate()?.iter().zip(gpu.evaluate()?).enumerate() {
        differences.extend(stats_difference(&format!("run {r} evaluation"), c, &g));
    }
    // Guard against a vacuous pass: the runs must differ from one another.
    if gpu.state(0)?.0 == gpu.state(1)?.0 {
        differences.push("runs 0 and 1 (seeds 1 and 2) ended with the same parameters: the runs are not independent".into());
    }
    Ok(differences)
}
