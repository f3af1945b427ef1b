//! `actlab bench`: training throughput against the machine's FMA peak.

use super::Global;
use actlab::activation::Activation;
use actlab::engine::device::{self, Selected};
use anyhow::Result;
use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    /// Activations to measure: a built-in, a name given to --define or, run from a checkout,
    /// any function a study in studies/ defines, e.g. gelu (default: all built-ins). The first
    /// is broken down by stage.
    #[arg(long = "act", value_name = "NAME")]
    acts: Vec<String>,
    #[command(flatten)]
    define: super::Define,
    /// Timed training steps per round (after 3 warm-up steps; the best of 3 rounds counts).
    #[arg(long, default_value_t = 20)]
    steps: usize,
}

pub fn execute(a: Args, g: &Global) -> Result<()> {
    // Loading the studies defines their functions for this process.
    actlab::study::index::functions(Path::new("studies"));
    a.define.apply()?;
    let acts = if a.acts.is_empty() { Activation::ALL.to_vec() } else { a.acts.iter().map(|n| Activation::parse_arg(n).map_err(anyhow::Error::msg)).collect::<Result<_>>()? };
    match device::select(g.device)? {
        Selected::Cpu => actlab::bench::run(&acts, a.steps),
        Selected::Cuda { ordinal, .. } => actlab::bench::run_gpu(&acts, a.steps, ordinal),
    }
}
