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
pub mod identity;
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
use identity::RunIdentity;
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
    /// When this process opened the run (its wall time adds to the checkpoint's).
    opened: Instant,
}

/// What opening a run folder found.
pub enum Opened {
    /// Locked by this process, resumed or fresh.
    Slot(Box<Slot>),
    /// Another process holds it (`host pid`); nothing was touched.
    Busy(String),
    /// It holds a finished run (another process finished it meanwhile).
    Finished,
}

impl Slot {
    /// Lock `dir` and resume its checkpoint, or start from Glorot weights,
    /// for training on `data`. Under the lock: temporary files a killed
    /// write left are removed, and with `force` the run's files too (never
    /// while another process holds the run).
    pub fn open(config: &TrainConfig, dir: &Path, data: &Dataset, force: bool) -> Result<Opened> {
        if let Err(e) = config.validate() {
            bail!("invalid training configuration: {e}");
        }
        for (what, limit, have) in [("--train-limit", config.protocol.train_limit, data.train.len()), ("--test-limit", config.protocol.test_limit, data.test.len())] {
            if let Some(n) = limit.filter(|&n| n > have) {
                bail!("{what} {n} is larger than the dataset ({have} images in {}); use at most {have}", data.manifest.dataset);
            }
        }
        let lock = match RunLock::acquire(dir)? {
            lock::Acquired::Held(lock) => lock,
            lock::Acquired::Busy(who) => return Ok(Opened::Busy(who)),
        };
        remove_leftovers(dir)?;
        if force {
            clear_run(dir)?;
        }
        if dir.join("run.json").exists() {
            return Ok(Opened::Finished);
        }
        let want = RunIdentity::new(config, &data.manifest.tensors_sha256);
        let ck = match Checkpoint::load(dir)? {
            Some(ck) => {
                let have = ck.identity();
                if have != want {
                    bail!(
                        "{} holds a checkpoint of another run ({}), not {} ({}); a run is never resumed as another: \
                         use the data and settings it started with, or pass --force to start this one over",
                        dir.display(),
                        have.describe(),
                        want.describe(),
                        have.differences(&want)
                    );
                }
                // A checkpoint is saved only for epochs that did not diverge,
                // so a diverged epoch here was saved under an older rule.
                if let Some(e) = ck.history.iter().position(Epoch::diverged) {
                    bail!(
                        "{} holds a checkpoint of {} epochs, but the run diverged at epoch {} (a loss or val_loss that is not finite or above {}); \
                         an older actlab saved it past that epoch. Delete {} to train the run again from its start",
                        dir.display(),
                        ck.history.len(),
                        e + 1,
                        history::DIVERGED_LOSS,
                        dir.join(checkpoint::FILE).display()
                    );
                }
                ck
            }
            None => {
                let mut model = Model::new(config.protocol.network, config.activation, 1);
                model.init_glorot(&Rng::new(config.seed));
                let n = model.params.len();
                Checkpoint {
                    config: config.clone(),
                    params: model.params,
                    optimizer: Optimizer::new(config.protocol.optimizer, n),
                    history: vec![],
                    diagnostics: vec![],
                    train_seconds: 0.0,
                    wall_seconds: 0.0,
                    dataset: Some(data.manifest.tensors_sha256.clone()),
                    steps: Vec::new(),
                    params_sha256_by_epoch: Vec::new(),
                }
            }
        };
        Ok(Opened::Slot(Box::new(Slot { config: config.clone(), dir: dir.to_path_buf(), lock, ck, diverged_at: None, opened: Instant::now() })))
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
        self.add_wall_time();
        self.ck.history.push(row);
        self.ck.diagnostics.extend(diagnostics);
        // Only a list that is whole from epoch 1 (not one resumed from an older checkpoint).
        if self.ck.params_sha256_by_epoch.len() + 1 == epoch {
            self.ck.params_sha256_by_epoch.push(record::params_sha256(&self.ck.params));
        }
        if row.diverged() {
            self.diverged_at = Some(epoch);
            return Ok(());
        }
        self.ck.save(&self.dir)
    }

