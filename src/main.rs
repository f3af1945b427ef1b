//! The `actlab` command: parse, then hand over to the subcommand's module in
//! `cmd/` (one file per subcommand).

mod cmd;

use actlab::engine::device::DeviceArg;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "actlab", version, about = "Re-run, explain and extend an experiment on activation functions (CIFAR-10, Keras semantics), reproducibly.")]
struct Cli {
    /// Worker threads (default: all cores). Results are bit-identical for any count.
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    /// Where the decoded dataset cache lives.
    #[arg(long, global = true, default_value = "data", value_name = "DIR")]
    data_dir: PathBuf,
    /// cpu, cuda, cuda:N, or auto (CUDA when a GPU is present). Without a GPU, asking for CUDA is an error.
    #[arg(long, global = true, default_value = "cpu", value_name = "DEVICE")]
    device: DeviceArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Import CIFAR-10 into the decoded cache (official binary archive or an image folder / .tar.gz).
    Data(cmd::data::Args),
    /// Train one run and write history.csv, diagnostics.csv and run.json.
    Train(cmd::train::Args),
    /// Run or inspect a study (a grid of functions x seeds).
    #[command(subcommand)]
    Study(cmd::study::Command),
    /// Compute every study of studies/index.toml at its own protocol, a little at a time.
    #[command(subcommand)]
    Queue(cmd::queue::Command),
    /// Build the book: summarise the published runs, judge the predictions, draw charts (SVG), write Markdown, run mdBook.
    Report(cmd::report::Args),
    /// Build the book exactly as the publishing workflow does and check every internal link and image.
    PublishCheck(cmd::report::CheckArgs),
    /// Retrain the first epochs of published runs and compare with their stored history, byte for byte.
    Verify(cmd::verify::Args),
    /// Measure training throughput (images/s) of the article's network at batch 64.
    Bench(cmd::bench::Args),
    /// Show the selected device; on CUDA, compile the GPU program with NVRTC and compare it with
    /// the CPU bit for bit: the generated activation kernels (run twice), the GEMM kernels, and
    /// three runs trained together for two epochs (exit 1 on any difference).
    DeviceCheck,
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Some(n) = cli.threads {
        rayon::ThreadPoolBuilder::new().num_threads(n.max(1)).build_global().context("cannot start the thread pool")?;
    }
    let g = cmd::Global { data_dir: cli.data_dir, device: cli.device };
    match cli.command {
        Command::Data(a) => cmd::data::execute(a, &g),
        Command::Train(a) => cmd::train::execute(a, &g),
        Command::Study(c) => cmd::study::execute(c, &g),
        Command::Queue(c) => cmd::queue::execute(c, &g),
        Command::Report(a) => cmd::report::execute(a),
        Command::PublishCheck(a) => cmd::report::publish_check(a),
        Command::Verify(a) => cmd::verify::execute(a, &g),
        Command::Bench(a) => cmd::bench::execute(a, &g),
        Command::DeviceCheck => cmd::device_check::execute(&g),
    }
}
