//! What the epoch loop needs from a device, at the level it needs it (as
//! candle's `BackendDevice` is what its model needs): R runs trained in
//! lockstep, each with its own function, seed, data order and dropout
//! stream. The CPU ([`CpuTrainer`], one model per run) and the GPU
//! ([`super::gpu::GpuTrainer`], all runs batched per launch) implement it, so the
//! epoch loop ([`super::train_together`]), `bench` and the GPU checks are
//! written once.

use super::steps::{self, StepStats};
use crate::activation::Activation;
use crate::data::{Split, IMAGE_BYTES};
use crate::engine::rng::Rng;
use crate::nn::arch::Architecture;
use crate::nn::optim::{Optimizer, OptimizerConfig};
use crate::nn::loss::BatchStats;
use crate::nn::model::{Model, TrainingStep};
use anyhow::Result;

pub trait Trainer {
    /// How many runs train together.
    fn runs(&self) -> usize;
    /// Set run `r`'s parameters and optimizer state.
    fn load(&mut self, r: usize, params: &[f32], optimizer: &Optimizer) -> Result<()>;
    /// Run `r`'s parameters and optimizer state.
    fn state(&self, r: usize) -> Result<(Vec<f32>, Optimizer)>;
    /// Start an epoch: each run's order of the training split; the epoch's totals start at zero.
    fn begin_epoch(&mut self, orders: &[Vec<u32>]) -> Result<()>;
    /// One training step of every run on samples `start..start + n` of its
    /// order: forward with dropout keyed by `global_step`, loss, backward,
    /// the optimizer's update; the batch's loss and accuracy add to the epoch's totals.
    fn step(&mut self, start: usize, n: usize, global_step: u64) -> Result<()>;
    /// Each run's training totals since [`begin_epoch`](Trainer::begin_epoch).
    fn epoch_stats(&self) -> Result<Vec<BatchStats>>;
    /// Each run's loss and accuracy on the test split, in inference mode.
    fn evaluate(&mut self) -> Result<Vec<BatchStats>>;
    /// What run `r`'s last step saw: its batch's loss and accuracy, each
    /// activated layer's pre-activations and weight gradient (`steps.csv`).
    /// Only for a logged step ([`steps::logged`]): others need not keep
    /// their pre-activations.
    fn last_step(&self, r: usize, global_step: u64) -> Result<StepStats>;
    /// Every run's gradients on the first `n` training samples in stored
    /// order, without dropout or an update (where the GPU checks look first).
    fn gradients(&mut self, n: usize) -> Result<Vec<Vec<f32>>>;
}

/// R runs on the CPU, one model each, stepped one after another (each step
/// uses every core).
pub struct CpuTrainer<'a> {
    models: Vec<Model>,
    optimizers: Vec<Optimizer>,
    rngs: Vec<Rng>,
    train: &'a Split,
    test: &'a Split,
    orders: Vec<Vec<u32>>,
    totals: Vec<BatchStats>,
    /// Each run's last batch (for [`Trainer::last_step`]).
    last: Vec<(BatchStats, usize)>,
    images: Vec<u8>,
    labels: Vec<u8>,
}

impl<'a> CpuTrainer<'a> {
    /// One run per entry of `acts`/`seeds`, on batches of up to `batch`.
    pub fn new(network: Architecture, acts: &[Activation], seeds: &[u64], batch: usize, optimizer: OptimizerConfig, train: &'a Split, test: &'a Split) -> CpuTrainer<'a> {
        let models: Vec<Model> = acts.iter().map(|&a| Model::new(network, a, batch)).collect();
        let n = models.first().map_or(0, |m| m.params.len());
        CpuTrainer {
            optimizers: acts.iter().map(|_| Optimizer::new(optimizer, n)).collect(),
            rngs: seeds.iter().map(|&s| Rng::new(s)).collect(),
            models,
            train,
            test,
            orders: vec![Vec::new(); acts.len()],
            totals: vec![BatchStats::default(); acts.len()],
            last: vec![(BatchStats::default(), 0); acts.len()],
            images: vec![0; batch * IMAGE_BYTES],
            labels: vec![0; batch],
        }
    }

    /// Copy samples `idx` of `split` into the batch buffers and load them into model `r`.
    fn load_batch(&mut self, r: usize, split: &Split, idx: &[u32]) {
        for (k, &i) in idx.iter().enumerate() {
            self.images[k * IMAGE_BYTES..(k + 1) * IMAGE_BYTES].copy_from_slice(split.image(i as usize));
            self.labels[k] = split.labels[i as usize];
        }
        self.models[r].load_images(&self.images[..idx.len() * IMAGE_BYTES]);
    }
}

/// Inference-mode loss and accuracy of `model` over `split`, in batches of the model's size.
pub fn evaluate(model: &mut Model, split: &Split) -> BatchStats {
    let mut stats = BatchStats::default();
    let b = model.max_batch();
    let mut start = 0;
    while start < split.len() {
        let n = b.min(split.len() - start);
        model.load_images(&split.images[start * IMAGE_BYTES..(start + n) * IMAGE_BYTES]);
        stats.add(model.evaluate(n, &split.labels[start..start + n]));
        start += n;
    }
    stats
}

impl Trainer for CpuTrainer<'_> {
    fn runs(&self) -> usize {
        self.models.len()
    }

    fn load(&mut self, r: usize, params: &[f32], optimizer: &Optimizer) -> Result<()> {
        self.models[r].params.copy_from_slice(params);
        self.optimizers[r].clone_from(optimizer);
        Ok(())
    }

    fn state(&self, r: usize) -> Result<(Vec<f32>, Optimizer)> {
        Ok((self.models[r].params.clone(), self.optimizers[r].clone()))
    }

    fn begin_epoch(&mut self, orders: &[Vec<u32>]) -> Result<()> {
        self.orders = orders.to_vec();
        self.totals.fill(BatchStats::default());
        Ok(())
    }

    fn step(&mut self, start: usize, n: usize, global_step: u64) -> Result<()> {
        for r in 0..self.models.len() {
            let idx = std::mem::take(&mut self.orders[r]);
            self.load_batch(r, self.train, &idx[start..start + n]);
            self.orders[r] = idx;
            let model = &mut self.models[r];
            let step = TrainingStep { rng: &self.rngs[r], step: global_step, logged: steps::logged(global_step) };
            let s = model.loss_and_grads(n, &self.labels[..n], Some(step));
            self.optimizers[r].step(&mut model.params, &model.grads);
            self.totals[r].add(s);
            self.last[r] = (s, n);
        }
        Ok(())
    }

    fn epoch_stats(&self) -> Result<Vec<BatchStats>> {
        Ok(self.totals.clone())
    }

    fn evaluate(&mut self) -> Result<Vec<BatchStats>> {
        let test = self.test;
        Ok(self.models.iter_mut().map(|m| evaluate(m, test)).collect())
    }

    fn last_step(&self, r: usize, global_step: u64) -> Result<StepStats> {
        debug_assert!(steps::logged(global_step), "step {global_step} kept no pre-activations");
        let (batch, n) = self.last[r];
        let m = &self.models[r];
        Ok(StepStats::of(m.plan(), global_step, &batch, &m.pre_activations(n), &m.grads))
    }

    fn gradients(&mut self, n: usize) -> Result<Vec<Vec<f32>>> {
        let idx: Vec<u32> = (0..n as u32).collect();
        (0..self.models.len())
            .map(|r| {
                self.load_batch(r, self.train, &idx);
                let model = &mut self.models[r];
                model.loss_and_grads(n, &self.labels[..n], None);
                Ok(model.grads.clone())
            })
            .collect()
    }
}
