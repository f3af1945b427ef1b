//! The command line: one file per subcommand, each with its arguments
//! (`Args`) and what it does (`execute`), as mdBook's `src/cmd/` does.
//! `main.rs` only parses and dispatches; what the commands share lives here.

pub mod bench;
pub mod data;
pub mod device_check;
pub mod queue;
pub mod report;
pub mod study;
pub mod train;
pub mod verify;

use actlab::engine::device::{self, DeviceArg};
use actlab::store::Runs;
use actlab::study::RunOptions;
use actlab::nn::optim::{AdamConfig, OptimizerConfig, SgdConfig};
use actlab::train::config::Protocol;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// The flags every command accepts.
pub struct Global {
    pub data_dir: PathBuf,
    pub device: DeviceArg,
}

/// Where the dataset comes from.
#[derive(Args)]
pub struct DataSource {
    /// Dataset source (see `actlab data --help`); default: the cache.
    #[arg(long, value_name = "PATH", env = "ACTLAB_DATA")]
    pub data: Option<PathBuf>,
}

impl DataSource {
    pub fn load(&self, g: &Global, progress: bool) -> Result<actlab::data::Dataset> {
        actlab::data::load(&g.data_dir, self.data.as_deref(), false, progress)
    }
}

/// The run store, where runs train and checkpoints survive.
#[derive(Args)]
pub struct Store {
    /// The run store (checkpoints and finished runs; default $XDG_DATA_HOME/actlab/store, else ~/.local/share/actlab/store).
    #[arg(long = "store", value_name = "DIR", env = "ACTLAB_STORE")]
    pub dir: Option<PathBuf>,
}

impl Store {
    pub fn runs(&self) -> Result<Runs> {
        match &self.dir {
            Some(d) => Ok(Runs::at(d)),
            None => Runs::default_store(),
        }
    }
}

/// Where runs train and where finished runs are published.
#[derive(Args)]
pub struct Places {
    #[command(flatten)]
    pub store: Store,
    /// Where finished runs are published: <DIR>/<protocol>/<function>/seed-<n>/.
    #[arg(long, default_value = "artifacts", value_name = "DIR")]
    pub artifacts: PathBuf,
}

impl Places {
    pub fn published(&self) -> Runs {
        Runs::at(&self.artifacts)
    }
    /// The store and the artifacts for the dataset in the cache of `g` (the
    /// committed runs' data when there is no cache yet), for status tables.
    pub fn for_cached_data(&self, g: &Global) -> Result<(Runs, Runs)> {
        let (store, published) = (self.store.runs()?, self.published());
        Ok(match actlab::data::read_manifest(&g.data_dir)? {
            Some(m) => (store.on(&m.tensors_sha256), published.on(&m.tensors_sha256)),
            None => (store, published),
        })
    }
    pub fn options(&self, force: bool, device: DeviceArg) -> Result<RunOptions> {
        Ok(RunOptions { force, device: device::select(device)?, store: self.store.runs()?, artifacts: self.published() })
    }
}

/// Data subsets for quick or reduced-protocol runs (recorded in run.json).
#[derive(Args)]
pub struct Limits {
    /// Train on a fixed class-balanced subset of N training images.
    #[arg(long, value_name = "N")]
    pub train_limit: Option<usize>,
    /// Evaluate on a fixed subset of N test images.
    #[arg(long, value_name = "N")]
    pub test_limit: Option<usize>,
}

/// The optimizer of a single run (studies name theirs in their file).
#[derive(Args)]
pub struct OptimizerArgs {
    /// adam (the article's, Keras' defaults) or sgd (Keras' SGD: v = momentum·v − lr·g; w += v).
    #[arg(long, value_name = "NAME", value_parser = ["adam", "sgd"])]
    pub optimizer: Option<String>,
    /// The learning rate (default: Keras' for the optimizer, 0.001 for Adam, 0.01 for SGD).
    #[arg(long, value_name = "LR")]
    pub learning_rate: Option<f32>,
    /// SGD's momentum (default 0, Keras').
    #[arg(long, value_name = "M")]
    pub momentum: Option<f32>,
}

impl OptimizerArgs {
    /// `base` with these flags' changes.
    pub fn apply(&self, base: OptimizerConfig) -> Result<OptimizerConfig> {
        let sgd = match self.optimizer.as_deref() {
            Some(name) => name == "sgd",
            None => matches!(base, OptimizerConfig::Sgd(_)),
        };
        if sgd {
            let b = if let OptimizerConfig::Sgd(s) = base { s } else { SgdConfig::KERAS };
            return Ok(OptimizerConfig::Sgd(SgdConfig { learning_rate: self.learning_rate.unwrap_or(b.learning_rate), momentum: self.momentum.unwrap_or(b.momentum) }));
        }
        if self.momentum.is_some() {
            anyhow::bail!("--momentum is a setting of SGD only; add --optimizer sgd");
        }
        let a = if let OptimizerConfig::Adam(a) = base { a } else { AdamConfig::KERAS };
        Ok(OptimizerConfig::Adam(AdamConfig { learning_rate: self.learning_rate.unwrap_or(a.learning_rate), ..a }))
    }
}

/// `--define NAME=EXPR`: functions by expression, for this process.
#[derive(Args)]
pub struct Define {
    /// Define a function by expression, NAME=EXPR or NAME=EXPR;GRAD (GRAD replaces the
    /// derivative, e.g. `ste=max(x,0);1`). Example: `leaky=where(x<0, 0.1*x, x)`.
    #[arg(long = "define", value_name = "NAME=EXPR")]
    define: Vec<String>,
}

impl Define {
    pub fn apply(&self) -> Result<()> {
        for d in &self.define {
            let (name, body) = d.split_once('=').ok_or_else(|| anyhow::anyhow!("--define `{d}`: write NAME=EXPR or NAME=EXPR;GRAD"))?;
            let (expr, grad) = match body.split_once(';') {
                Some((e, g)) => (e.to_string(), Some(g.to_string())),
                None => (body.to_string(), None),
            };
            actlab::activation::define(name.trim(), &actlab::activation::Definition { expr, grad }).map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }
}

/// `base` with the flags' changes, checked by `Protocol::check` (the error
/// names the flag).
pub fn protocol_with(base: Protocol, epochs: Option<usize>, batch_size: Option<usize>, limits: &Limits) -> Result<Protocol> {
    let p = Protocol {
        epochs: epochs.unwrap_or(base.epochs),
        batch_size: batch_size.unwrap_or(base.batch_size),
        train_limit: limits.train_limit.or(base.train_limit),
        test_limit: limits.test_limit.or(base.test_limit),
        ..base
    };
    p.check().map_err(|(field, why)| anyhow::anyhow!("--{}: {why}", field.replace('_', "-")))?;
    Ok(p)
}

/// A computation that left anything undone (each said on stderr) fails.
pub fn finished_or_fail(s: &actlab::study::Summary) -> Result<()> {
    if !s.undone.is_empty() {
        anyhow::bail!("{} runs are not done (see the lines above)", s.undone.len());
    }
    Ok(())
}
