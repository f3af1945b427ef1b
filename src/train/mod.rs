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

use crate::data::{Dataset, Split, IMAGE_BYTES};
use crate::engine::device::Selected;
use crate::engine::rng::{Purpose, Rng};
use crate::io::write_atomic;
use crate::nn::adam::Adam;
use crate::nn::loss::BatchStats;
use crate::nn::model::{DropoutKey, Model};
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

/// Sum of the losses/accuracies over a split in inference mode.
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

/// A run being trained: its locked directory, configuration and checkpoint.
/// Shared by the CPU loop below and the GPU's batched loop (`gpu.rs`).
pub struct Slot {
    pub config: TrainConfig,
    pub dir: PathBuf,
    lock: RunLock,
    pub ck: Checkpoint,
    pub diverged_at: Option<usize>,
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
                    adam: Adam::new(config.protocol.adam, n),
                    history: vec![],
                    diagnostics: vec![],
                    train_seconds: 0.0,
                    dataset: Some(data.manifest.tensors_sha256.clone()),
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

    /// Record a finished epoch (`ck.params` and `ck.adam` already hold its
    /// end state): its metrics, diagnostics and the checkpoint, unless the
    /// run diverged, which ends it.
    pub fn end_epoch(&mut self, row: Epoch, diagnostics: Vec<LayerStats>, train_seconds: f64) -> Result<()> {
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
    let mut slot = Slot::open(config, dir, data)?;
    let train = subset(&data.train, config.protocol.train_limit);
    let test = subset(&data.test, config.protocol.test_limit);
    let rng = Rng::new(config.seed);
    let mut model = Model::new(config.activation, config.protocol.batch_size);
    model.params.clone_from(&slot.ck.params);
    let steps = train.len().div_ceil(config.protocol.batch_size);
    let started = Instant::now();
    let mut images = vec![0u8; config.protocol.batch_size * IMAGE_BYTES];
    let mut labels = vec![0u8; config.protocol.batch_size];
    let first = slot.ck.epochs_done();
    let bar = step_bar(reporter, steps);

    for epoch in first..config.protocol.epochs {
        if stop_after.is_some_and(|s| epoch >= first + s) {
            break;
        }
        reporter.line(&format!("Epoch {}/{} ({} seed {})", epoch + 1, config.protocol.epochs, config.activation, config.seed));
        bar.set_prefix(format!("{} seed {} epoch {}/{}", config.activation, config.seed, epoch + 1, config.protocol.epochs));
        bar.reset();
        let t0 = Instant::now();
        let order = rng.permutation(Purpose::Shuffle, epoch as u64, train.len());
        let mut stats = BatchStats::default();
        for step in 0..steps {
            let idx = &order[step * config.protocol.batch_size..((step + 1) * config.protocol.batch_size).min(train.len())];
            let n = idx.len();
            for (k, &i) in idx.iter().enumerate() {
                images[k * IMAGE_BYTES..(k + 1) * IMAGE_BYTES].copy_from_slice(train.image(i as usize));
                labels[k] = train.labels[i as usize];
            }
            model.load_images(&images[..n * IMAGE_BYTES]);
            let global_step = (epoch * steps + step) as u64;
            let s = model.loss_and_grads(n, &labels[..n], Some(DropoutKey { rng: &rng, step: global_step }));
            slot.ck.adam.step(&mut model.params, &model.grads);
            stats.add(s);
            bar.inc(1);
            if step % 8 == 0 || step + 1 == steps {
                bar.set_message(format!("loss {:.4} acc {:.4}", stats.mean_loss(), stats.accuracy()));
            }
        }
        let train_secs = t0.elapsed().as_secs_f64();
        let val = evaluate(&mut model, &test);
        let row = Epoch { loss: stats.mean_loss(), accuracy: stats.accuracy(), val_loss: val.mean_loss(), val_accuracy: val.accuracy() };
        let diagnostics = diagnostics::probe(&mut model, &test, epoch + 1);
        reporter.line(&epoch_line(steps, t0.elapsed().as_secs_f64(), &row, train_secs));
        slot.ck.params.clone_from(&model.params);
        slot.end_epoch(row, diagnostics, train_secs)?;
        if slot.diverged_at.is_some() {
            break;
        }
    }
    remove_bar(reporter, bar);
    slot.finish(data, record::Device::cpu(), started.elapsed().as_secs_f64(), train.len())
}

/// How many runs train together on one GPU at most (about 0.3 GB each at batch 64).
pub const MAX_TOGETHER: usize = 24;

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
    for f in ["run.json", "history.csv", "diagnostics.csv", checkpoint::FILE] {
        let p = dir.join(f);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    Ok(())
}
