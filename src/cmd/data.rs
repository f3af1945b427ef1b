//! `actlab data`: import CIFAR-10 into the decoded cache.

use super::Global;
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The source: cifar-10-binary.tar.gz, cifar-10-batches-bin/, or an image folder / .tar.gz.
    /// Default: $ACTLAB_DATA, then data/, then ../shared/datasets/cifar10-jpeg.tar.gz.
    #[arg(long, value_name = "PATH", env = "ACTLAB_DATA")]
    data: Option<PathBuf>,
    /// Re-import even if the cache is up to date.
    #[arg(long)]
    force: bool,
}

pub fn execute(a: Args, g: &Global) -> Result<()> {
    let ds = actlab::data::load(&g.data_dir, a.data.as_deref(), a.force, true)?;
    let m = &ds.manifest;
    println!("dataset:        {}", m.dataset);
    println!("source:         {} ({:?})", m.source, m.source_kind);
    println!("source sha256:  {}", m.source_sha256);
    println!("images:         {} train, {} test", m.train_images, m.test_images);
    println!("tensors sha256: {}", m.tensors_sha256);
    println!("cache:          {}", actlab::data::cache_paths(&g.data_dir).0.display());
    Ok(())
}