    /// Add the wall time since the last call (or the opening) to the checkpoint's.
    fn add_wall_time(&mut self) {
        self.ck.wall_seconds += self.opened.elapsed().as_secs_f64();
        self.opened = Instant::now();
    }

    /// Write the artifacts (atomically, `run.json` last) if the run is over.
    pub fn finish(mut self, data: &Dataset, device: record::Device, train_images: usize) -> Result<Outcome> {
        self.add_wall_time();
        let ck = &self.ck;
        let done = ck.epochs_done() == self.config.protocol.epochs || self.diverged_at.is_some();
        let status = match self.diverged_at {
            Some(e) => Status::Diverged { epoch: e },
            None if done => Status::Finished,
            None => Status::Partial { epochs: ck.epochs_done() },
        };
        let record = RunRecord::new(&self.config, data, ck, status, device, train_images);
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
    let ended = run_on(std::slice::from_ref(config), &[dir.to_path_buf()], data, record::Device::cpu(), reporter, stop_after, false, |p, runs, train, test| {
        let (acts, seeds): (Vec<_>, Vec<_>) = runs.iter().map(|c| (c.activation, c.seed)).unzip();
        Ok(Box::new(trainer::CpuTrainer::new(p.network, &acts, &seeds, p.batch_size, p.optimizer, train, test)) as Box<dyn Trainer>)
    })?;
    ended.into_iter().next().expect("one run, one end").trained(dir)
}

/// How a run asked for ended in this process.
pub enum Ended {
    Trained(Box<Outcome>),
    /// Another process holds it (`host pid`).
    Busy(String),
    /// It was finished when this process got to it.
    AlreadyFinished,
}

impl Ended {
    /// The outcome, or an error saying why this process did not train the run in `dir`.
    pub fn trained(self, dir: &Path) -> Result<Outcome> {
        match self {
            Ended::Trained(o) => Ok(*o),
            Ended::Busy(who) => bail!("{} is being trained by {who}; run this again when it is done", dir.display()),
            Ended::AlreadyFinished => bail!("{} holds a finished run; pass --force to train it again", dir.display()),
        }
    }
}

/// Train (or resume) the runs `configs[i]` in `dirs[i]` together, on the
/// trainer `make` builds for their protocol, the runs this process could
/// open (in order) and the splits; `device` goes into each `run.json`. The
/// runs must share the protocol and their epochs done. A run another
/// process holds, or finished, is left as it is: `Ended` says which.
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
pub fn run_on<'s>(
    configs: &[TrainConfig],
    dirs: &[PathBuf],
    data: &'s Dataset,
    device: record::Device,
    reporter: &Reporter,
    stop_after: Option<usize>,
    force: bool,
    make: impl for<'a> FnOnce(&Protocol, &[TrainConfig], &'a Split, &'a Split) -> Result<Box<dyn Trainer + 'a>>,
) -> Result<Vec<Ended>> {
    if configs.is_empty() || configs.len() != dirs.len() {
        bail!("{} configurations for {} run folders", configs.len(), dirs.len());
    }
    let p = configs[0].protocol;
    if let Some(c) = configs.iter().find(|c| c.protocol != p) {
        bail!("{} seed {} cannot train together with {} seed {}: the protocols differ", c.activation, c.seed, configs[0].activation, configs[0].seed);
    }
    let mut ended: Vec<Option<Ended>> = Vec::new();
    let mut slots = Vec::new();
    for (c, d) in configs.iter().zip(dirs) {
        match Slot::open(c, d, data, force)? {
            Opened::Slot(s) => {
                ended.push(None);
                slots.push(*s);
            }
            Opened::Busy(who) => ended.push(Some(Ended::Busy(who))),
            Opened::Finished => ended.push(Some(Ended::AlreadyFinished)),
        }
    }
    if !slots.is_empty() {
        let first = slots[0].ck.epochs_done();
        if let Some(s) = slots.iter().find(|s| s.ck.epochs_done() != first) {
            bail!("{} has {} epochs done, {} has {}: runs train together only from the same epoch", s.dir.display(), s.ck.epochs_done(), slots[0].dir.display(), first);
        }
        let train = subset(&data.train, p.train_limit);
        let test = subset(&data.test, p.test_limit);
        let opened: Vec<TrainConfig> = slots.iter().map(|s| s.config.clone()).collect();
        let mut trainer = make(&p, &opened, &train, &test)?;
        train_together(&mut slots, trainer.as_mut(), &test, train.len(), reporter, stop_after)?;
        drop(trainer);
        let mut outcomes = slots.into_iter().map(|s| s.finish(data, device.clone(), train.len())).collect::<Result<Vec<_>>>()?.into_iter();
        for e in ended.iter_mut().filter(|e| e.is_none()) {
            *e = Some(Ended::Trained(Box::new(outcomes.next().expect("an outcome per opened run"))));
        }
    }
    Ok(ended.into_iter().map(|e| e.expect("every run ended")).collect())
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
    let mut probes: Vec<Model> = slots.iter().map(|s| Model::new(p.network, s.config.activation, p.batch_size)).collect();
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
            if steps::logged(global) {
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
/// `done` as each ends (trained, held by another process, or found
/// finished). On the CPU runs go one after another; on CUDA, runs that
/// share a protocol and their epochs done train together. `force` starts
/// each run over (one another process holds is left alone).
pub fn run_all(configs: &[TrainConfig], dirs: &[PathBuf], data: &Dataset, device: &Selected, reporter: &Reporter, force: bool, done: &mut dyn FnMut(usize, Ended)) -> Result<()> {
    match device {
        Selected::Cpu => {
            for (i, (c, d)) in configs.iter().zip(dirs).enumerate() {
                let ended = run_on(std::slice::from_ref(c), std::slice::from_ref(d), data, record::Device::cpu(), reporter, None, force, |p, runs, train, test| {
                    let (acts, seeds): (Vec<_>, Vec<_>) = runs.iter().map(|c| (c.activation, c.seed)).unzip();
                    Ok(Box::new(trainer::CpuTrainer::new(p.network, &acts, &seeds, p.batch_size, p.optimizer, train, test)) as Box<dyn Trainer>)
                })
                .with_context(|| format!("run {} seed {} in {}", c.activation, c.seed, d.display()))?;
                for e in ended {
                    done(i, e);
                }
            }
        }
        Selected::Cuda { ordinal, .. } => {
            let mut groups: Vec<(_, Vec<usize>)> = Vec::new();
            for (i, (c, d)) in configs.iter().zip(dirs).enumerate() {
                let epochs_done = if force { 0 } else { Checkpoint::load(d).ok().flatten().map(|ck| ck.epochs_done()).unwrap_or(0) };
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
                for (i, e) in g.into_iter().zip(gpu::run_together(&cs, &ds, data, gpu, reporter, force)?) {
                    done(i, e);
                }
            }
        }
    }
    Ok(())
}

/// Remove the temporary files a write killed midway left in `dir`
/// (`io::write_atomic`'s `.NAME.tmp-PID`); called under the run's lock.
fn remove_leftovers(dir: &Path) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = e?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with('.') && name.contains(".tmp-") {
            std::fs::remove_file(&path).with_context(|| format!("cannot remove the leftover {}", path.display()))?;
        }
    }
    Ok(())
}

/// Remove a run's artifacts and checkpoint (for `--force`; under the run's lock).
fn clear_run(dir: &Path) -> Result<()> {
    for f in ["run.json", "history.csv", "diagnostics.csv", steps::FILE, checkpoint::FILE] {
        let p = dir.join(f);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    Ok(())
}
