//! `actlab queue run|status`: every study of `studies/index.toml` at its
//! own protocol, computed a little at a time.

use super::{finished_or_fail, DataSource, Global, Places};
use actlab::study::queue::{self, Queue};
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Work through the queue's unfinished runs in order (resumable; run it at low priority:
    /// scripts/queue-background.sh). Exits non-zero if runs remain unfinished.
    Run {
        /// The studies folder (its index.toml lists the studies in order).
        #[arg(long, default_value = "studies", value_name = "DIR")]
        studies: PathBuf,
        #[command(flatten)]
        places: Places,
        #[command(flatten)]
        source: DataSource,
    },
    /// Done / running / left, in queue order, with the training time left at the median pace of finished runs.
    Status {
        /// The studies folder (its index.toml lists the studies in order).
        #[arg(long, default_value = "studies", value_name = "DIR")]
        studies: PathBuf,
        #[command(flatten)]
        places: Places,
    },
}

pub fn execute(c: Command, g: &Global) -> Result<()> {
    match c {
        Command::Run { studies, places, source } => {
            let queue = Queue::load(&studies)?;
            let opts = places.options(false, g.device)?;
            let ds = source.load(g, true)?;
            println!("queue: store {}, publishing into {}", opts.store.root.display(), opts.artifacts.root.display());
            let s = actlab::study::compute(&queue.jobs(), &ds, &opts, "queue")?;
            println!("{}", s.line("queue"));
            finished_or_fail(&s)
        }
        Command::Status { studies, places } => {
            let (store, published) = places.for_cached_data(g)?;
            print!("{}", queue::status(&Queue::load(&studies)?, &store, &published)?);
            Ok(())
        }
    }
}
