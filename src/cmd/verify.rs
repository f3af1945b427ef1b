//! `actlab verify`: retrain the first epochs of published runs and compare their history bytes.

use super::{DataSource, Global};
use actlab::engine::device;
use actlab::store::Runs;
use actlab::study::Study;
use anyhow::Result;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// Only the runs of this study (a file or a name in studies/); default: every published run.
    study: Option<String>,
    /// Epochs to retrain per run (default 1; at most the run's epochs).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    epochs: u64,
    /// Only this run: FUNCTION/SEED (e.g. relu/2, at every protocol) or a folder (e.g. e50-b64/relu/seed-2).
    #[arg(long, value_name = "RUN")]
    run: Option<String>,
    /// A fixed choice of N runs that covers every study, kind of function and protocol.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    sample: Option<u64>,
    /// The published runs: <DIR>/<protocol>/<function>/seed-<n>/.
    #[arg(long, default_value = "artifacts", value_name = "DIR")]
    artifacts: PathBuf,
    #[command(flatten)]
    source: DataSource,
}

pub fn execute(a: Args, g: &Global) -> Result<()> {
    let study = a.study.map(|s| Study::load(&s)).transpose()?;
    let ds = a.source.load(g, false)?;
    // The runs recorded on the data at hand (the committed ones are on CIFAR-10 (JPEG q75)).
    let artifacts = Runs::at(&a.artifacts).on(&ds.manifest.tensors_sha256);
    let all = actlab::verify::published(&artifacts)?;
    if all.is_empty() {
        anyhow::bail!(
            "{} holds no published runs computed on the data in the cache ({}, tensors {}…); the committed runs are on CIFAR-10 (JPEG q75): import it with `actlab data --data cifar10-jpeg.tar.gz`",
            a.artifacts.display(),
            ds.manifest.dataset,
            &ds.manifest.tensors_sha256[..12]
        );
    }
    let runs = actlab::verify::select(all, study.as_ref(), a.run.as_deref())?;
    let runs = match a.sample {
        Some(n) => actlab::verify::sample(runs, &actlab::study::index::load(Path::new("studies"))?, n as usize),
        None => runs,
    };
    let device = device::select(g.device)?;
    let table = actlab::verify::verify(&runs, &ds, a.epochs as usize, &device)?;
    print!("{}", table.render());
    if table.failed() {
        anyhow::bail!("{} of {} runs differ from their stored history", table.mismatches(), table.rows.len());
    }
    Ok(())
}
