//! One training run: the epoch loop, Keras-style metrics, checkpoints and the
//! run's artifacts (`history.csv`, `diagnostics.csv`, `run.json`).
//!
//! A run directory holds, while the run is in progress, only `run.lock` and
//! `checkpoint.safetensors`; the artifacts appear (atomically, `run.json`
//! last) when it finishes or diverges. Running again resumes from the
//! checkpoint and produces the same bytes as an uninterrupted run.

pub mod checkpoint;
pub mod config;
pub mod diagnostics;
pub mod gpu;
pub mod history;
pub mod lock;
pub mod record;
pub mod state;
pub mod steps;
pub mod trainer;

use crate::data::{Dataset, Split, IMAGE_BYTES};
use crate::engine::device::Selected;
use crate::engine::rng::{Purpose, Rng};
use crate::io::write_atomic;
use crate::nn::optim::Optimizer;
use crate::nn::model::Model;
use rayon::prelude::*;
use trainer::Trainer;
use anyhow::{bail, Context, Result};
use checkpoint::Checkpoint;
pub use config::{Protocol, TrainConfig};
use diagnostics::LayerStats;
use history::Epoch;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
pub use lock::RunLock;
use record::{RunRecord, Status};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The fixed subset used by `--train-limit`/`--test-limit`: the same for every
/// run and seed (a permutation keyed by a constant), so it is class-balanced
/// in expectation even for sources stored class by class.
pub fn subset(split: &Split, limit: Option<usize>) -> Split {
    let Some(n) = limit.filter(|&n| n < split.len()) else { return split.clone() };
    let order = Rng::new(0x5EED_CAFE).permutation(Purpose::Synthetic, 0, split.len());
    let mut out = Split { images: Vec::with_capacity(n * IMAGE_BYTES), labels: Vec::with_capacity(n) };
    for &i in &order[..n] {
        out.images.extend_from_slice(split.image(i as usize));
        out.labels.push(split.labels[i as usize]);
    }
    out
}

/// How a run reports progress.
#[derive(Clone, Default)]
pub struct Reporter {
    /// Bars are drawn here (so a study can put its own bar above).
    pub multi: Option<MultiProgress>,
    /// Print Keras' `verbose=2` line per epoch.
    pub epoch_lines: bool,
}

impl Reporter {
    fn line(&self, s: &str) {
        if !self.epoch_lines {
            return;
        }
        match &self.multi {
            Some(m) if !m.is_hidden() => m.println(s).unwrap_or(()),
            _ => println!("{s}"),
        }
    }
}

/// The outcome of [`run`].
#[derive(Clone, Debug)]
pub struct Outcome {
    pub record: RunRecord,
    pub history: Vec<Epoch>,
}

/// A run being trained: its locked directory, configuration and checkpoint.
/// Shared by the CPU loop below and the GPU's batched loop (`gpu.rs`).
pub struct Slot {
    pub config: TrainConfig,
    pub dir: PathBuf,
    lock: RunLock,
    pub ck: Checkpoint,
    diverged_at: Option<usize>,
}

impl Slot {
    /// Lock `dir` and resume its checkpoint, or start from Glorot weights,
    /// for training on `data`.
    pub fn open(config: &TrainConfig, dir: &Path, data: &Dataset) -> Result<Slot> {
        if let Err(e) = config.validate() {
            bail!("invalid training configuration: {e}");
        }
        let lock = RunLock::acquire(dir)?;
        if dir.join("run.json").exists() {
            bail!("{} was finished by another process meanwhile; nothing to do", dir.display());
        }
        let ck = match Checkpoint::load(dir)? {
            Some(ck) if ck.config == *config => ck,
            Some(ck) => bail!(
                "{} holds a checkpoint of a different configuration ({} seed {}, {} epochs); \
                 remove it or pass --force to start over",
                dir.display(),
                ck.config.activation,
                ck.config.seed,
                ck.config.protocol.epochs
            ),
            None => {
                let mut model = Model::new(config.activation, 1);
                model.init_glorot(&Rng::new(config.seed));
                let n = model.params.len();
                Checkpoint {
                    config: config.clone(),
                    params: model.params,
                    optimizer: Optimizer::new(config.protocol.optimizer, n),
                    history: vec![],
                    diagnostics: vec![],
                    train_seconds: 0.0,
                    dataset: Some(data.manifest.tensors_sha256.clone()),
                    steps: Vec::new(),
                }
            }
        };
        let here = &data.manifest.tensors_sha256;
        if let Some(theirs) = ck.dataset.as_ref().filter(|d| *d != here) {
            bail!(
                "{} holds a checkpoint trained on other data (tensors sha256 {}…, this dataset's is {}…); \
                 a run never mixes datasets: use the data it started on, or remove the checkpoint",
                dir.display(),
                &theirs[..12.min(theirs.len())],
                &here[..12.min(here.len())]
            );
        }
        Ok(Slot { config: config.clone(), dir: dir.to_path_buf(), lock, ck, diverged_at: None })
    }

