//! Runs trained together on a GPU (`nn::gpu`): the [`Trainer`] the epoch
//! loop drives, each run producing exactly the artifacts it would produce
//! alone, or on the CPU; and the checks that it does (`check`).

pub mod check;

use super::steps::StepStats;
use super::trainer::Trainer;
use super::{Ended, Reporter, TrainConfig};
use crate::activation::Activation;
use crate::data::{Dataset, Split};
use crate::engine::cuda::{CudaDevice, Gpu};
use crate::engine::launch::Device;
use crate::nn::arch::Architecture;
use crate::nn::optim::{Optimizer, OptimizerConfig};
use crate::nn::gpu::{DeviceSplit, GpuRuns};
use crate::nn::loss::BatchStats;
use anyhow::Result;
use std::path::PathBuf;

/// R runs on one device, the training and test splits resident on it.
pub struct GpuTrainer<D: Device> {
    runs: GpuRuns<D>,
    train: DeviceSplit<D>,
    test: DeviceSplit<D>,
    /// The size of the last step's batch.
    last_n: usize,
}

impl<D: Device> GpuTrainer<D> {
    /// One run per entry of `acts`/`seeds`; `device` compiles the program it is given.
    #[allow(clippy::too_many_arguments)]
    pub fn new(network: Architecture, acts: &[Activation], seeds: &[u64], batch: usize, optimizer: OptimizerConfig, train: &Split, test: &Split, device: impl FnOnce(&str) -> Result<D>) -> Result<Self> {
        let runs = GpuRuns::new(network, acts, seeds, batch, optimizer, device)?;
        let (train, test) = (runs.upload(train)?, runs.upload(test)?);
        Ok(GpuTrainer { runs, train, test, last_n: 0 })
    }
}

impl<D: Device> Trainer for GpuTrainer<D> {
    fn runs(&self) -> usize {
        self.runs.runs()
    }

    fn load(&mut self, r: usize, params: &[f32], optimizer: &Optimizer) -> Result<()> {
        self.runs.set_state(r, params, optimizer)
    }

    fn state(&self, r: usize) -> Result<(Vec<f32>, Optimizer)> {
        self.runs.state(r)
    }

    fn begin_epoch(&mut self, orders: &[Vec<u32>]) -> Result<()> {
        self.runs.set_orders(&mut self.train, orders)?;
        self.runs.reset_stats()
    }

    fn step(&mut self, start: usize, n: usize, global_step: u64) -> Result<()> {
        self.last_n = n;
        self.runs.train_step(&self.train, start, n, global_step)
    }

    fn epoch_stats(&self) -> Result<Vec<BatchStats>> {
        self.runs.stats(self.train.len)
    }

    fn evaluate(&mut self) -> Result<Vec<BatchStats>> {
        self.runs.evaluate(&self.test)
    }

    fn last_step(&self, r: usize, global_step: u64) -> Result<StepStats> {
        let (batch, pre, grads) = self.runs.last_batch(r, self.last_n)?;
        let pre: Vec<&[f32]> = pre.iter().map(Vec::as_slice).collect();
        Ok(StepStats::of(crate::nn::pass::Ops::plan(&self.runs), global_step, &batch, &pre, &grads))
    }

    fn gradients(&mut self, n: usize) -> Result<Vec<Vec<f32>>> {
        let stored: Vec<u32> = (0..self.train.len as u32).collect();
        self.runs.set_orders(&mut self.train, &vec![stored; self.runs.runs()])?;
        self.runs.loss_and_grads(&self.train, 0, n)?;
        (0..self.runs.runs()).map(|r| self.runs.grads(r)).collect()
    }
}

/// Train (or resume) the runs `configs[i]` in `dirs[i]` together on `gpu`.
/// They must share the protocol and the number of epochs already done
/// (`train::run_all` groups them so).
pub fn run_together(configs: &[TrainConfig], dirs: &[PathBuf], data: &Dataset, gpu: Gpu, reporter: &Reporter, force: bool) -> Result<Vec<Ended>> {
    let name = gpu.name.clone();
    run_on(configs, dirs, data, &name, |program| CudaDevice::new(gpu, program), reporter, force)
}

/// [`run_together`] on any [`Device`] (`name` goes into `run.json`);
/// `device` compiles the program it is given.
pub fn run_on<D: Device + 'static>(configs: &[TrainConfig], dirs: &[PathBuf], data: &Dataset, name: &str, device: impl FnOnce(&str) -> Result<D>, reporter: &Reporter, force: bool) -> Result<Vec<Ended>> {
    super::run_on(configs, dirs, data, super::record::Device::cuda(name, configs.len()), reporter, None, force, |p, runs, train, test| {
        let (acts, seeds): (Vec<Activation>, Vec<u64>) = runs.iter().map(|c| (c.activation, c.seed)).unzip();
        Ok(Box::new(GpuTrainer::new(p.network, &acts, &seeds, p.batch_size, p.optimizer, train, test, device)?) as Box<dyn Trainer>)
    })
}
