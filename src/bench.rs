//! `actlab bench`: training throughput of the article's network at batch 64,
//! on synthetic images (speed does not depend on the pixels).

use crate::activation::Activation;
use crate::engine::cpu::simd::Isa;
use crate::engine::profile::{self, Total, WHOLE};
use crate::engine::rng::{Purpose, Rng};
use crate::nn::arch::Architecture;
use crate::nn::optim::{Optimizer, OptimizerConfig};
use crate::nn::model::{Model, IMAGE_LEN};
use crate::train::gpu::GpuTrainer;
use crate::train::trainer::{CpuTrainer, Trainer};
use anyhow::Result;
use std::time::Instant;

const BATCH: usize = 64;

/// The floating-point operations of one training step at batch 64 (forward,
/// backward and Adam's GEMM-free update excluded): what % of peak refers to.
fn step_flops() -> f64 {
    let ((), totals) = profile::record(|| {
        measure(Activation::Relu, 1);
    });
    // `measure` takes 3 warm-up steps and 3 rounds of 1.
    totals.iter().map(|t| t.flops).sum::<f64>() / 6.0
}

/// The machine's FMA peak in f32 GFLOP/s: a loop of independent FMAs on
/// registers only, on `threads` threads at once, with the widest vectors the
/// CPU has (what the GEMM kernels use).
fn fma_peak(threads: usize) -> f64 {
    let per_thread = |_: rayon::BroadcastContext<'_>| {
        let t = Instant::now();
        let flops = fma_loop(200_000_000 / 16);
        flops / t.elapsed().as_secs_f64()
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
    // The best of three: a busy neighbour can only lower a measurement.
    let best = (0..3).map(|_| pool.broadcast(per_thread).iter().sum::<f64>()).fold(0.0, f64::max);
    best / 1e9
}