    /// Whether the run still trains.
    pub fn training(&self) -> bool {
        self.diverged_at.is_none() && self.ck.epochs_done() < self.config.protocol.epochs
    }

    /// Record a finished epoch (`ck.params` and `ck.optimizer` already hold its
    /// end state): its metrics, diagnostics and the checkpoint, unless the
    /// run diverged, which ends it.
    fn end_epoch(&mut self, row: Epoch, diagnostics: Vec<LayerStats>, train_seconds: f64) -> Result<()> {
        let epoch = self.ck.epochs_done() + 1;
        self.ck.train_seconds += train_seconds;
        self.ck.history.push(row);
        self.ck.diagnostics.extend(diagnostics);
        if !(row.loss.is_finite() && row.val_loss.is_finite()) {
            self.diverged_at = Some(epoch);
            return Ok(());
        }
        self.ck.save(&self.dir)
    }

    /// Write the artifacts (atomically, `run.json` last) if the run is over.
    pub fn finish(self, data: &Dataset, device: record::Device, wall_seconds: f64, train_images: usize) -> Result<Outcome> {
        let ck = &self.ck;
        let done = ck.epochs_done() == self.config.protocol.epochs || self.diverged_at.is_some();
        let status = match self.diverged_at {
            Some(e) => Status::Diverged { epoch: e },
            None if done => Status::Finished,
            None => Status::Partial { epochs: ck.epochs_done() },
        };
        let record = RunRecord::new(&self.config, data, ck, status, device, wall_seconds, train_images);
        if done {
            let dir = &self.dir;
            write_atomic(&dir.join("history.csv"), history::to_csv(&ck.history).as_bytes())?;
            write_atomic(&dir.join("diagnostics.csv"), diagnostics::to_csv(&ck.diagnostics).as_bytes())?;
            if !ck.steps.is_empty() {
                write_atomic(&dir.join(steps::FILE), steps::to_csv(&ck.steps).as_bytes())?;
            }
            write_atomic(&dir.join("run.json"), serde_json::to_string_pretty(&record)?.as_bytes())?;
            let _ = std::fs::remove_file(dir.join(checkpoint::FILE));
            self.lock.release_finished();
        }
        Ok(Outcome { record, history: self.ck.history })
    }
}

/// Keras' `verbose=2` line for an epoch.
fn epoch_line(steps: usize, seconds: f64, row: &Epoch, train_seconds: f64) -> String {
    format!(
        "{steps}/{steps} - {seconds:.0}s - loss: {:.4} - accuracy: {:.4} - val_loss: {:.4} - val_accuracy: {:.4} - {:.0}ms/step",
        row.loss,
        row.accuracy,
        row.val_loss,
        row.val_accuracy,
        train_seconds * 1e3 / steps as f64
    )
}

/// A progress bar for `steps` steps, under the reporter's other bars.
fn step_bar(reporter: &Reporter, steps: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    let bar = match &reporter.multi {
        Some(m) => m.add(bar),
        None => bar,
    };
    bar.set_style(ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}").unwrap().progress_chars("=> "));
    bar
}

fn remove_bar(reporter: &Reporter, bar: ProgressBar) {
    bar.finish_and_clear();
    if let Some(m) = &reporter.multi {
        m.remove(&bar);
    }
}

/// Train (or resume) the run described by `config` in `dir` on the CPU.
/// Stop after `stop_after` epochs of this call (tests use this to simulate a crash).
pub fn run(config: &TrainConfig, data: &Dataset, dir: &Path, reporter: &Reporter, stop_after: Option<usize>) -> Result<Outcome> {
    let (act, seed) = (config.activation, config.seed);
    let mut outs = run_on(std::slice::from_ref(config), &[dir.to_path_buf()], data, record::Device::cpu(), reporter, stop_after, |p, train, test| {
        Ok(Box::new(trainer::CpuTrainer::new(&[act], &[seed], p.batch_size, p.optimizer, train, test)) as Box<dyn Trainer>)
    })?;
    Ok(outs.remove(0))
}

