//! `actlab bench`: training throughput against the machine's FMA peak.

use super::Global;
use actlab::activation::Activation;
use actlab::engine::device::{self, Selected};
use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Activations to measure (default: all built-ins).
    #[arg(long = "act", value_name = "NAME", value_parser = Activation::parse_arg)]
    acts: Vec<Activation>,
    /// Timed training steps per round (after 3 warm-up steps; the best of 3 rounds counts).
    #[arg(long, default_value_t = 20)]
    steps: usize,
}

pub fn execute(a: Args, g: &Global) -> Result<()> {
    let acts = if a.acts.is_empty() { Activation::ALL.to_vec() } else { a.acts };
    match device::select(g.device)? {
        Selected::Cpu => actlab::bench::run(&acts, a.steps),
        Selected::Cuda { ordinal, .. } => actlab::bench::run_gpu(&acts, a.steps, ordinal),
    }
}
