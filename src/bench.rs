//! `actlab bench`: training throughput of the article's network at batch 64,
//! on synthetic images (speed does not depend on the pixels).

use crate::activation::Activation;
use crate::engine::rng::{Purpose, Rng};
use crate::nn::adam::{Adam, AdamConfig};
use crate::nn::model::{DropoutKey, Model, IMAGE_LEN};
use anyhow::Result;
use std::time::Instant;

pub const BATCH: usize = 64;

/// Images per second of full training steps (forward, backward, Adam).
pub fn measure(act: Activation, steps: usize) -> f64 {
    let rng = Rng::new(1);
    let mut model = Model::new(act, BATCH);
    model.init_glorot(&rng);
    let mut adam = Adam::new(AdamConfig::default(), model.params.len());
    let mut px = vec![0f32; BATCH * IMAGE_LEN];
    rng.fill_uniform(Purpose::Synthetic, 0, &mut px);
    let images: Vec<u8> = px.iter().map(|v| (v * 255.0) as u8).collect();
    let labels: Vec<u8> = (0..BATCH).map(|i| (i % 10) as u8).collect();
    let mut step = |s: u64| {
        model.load_images(&images);
        model.loss_and_grads(BATCH, &labels, Some(DropoutKey { rng: &rng, step: s }));
        adam.step(&mut model.params, &model.grads);
    };
    for s in 0..3 {
        step(s);
    }
    let t = Instant::now();
    for s in 0..steps as u64 {
        step(3 + s);
    }
    (steps * BATCH) as f64 / t.elapsed().as_secs_f64()
}

/// Seconds for one diagnostics probe (see `train::diagnostics`).
pub fn probe_seconds(act: Activation) -> f64 {
    let rng = Rng::new(1);
    let mut model = Model::new(act, BATCH);
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
    println!("training throughput, article CNN, batch {BATCH}, {} threads, {steps} steps", rayon::current_num_threads());
    println!("{:<20} {:>10} {:>12} {:>22}", "activation", "images/s", "ms/step", "diagnostics/epoch");
    for &act in acts {
        let ips = measure(act, steps.max(1));
        // The probe runs once per epoch: compare it with a full-data epoch (50,000 images).
        let probe = probe_seconds(act);
        let share = probe / (50_000.0 / ips) * 100.0;
        println!("{:<20} {:>10.0} {:>12.1} {:>13.0} ms {:>5.2} %", act.name(), ips, BATCH as f64 / ips * 1e3, probe * 1e3, share);
    }
    Ok(())
}

/// Images per second, all runs together, of `runs` runs of `act` trained
/// together on a GPU (full steps: forward, backward, Adam).
fn measure_gpu(gpu: crate::engine::cuda::Gpu, act: Activation, runs: usize, steps: usize) -> Result<f64> {
    use crate::nn::gpu::GpuRuns;
    let seeds: Vec<u64> = (1..=runs as u64).collect();
    let acts = vec![act; runs];
    let mut g = GpuRuns::new(&acts, &seeds, BATCH, AdamConfig::default(), |p| crate::engine::cuda::CudaDevice::new(gpu, p))?;
    let rng = Rng::new(1);
    let model = {
        let mut m = Model::new(act, 1);
        m.init_glorot(&rng);
        m
    };
    for r in 0..runs {
        g.set_state(r, &model.params, &Adam::new(AdamConfig::default(), model.params.len()))?;
    }
    let batches = 4;
    let mut px = vec![0f32; batches * BATCH * IMAGE_LEN];
    rng.fill_uniform(Purpose::Synthetic, 0, &mut px);
    let split = crate::data::Split { images: px.iter().map(|v| (v * 255.0) as u8).collect(), labels: (0..batches * BATCH).map(|i| (i % 10) as u8).collect() };
    let data = g.upload(&split)?;
    let step = |g: &mut GpuRuns<_>, s: usize| g.train_step(&data, (s % batches) * BATCH, BATCH, s as u64);
    for s in 0..3 {
        step(&mut g, s)?;
    }
    g.stats(0)?; // waits for the warm-up
    let t = Instant::now();
    for s in 0..steps {
        step(&mut g, 3 + s)?;
    }
    g.stats(0)?;
    Ok((steps * BATCH * runs) as f64 / t.elapsed().as_secs_f64())
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
