//! `actlab study run|status`: one study's grid of (function, seed) runs.

use super::{finished_or_fail, protocol_with, DataSource, Global, Limits, Places};
use actlab::study::{self, Shard, Study};
use anyhow::Result;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Train every unfinished (function, seed) of a study in the run store, and publish each
    /// finished run into the artifacts; resumes after a crash. Exits non-zero if runs remain unfinished.
    Run {
        /// A study file, or a name in studies/ (e.g. positive-only).
        study: String,
        /// Only the i-th of n deterministic slices of the grid (for several machines), e.g. 2/4.
        #[arg(long, default_value = "1/1", value_name = "i/n")]
        shard: Shard,
        /// Retrain runs that are already finished.
        #[arg(long)]
        force: bool,
        /// Override the study's epochs (a reduced protocol: its runs are distinct runs, and the book says so).
        #[arg(long, value_name = "N")]
        epochs: Option<usize>,
        #[command(flatten)]
        limits: Limits,
        #[command(flatten)]
        places: Places,
        #[command(flatten)]
        source: DataSource,
    },
    /// Show each run of a study: in the store (done, partial (epoch k), running, diverged, missing) and published or not.
    Status {
        study: String,
        #[command(flatten)]
        places: Places,
    },
}

pub fn execute(c: Command, g: &Global) -> Result<()> {
    match c {
        Command::Run { study, shard, force, epochs, limits, places, source } => {
            let study = Study::load(&study)?;
            let protocol = protocol_with(study.protocol, epochs, None, &limits)?;
            let opts = places.options(force, g.device)?;
            let ds = source.load(g, true)?;
            let jobs = study::jobs(&study, &protocol, shard);
            let title = format!("{} {} (shard {}/{})", study.name, protocol.slug(), shard.index, shard.count);
            let s = study::compute(&jobs, &ds, &opts, &title)?;
            println!("{}", s.line(&study.name));
            finished_or_fail(&s)
        }
        Command::Status { study, places } => {
            let study = Study::load(&study)?;
            let (store, published) = places.for_cached_data(g)?;
            print!("{}", study::state::status_table(&study, &store, &published)?);
            Ok(())
        }
    }
}