/// Flops done by `iters` rounds of 12 independent vector FMAs.
fn fma_loop(iters: usize) -> f64 {
    // The kernels' own instruction set, so the peak is theirs.
    match Isa::detected() {
        // SAFETY (both): the detected instruction set.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => return unsafe { fma_loop_avx512(iters) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => return unsafe { fma_loop_avx2(iters) },
        _ => {}
    }
    let mut acc = [1.0f32; 12];
    for _ in 0..iters * 4 {
        for a in acc.iter_mut() {
            *a = a.mul_add(1.000_000_1, 1e-7);
        }
    }
    std::hint::black_box(acc);
    (iters * 4 * 12 * 2) as f64
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_loop_avx512(iters: usize) -> f64 {
    use std::arch::x86_64::*;
    let (b, c) = (_mm512_set1_ps(1.000_000_1), _mm512_set1_ps(1e-7));
    let mut a = [_mm512_set1_ps(1.0); 12];
    for _ in 0..iters {
        for v in a.iter_mut() {
            *v = _mm512_fmadd_ps(*v, b, c);
        }
    }
    std::hint::black_box(a);
    (iters * 12 * 32) as f64
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,avx2,fma")]
unsafe fn fma_loop_avx2(iters: usize) -> f64 {
    use std::arch::x86_64::*;
    let (b, c) = (_mm256_set1_ps(1.000_000_1), _mm256_set1_ps(1e-7));
    let mut a = [_mm256_set1_ps(1.0); 12];
    for _ in 0..iters * 2 {
        for v in a.iter_mut() {
            *v = _mm256_fmadd_ps(*v, b, c);
        }
    }
    std::hint::black_box(a);
    (iters * 2 * 12 * 16) as f64
}

/// A batch of synthetic images (speed does not depend on the pixels), `batches` batches long.
fn synthetic(batches: usize) -> crate::data::Split {
    let rng = Rng::new(1);
    let mut px = vec![0f32; batches * BATCH * IMAGE_LEN];
    rng.fill_uniform(Purpose::Synthetic, 0, &mut px);
    crate::data::Split { images: px.iter().map(|v| (v * 255.0) as u8).collect(), labels: (0..batches * BATCH).map(|i| (i % 10) as u8).collect() }
}

/// Images per second, all runs together, of full training steps (forward,
/// backward, Adam) on `trainer` (its runs loaded, over `batches` batches of
/// synthetic data): the best of three rounds of `steps` steps, after three
/// warm-up steps. Reading the epoch's totals waits for a device to finish.
fn measure_on(trainer: &mut dyn Trainer, batches: usize, steps: usize) -> Result<f64> {
    let runs = trainer.runs();
    let order: Vec<u32> = (0..(batches * BATCH) as u32).collect();
    trainer.begin_epoch(&vec![order; runs])?;
    // Global steps past the logged ones (which keep more), as most of a run's are.
    let step = |t: &mut dyn Trainer, s: u64| t.step((s as usize % batches) * BATCH, BATCH, crate::train::steps::LOGGED_STEPS + s);
    for s in 0..3 {
        step(trainer, s)?;
    }
    trainer.epoch_stats()?;
    // The best of three rounds: a busy neighbour can only lower a measurement.
    let mut best = 0.0f64;
    for round in 0..3u64 {
        let t = Instant::now();
        for s in 0..steps as u64 {
            step(trainer, 3 + round * steps as u64 + s)?;
        }
        trainer.epoch_stats()?;
        best = best.max((steps * BATCH * runs) as f64 / t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Glorot weights and fresh Adam moments for every run of `trainer`.
fn init(trainer: &mut dyn Trainer, act: Activation) -> Result<()> {
    let mut m = Model::new(Architecture::Article, act, 1);
    m.init_glorot(&Rng::new(1));
    for r in 0..trainer.runs() {
        trainer.load(r, &m.params, &Optimizer::new(OptimizerConfig::ARTICLE, m.params.len()))?;
    }
    Ok(())
}

/// Images per second of one run's training steps on the CPU.
pub fn measure(act: Activation, steps: usize) -> f64 {
    let data = synthetic(1);
    let mut t = CpuTrainer::new(Architecture::Article, &[act], &[1], BATCH, OptimizerConfig::ARTICLE, &data, &data);
    init(&mut t, act).and_then(|()| measure_on(&mut t, 1, steps)).expect("the CPU trainer does not fail")
}

/// Seconds for one diagnostics probe (see `train::diagnostics`).
fn probe_seconds(act: Activation) -> f64 {
    let rng = Rng::new(1);
    let mut model = Model::new(Architecture::Article, act, BATCH);
    model.init_glorot(&rng);
    let n = crate::train::diagnostics::PROBE_IMAGES;
    let mut px = vec![0f32; n * IMAGE_LEN];
    rng.fill_uniform(Purpose::Synthetic, 1, &mut px);
    let test = crate::data::Split { images: px.iter().map(|v| (v * 255.0) as u8).collect(), labels: (0..n).map(|i| (i % 10) as u8).collect() };
    crate::train::diagnostics::probe(&mut model, &test, 0);
    let t = Instant::now();
    crate::train::diagnostics::probe(&mut model, &test, 1);
    t.elapsed().as_secs_f64()
}

pub fn run(acts: &[Activation], steps: usize) -> Result<()> {
    let threads = rayon::current_num_threads();
    let (peak1, peak, isa) = (fma_peak(1), fma_peak(threads), Isa::detected().name());
    let flops = step_flops();
    println!("machine: {} ({threads} threads), {isa}", crate::train::record::Device::cpu().name);
    println!("FMA peak (registers only): {peak1:.0} GFLOP/s on 1 thread, {peak:.0} GFLOP/s on {threads}");
    if threads > 1 && peak < 0.75 * threads as f64 * peak1 {
        // On a shared machine the host may run the threads on one core (or
        // deschedule one) for a while; the percentages below are then
        // against a peak the step did not have either.
        println!("warning: {threads} threads reached only {:.1}× one thread's peak: the threads were sharing cores while measured; rerun for figures against the machine's peak", peak / peak1);
    }
    // No program that does these products as products (Winograd or FFT
    // convolutions do fewer, and change the sums) takes a step in less: the
    // ceiling any comparison, Keras's images/s say, is read against.
    let fastest_step_s = flops / (peak * 1e9);
    println!("a training step (batch {BATCH}): {:.2} GFLOP in GEMMs; at the peak on {threads} threads they alone take {:.1} ms, a ceiling of {:.0} images/s", flops / 1e9, fastest_step_s * 1e3, BATCH as f64 / fastest_step_s);
    println!();
    println!("training throughput, article CNN, batch {BATCH}, {threads} threads, {steps} steps");
    println!("{:<20} {:>10} {:>10} {:>10} {:>8} {:>22}", "activation", "images/s", "ms/step", "GFLOP/s", "% peak", "diagnostics/epoch");
    for &act in acts {
        let ips = measure(act, steps.max(1));
        let rate = flops * ips / BATCH as f64 / 1e9;
        // The probe runs once per epoch: compare it with a full-data epoch (50,000 images).
        let probe = probe_seconds(act);
        let share = probe / (50_000.0 / ips) * 100.0;
        println!(
            "{:<20} {:>10.0} {:>10.1} {:>10.1} {:>7.1} % {:>13.0} ms {:>5.2} %",
            act.name(),
            ips,
            BATCH as f64 / ips * 1e3,
            rate,
            rate / peak * 100.0,
            probe * 1e3,
            share
        );
    }
    let act = acts.first().copied().unwrap_or(Activation::Relu);
    println!();
    println!("where a step goes ({act}, {threads} threads, % of the FMA peak on {threads} threads):");
    print!("{}", breakdown(act, steps.max(1), peak));
    Ok(())
}

/// Per stage and part of a training step: milliseconds, GFLOP/s and % of `peak`.
fn breakdown(act: Activation, steps: usize, peak: f64) -> String {
    use std::fmt::Write as _;
    measure(act, 1); // warm caches and threads outside the record
    let ((), totals) = profile::record(|| {
        measure(act, steps);
    });
    let rounds = (3 * steps + 3) as f64;
    let total: f64 = totals.iter().filter(|t| t.part == WHOLE).map(|t| t.seconds).sum::<f64>() / rounds;
    let mut s = format!("{:<22} {:<24} {:>8} {:>7} {:>9} {:>7}\n", "stage", "part", "ms/step", "share", "GFLOP/s", "% peak");
    let row = |s: &mut String, stage: &str, t: &Total| {
        let secs = t.seconds / rounds;
        let rate = if t.flops > 0.0 { format!("{:>9.1} {:>6.1}%", t.flops / t.seconds / 1e9, t.flops / t.seconds / 1e9 / peak * 100.0) } else { String::new() };
        let _ = writeln!(s, "{stage:<22} {:<24} {:>8.2} {:>6.1}% {rate}", if t.part == WHOLE { "(all)" } else { t.part }, secs * 1e3, secs / total * 100.0);
    };
    let mut gemm = Total { stage: "", part: "all GEMMs", seconds: 0.0, flops: 0.0, path: String::new() };
    for whole in totals.iter().filter(|t| t.part == WHOLE) {
        let parts: Vec<&Total> = totals.iter().filter(|t| t.stage == whole.stage && t.part != WHOLE).collect();
        row(&mut s, whole.stage, whole);
        for p in parts {
            row(&mut s, "", p);
            if p.flops > 0.0 {
                gemm.seconds += p.seconds;
                gemm.flops += p.flops;
            }
        }
    }
    row(&mut s, "GEMMs", &gemm);
    let outside = Total { stage: "", part: "outside GEMMs", seconds: total * rounds - gemm.seconds, flops: 0.0, path: String::new() };
    row(&mut s, "", &outside);
    let _ = writeln!(s, "{:<22} {:<24} {:>8.2}", "step", "(all stages)", total * 1e3);
    // How each product was computed here, so a figure from another machine
    // (another instruction set, so other blocks) can be read against these.
    let _ = writeln!(s, "\nthe path each GEMM took on this machine:");
    for t in totals.iter().filter(|t| t.flops > 0.0) {
        let _ = writeln!(s, "{:<22} {:<24} {}", t.stage, t.part, t.path);
    }
    if totals.iter().any(|t| t.path.contains("sparse")) {
        let _ = writeln!(s, "(a sparse path computes only the products of dy's non-zero values: its GFLOP/s and % peak count the whole product's operations, and so can pass the peak; times the share of non-zero values, they are the rate of the products it computes)");
    }
    s
}

/// Images per second, all runs together, of `runs` runs of `act` trained
/// together on a GPU.
fn measure_gpu(gpu: crate::engine::cuda::Gpu, act: Activation, runs: usize, steps: usize) -> Result<f64> {
    let batches = 4;
    let data = synthetic(batches);
    let seeds: Vec<u64> = (1..=runs as u64).collect();
    let mut t = GpuTrainer::new(Architecture::Article, &vec![act; runs], &seeds, BATCH, OptimizerConfig::ARTICLE, &data, &data, |p| crate::engine::cuda::CudaDevice::new(gpu, p))?;
    init(&mut t, act)?;
    measure_on(&mut t, batches, steps)
}

/// `actlab bench --device cuda`: each function alone and 12 runs together
/// (a 4-function × 3-seed study's worth).
pub fn run_gpu(acts: &[Activation], steps: usize, ordinal: usize) -> Result<()> {
    let name = crate::engine::cuda::Gpu::open(ordinal)?.name;
    println!("training throughput on cuda:{ordinal} ({name}), article CNN, batch {BATCH}, {steps} steps, float32");
    println!("{:<20} {:>6} {:>16} {:>14} {:>12} {:>20}", "activation", "runs", "images/s (all)", "images/s/run", "ms/step", "50 epochs × 50k (s)");
    for &act in acts {
        for runs in [1, 12] {
            let ips = measure_gpu(crate::engine::cuda::Gpu::open(ordinal)?, act, runs, steps.max(1))?;
            let per_run = ips / runs as f64;
            println!("{:<20} {:>6} {:>16.0} {:>14.0} {:>12.2} {:>20.1}", act.name(), runs, ips, per_run, (BATCH * runs) as f64 / ips * 1e3, 50.0 * 50_000.0 / per_run);
        }
    }
    println!("(the last column counts training steps only; evaluation and diagnostics add to a run)");
    Ok(())
}
