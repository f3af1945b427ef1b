//! Several runs trained together on one GPU (`nn::gpu`), each producing
//! exactly the artifacts it would produce alone, or on the CPU: the same
//! epoch loop as `train::run`, with R runs per step.
//!
//! Diagnostics are probed on the CPU from each run's parameters after the
//! epoch (the engines agree bit for bit, so the probe's numbers do not
//! depend on where the run trained); the R probes run in parallel.

use super::{diagnostics, epoch_line, remove_bar, step_bar, subset, Outcome, Reporter, Slot, TrainConfig};
use crate::data::Dataset;
use crate::engine::cuda::{CudaDevice, Gpu};
use crate::engine::launch::Device;
use crate::engine::rng::{Purpose, Rng};
use crate::nn::gpu::GpuRuns;
use crate::nn::model::Model;
use anyhow::{bail, Result};
use rayon::prelude::*;
use std::path::PathBuf;
use std::time::Instant;

/// Train (or resume) the runs `configs[i]` in `dirs[i]` together on `gpu`.
/// They must share the protocol and the number of epochs already done
/// (`study::run` groups them so).
pub fn run_together(configs: &[TrainConfig], dirs: &[PathBuf], data: &Dataset, gpu: Gpu, reporter: &Reporter) -> Result<Vec<Outcome>> {
    let name = gpu.name.clone();
    run_on(configs, dirs, data, &name, |program| CudaDevice::new(gpu, program), reporter)
}

/// [`run_together`] on any [`Device`] (`name` goes into `run.json`);
/// `device` compiles the program it is given.
pub fn run_on<D: Device>(configs: &[TrainConfig], dirs: &[PathBuf], data: &Dataset, name: &str, device: impl FnOnce(&str) -> Result<D>, reporter: &Reporter) -> Result<Vec<Outcome>> {
    if configs.is_empty() || configs.len() != dirs.len() {
        bail!("{} configurations for {} run folders", configs.len(), dirs.len());
    }
    let started = Instant::now();
    let mut slots = configs.iter().zip(dirs).map(|(c, d)| Slot::open(c, d, data)).collect::<Result<Vec<_>>>()?;
    let c0 = configs[0].clone();
    if let Some(c) = configs.iter().find(|c| c.protocol != c0.protocol) {
        bail!("{} seed {} cannot train together with {} seed {}: the protocols differ", c.activation, c.seed, c0.activation, c0.seed);
    }
    let first = slots[0].ck.epochs_done();
    if let Some(s) = slots.iter().find(|s| s.ck.epochs_done() != first) {
        bail!("{} has {} epochs done, {} has {}: runs train together only from the same epoch", s.dir.display(), s.ck.epochs_done(), slots[0].dir.display(), first);
    }
    let train = subset(&data.train, c0.protocol.train_limit);
    let test = subset(&data.test, c0.protocol.test_limit);
    let acts: Vec<_> = configs.iter().map(|c| c.activation).collect();
    let seeds: Vec<u64> = configs.iter().map(|c| c.seed).collect();
    let record_device = crate::train::record::Device::cuda(name, configs.len());
    let mut runs = GpuRuns::new(&acts, &seeds, c0.protocol.batch_size, c0.protocol.adam, device)?;
    for (r, s) in slots.iter().enumerate() {
        runs.set_state(r, &s.ck.params, &s.ck.adam)?;
    }
    let mut train_d = runs.upload(&train)?;
    let test_d = runs.upload(&test)?;
    // CPU models for the diagnostics probes.
    let mut probes: Vec<Model> = acts.iter().map(|&a| Model::new(a, c0.protocol.batch_size)).collect();
    let steps = train.len().div_ceil(c0.protocol.batch_size);
    let bar = step_bar(reporter, steps);

    for epoch in first..c0.protocol.epochs {
        if !slots.iter().any(Slot::training) {
            break;
        }
        reporter.line(&format!("Epoch {}/{} ({} runs together)", epoch + 1, c0.protocol.epochs, configs.len()));
        bar.set_prefix(format!("{} runs on {name} epoch {}/{}", configs.len(), epoch + 1, c0.protocol.epochs));
        bar.reset();
        let t0 = Instant::now();
        let orders: Vec<Vec<u32>> = seeds.iter().map(|&s| Rng::new(s).permutation(Purpose::Shuffle, epoch as u64, train.len())).collect();
        runs.set_orders(&mut train_d, &orders)?;
        runs.reset_stats()?;
        for step in 0..steps {
            let start = step * c0.protocol.batch_size;
            runs.train_step(&train_d, start, c0.protocol.batch_size.min(train.len() - start), (epoch * steps + step) as u64)?;
            bar.inc(1);
        }
        let stats = runs.stats(train.len())?;
        let train_secs = t0.elapsed().as_secs_f64();
        let val = runs.evaluate(&test_d)?;
        let states = (0..configs.len()).map(|r| runs.state(r)).collect::<Result<Vec<_>>>()?;
        let diagnostics: Vec<_> = probes
            .par_iter_mut()
            .zip(&states)
            .map(|(model, (params, _))| {
                model.params.clone_from(params);
                diagnostics::probe(model, &test, epoch + 1)
            })
            .collect();
        for (r, ((slot, (params, adam)), diag)) in slots.iter_mut().zip(states).zip(diagnostics).enumerate() {
            if !slot.training() {
                continue;
            }
            let row = super::Epoch { loss: stats[r].mean_loss(), accuracy: stats[r].accuracy(), val_loss: val[r].mean_loss(), val_accuracy: val[r].accuracy() };
            reporter.line(&format!("{} seed {}: {}", slot.config.activation, slot.config.seed, epoch_line(steps, t0.elapsed().as_secs_f64(), &row, train_secs)));
            slot.ck.params = params;
            slot.ck.adam = adam;
            slot.end_epoch(row, diag, train_secs)?;
        }
    }
    remove_bar(reporter, bar);
    let wall = started.elapsed().as_secs_f64();
    slots.into_iter().map(|s| s.finish(data, record_device.clone(), wall, train.len())).collect()
}