/// Train (or resume) the runs `configs[i]` in `dirs[i]` together, on the
/// trainer `make` builds for their protocol and splits; `device` goes into
/// each `run.json`. The runs must share the protocol and their epochs done.
#[allow(clippy::type_complexity)]
pub fn run_on<'s>(
    configs: &[TrainConfig],
    dirs: &[PathBuf],
    data: &'s Dataset,
    device: record::Device,
    reporter: &Reporter,
    stop_after: Option<usize>,
    make: impl for<'a> FnOnce(&Protocol, &'a Split, &'a Split) -> Result<Box<dyn Trainer + 'a>>,
) -> Result<Vec<Outcome>> {
    if configs.is_empty() || configs.len() != dirs.len() {
        bail!("{} configurations for {} run folders", configs.len(), dirs.len());
    }
    let started = Instant::now();
    let mut slots = configs.iter().zip(dirs).map(|(c, d)| Slot::open(c, d, data)).collect::<Result<Vec<_>>>()?;
    let p = configs[0].protocol;
    if let Some(c) = configs.iter().find(|c| c.protocol != p) {
        bail!("{} seed {} cannot train together with {} seed {}: the protocols differ", c.activation, c.seed, configs[0].activation, configs[0].seed);
    }
    let first = slots[0].ck.epochs_done();
    if let Some(s) = slots.iter().find(|s| s.ck.epochs_done() != first) {
        bail!("{} has {} epochs done, {} has {}: runs train together only from the same epoch", s.dir.display(), s.ck.epochs_done(), slots[0].dir.display(), first);
    }
    let train = subset(&data.train, p.train_limit);
    let test = subset(&data.test, p.test_limit);
    let mut trainer = make(&p, &train, &test)?;
    train_together(&mut slots, trainer.as_mut(), &test, train.len(), reporter, stop_after)?;
    drop(trainer);
    let wall = started.elapsed().as_secs_f64();
    slots.into_iter().map(|s| s.finish(data, device.clone(), wall, train.len())).collect()
}

/// The epoch loop, for every device: train the runs in `slots` on `trainer`
/// (which holds them in the slots' order, and their `train_len` training
/// samples) until each has all its epochs or diverges, or for `stop_after`
/// epochs. Each epoch: each run's shuffle, the steps (the first
/// [`steps::LOGGED_STEPS`] logged one by one), the training totals, the test
/// evaluation, and diagnostics probed on the CPU from the epoch's
/// parameters (the engines agree bit for bit, so where a run trained does
/// not change them), then the checkpoint. Before the first epoch, the
/// diagnostics of the initial weights (epoch 0).
pub fn train_together(slots: &mut [Slot], trainer: &mut dyn Trainer, test: &Split, train_len: usize, reporter: &Reporter, stop_after: Option<usize>) -> Result<()> {
    let p = slots[0].config.protocol;
    for (r, s) in slots.iter().enumerate() {
        trainer.load(r, &s.ck.params, &s.ck.optimizer)?;
    }
    let rngs: Vec<Rng> = slots.iter().map(|s| Rng::new(s.config.seed)).collect();
    let mut probes: Vec<Model> = slots.iter().map(|s| Model::new(s.config.activation, p.batch_size)).collect();
    let mut probe = |params: Vec<&[f32]>, epoch: usize| -> Vec<Vec<LayerStats>> {
        probes
            .par_iter_mut()
            .zip(params)
            .map(|(m, params)| {
                m.params.copy_from_slice(params);
                diagnostics::probe(m, test, epoch)
            })
            .collect()
    };
    let first = slots[0].ck.epochs_done();
    if first == 0 {
        let start = probe(slots.iter().map(|s| s.ck.params.as_slice()).collect(), 0);
        for (s, d) in slots.iter_mut().zip(start) {
            if s.ck.diagnostics.is_empty() {
                s.ck.diagnostics = d;
            }
        }
    }
    let steps = train_len.div_ceil(p.batch_size);
    let alone = slots.len() == 1;
    let label = match slots {
        [one] => format!("{} seed {}", one.config.activation, one.config.seed),
        _ => format!("{} runs", slots.len()),
    };
    let bar = step_bar(reporter, steps);
    for epoch in first..p.epochs {
        if stop_after.is_some_and(|s| epoch >= first + s) || !slots.iter().any(Slot::training) {
            break;
        }
        reporter.line(&format!("Epoch {}/{} ({label})", epoch + 1, p.epochs));
        bar.set_prefix(format!("{label} epoch {}/{}", epoch + 1, p.epochs));
        bar.reset();
        let t0 = Instant::now();
        let stats = train_epoch(trainer, &rngs, epoch, train_len, p.batch_size, |trainer, step, global| {
            if global < steps::LOGGED_STEPS {
                for (r, s) in slots.iter_mut().enumerate() {
                    // Only a log that is whole from step 0 (not one resumed from an older checkpoint).
                    if s.training() && s.ck.steps.len() as u64 == global {
                        s.ck.steps.push(trainer.last_step(r, global)?);
                    }
                }
            }
            bar.inc(1);
            if alone && (step % 8 == 0 || step + 1 == steps) {
                let s = trainer.epoch_stats()?[0];
                bar.set_message(format!("loss {:.4} acc {:.4}", s.mean_loss(), s.accuracy()));
            }
            Ok(())
        })?;
        let train_secs = t0.elapsed().as_secs_f64();
        let val = trainer.evaluate()?;
        let states = (0..slots.len()).map(|r| trainer.state(r)).collect::<Result<Vec<_>>>()?;
        let diagnostics = probe(states.iter().map(|(params, _)| params.as_slice()).collect(), epoch + 1);
        for (r, ((slot, (params, optimizer)), diag)) in slots.iter_mut().zip(states).zip(diagnostics).enumerate() {
            if !slot.training() {
                continue;
            }
            let row = Epoch { loss: stats[r].mean_loss(), accuracy: stats[r].accuracy(), val_loss: val[r].mean_loss(), val_accuracy: val[r].accuracy() };
            let line = epoch_line(steps, t0.elapsed().as_secs_f64(), &row, train_secs);
            reporter.line(&if alone { line } else { format!("{} seed {}: {line}", slot.config.activation, slot.config.seed) });
            slot.ck.params = params;
            slot.ck.optimizer = optimizer;
            slot.end_epoch(row, diag, train_secs)?;
        }
    }
    remove_bar(reporter, bar);
    Ok(())
}

