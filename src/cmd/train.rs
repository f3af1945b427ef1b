//! `actlab train`: one run, written into the store (or `--out`).

use super::{protocol_with, DataSource, Define, Global, Limits, OptimizerArgs, Store};
use actlab::activation::Activation;
use actlab::engine::device;
use actlab::train::{self, Protocol, Reporter, TrainConfig};
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The activation function: a built-in (relu, tanh, signed_sqrt, softplus_linear,
    /// reflection_linear, zero_fit_linear) or a name given to --define.
    #[arg(long = "act", value_name = "NAME")]
    act: String,
    #[command(flatten)]
    define: Define,
    /// The run's seed: initial weights, shuffles and dropout masks derive from it.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Epochs (the article: 50).
    #[arg(long, value_name = "N")]
    epochs: Option<usize>,
    /// Batch size (the article: 64).
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    #[command(flatten)]
    limits: Limits,
    #[command(flatten)]
    optimizer: OptimizerArgs,
    /// Output directory (default: the run's folder in the store).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(flatten)]
    store: Store,
    #[command(flatten)]
    source: DataSource,
    /// Train the run again from the start, even if it is finished (never one another process holds).
    #[arg(long)]
    force: bool,
}

pub fn execute(a: Args, g: &Global) -> Result<()> {
    a.define.apply()?;
    let act = Activation::parse_arg(&a.act).map_err(anyhow::Error::msg)?;
    let device = device::select(g.device)?;
    let base = Protocol { optimizer: a.optimizer.apply(Protocol::ARTICLE.optimizer)?, ..Protocol::ARTICLE };
    let config = TrainConfig::new(act, a.seed, protocol_with(base, a.epochs, a.batch_size, &a.limits)?);
    let ds = a.source.load(g, true)?;
    let out = match a.out {
        Some(o) => o,
        None => a.store.runs()?.on(&ds.manifest.tensors_sha256).dir(&config),
    };
    let reporter = Reporter { multi: Some(indicatif::MultiProgress::new()), epoch_lines: true };
    let mut outcome = None;
    train::run_all(std::slice::from_ref(&config), std::slice::from_ref(&out), &ds, &device, &reporter, a.force, &mut |_, e| outcome = Some(e))?;
    let outcome = outcome.expect("run_all reports every run").trained(&out)?;
    let r = &outcome.record;
    println!(
        "{}: {} epochs, test loss {:.4}, test accuracy {:.4}, {:.0} images/s; artifacts in {}",
        config.activation,
        r.epochs_completed,
        r.final_test_loss.unwrap_or(f64::NAN),
        r.final_test_accuracy.unwrap_or(f64::NAN),
        r.images_per_second,
        out.display()
    );
    Ok(())
}