/// One epoch of every run on `trainer`: each run's shuffle of its
/// `train_len` samples (keyed by its seed, `rngs`, and the epoch), then the
/// steps over it in batches of `batch`, the global step numbering the steps
/// from the run's start (dropout is keyed by it); `after_step(trainer, step,
/// global)` follows each. Returns the epoch's training totals per run.
pub fn train_epoch(
    trainer: &mut dyn Trainer,
    rngs: &[Rng],
    epoch: usize,
    train_len: usize,
    batch: usize,
    mut after_step: impl FnMut(&mut dyn Trainer, usize, u64) -> Result<()>,
) -> Result<Vec<crate::nn::loss::BatchStats>> {
    let orders: Vec<Vec<u32>> = rngs.iter().map(|rng| rng.permutation(Purpose::Shuffle, epoch as u64, train_len)).collect();
    trainer.begin_epoch(&orders)?;
    let steps = train_len.div_ceil(batch);
    for step in 0..steps {
        let (start, global) = (step * batch, (epoch * steps + step) as u64);
        trainer.step(start, batch.min(train_len - start), global)?;
        after_step(trainer, step, global)?;
    }
    trainer.epoch_stats()
}

/// How many runs train together on one GPU at most (about 0.3 GB each at batch 64).
const MAX_TOGETHER: usize = 24;

/// Train (or resume) every run `configs[i]` in `dirs[i]` on `device`; call
/// `done` as each finishes. On the CPU runs go one after another; on CUDA,
/// runs that share a protocol and their epochs done train together.
pub fn run_all(configs: &[TrainConfig], dirs: &[PathBuf], data: &Dataset, device: &Selected, reporter: &Reporter, done: &mut dyn FnMut(usize, Outcome)) -> Result<()> {
    match device {
        Selected::Cpu => {
            for (i, (c, d)) in configs.iter().zip(dirs).enumerate() {
                let out = run(c, data, d, reporter, None).with_context(|| format!("run {} seed {} in {}", c.activation, c.seed, d.display()))?;
                done(i, out);
            }
        }
        Selected::Cuda { ordinal, .. } => {
            let mut groups: Vec<(_, Vec<usize>)> = Vec::new();
            for (i, (c, d)) in configs.iter().zip(dirs).enumerate() {
                let epochs_done = Checkpoint::load(d)?.map(|ck| ck.epochs_done()).unwrap_or(0);
                let key = (c.protocol, epochs_done);
                match groups.iter_mut().find(|(k, g)| *k == key && g.len() < MAX_TOGETHER) {
                    Some((_, g)) => g.push(i),
                    None => groups.push((key, vec![i])),
                }
            }
            for (_, g) in groups {
                let cs: Vec<TrainConfig> = g.iter().map(|&i| configs[i].clone()).collect();
                let ds: Vec<PathBuf> = g.iter().map(|&i| dirs[i].clone()).collect();
                let gpu = crate::engine::cuda::Gpu::open(*ordinal)?;
                for (i, out) in g.into_iter().zip(gpu::run_together(&cs, &ds, data, gpu, reporter)?) {
                    done(i, out);
                }
            }
        }
    }
    Ok(())
}

/// Remove a run's artifacts and checkpoint (for `--force`).
pub fn clear_run(dir: &Path) -> Result<()> {
    for f in ["run.json", "history.csv", "diagnostics.csv", steps::FILE, checkpoint::FILE] {
        let p = dir.join(f);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    Ok(())
}
