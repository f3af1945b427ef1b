//! The `actlab` command line.

use actlab::activation::Activation;
use actlab::bench;
use actlab::data;
use actlab::engine::device::{self, DeviceArg, Selected};
use actlab::nn::adam::AdamConfig;
use actlab::train::{self, Reporter, TrainConfig};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
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
    Data {
        /// The source: cifar-10-binary.tar.gz, cifar-10-batches-bin/, or an image folder / .tar.gz.
        /// Default: $ACTLAB_DATA, then data/, then ../shared/datasets/cifar10-jpeg.tar.gz.
        #[arg(long, value_name = "PATH")]
        data: Option<PathBuf>,
        /// Re-import even if the cache is up to date.
        #[arg(long)]
        force: bool,
    },
    /// Train one run and write history.csv, diagnostics.csv and run.json.
    Train(TrainArgs),
    /// Run or inspect a study (a grid of functions x seeds).
    #[command(subcommand)]
    Study(StudyCommand),
    /// Build the book: summarise artifacts/ (polars), draw charts (SVG), write Markdown, run mdBook.
    Report {
        #[command(flatten)]
        paths: BookPaths,
        /// Build only these editions (default: one per catalogue in <book>/i18n/).
        #[arg(long = "lang", value_name = "LANG")]
        langs: Vec<String>,
    },
    /// Build the book exactly as the publishing workflow does and check every internal link and image.
    PublishCheck {
        #[command(flatten)]
        paths: BookPaths,
    },
    /// Retrain the first epochs of finished runs and compare with their stored history, byte for byte.
    Verify {
        /// A study file or name.
        study: String,
        /// Epochs to retrain per run (default 1; at most the run's epochs).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        epochs: u64,
        /// Only this run, as FUNCTION/SEED (e.g. relu/2).
        #[arg(long, value_name = "FUNCTION/SEED")]
        run: Option<String>,
        #[arg(long, default_value = "artifacts", value_name = "DIR")]
        artifacts: PathBuf,
        /// Dataset source (see `actlab data --help`); default: the cache.
        #[arg(long, value_name = "PATH")]
        data: Option<PathBuf>,
    },
    /// Measure training throughput (images/s) of the article's network at batch 64.
    Bench {
        /// Activations to measure (default: all built-ins).
        #[arg(long = "act", value_name = "NAME", value_parser = Activation::parse_arg)]
        acts: Vec<Activation>,
        /// Timed training steps per round (after 3 warm-up steps; the best of 3 rounds counts).
        #[arg(long, default_value_t = 20)]
        steps: usize,
    },
    /// Show the selected device; on CUDA, compile the GPU program with NVRTC and compare it with
    /// the CPU bit for bit: the generated activation kernels (run twice), the GEMM kernels, and
    /// three runs trained together for two epochs (exit 1 on any difference).
    DeviceCheck,
}

#[derive(Subcommand)]
enum StudyCommand {
    /// Run every unfinished (function, seed) of a study; resumes after a crash.
    Run {
        /// A study file, or a name in studies/ (e.g. positive-only).
        study: String,
        /// Run only the i-th of n slices of the grid (e.g. 2/4), for job arrays.
        #[arg(long, value_name = "i/n", default_value = "1/1")]
        shard: actlab::study::Shard,
        /// Retrain runs that are already finished.
        #[arg(long)]
        force: bool,
        /// Override the study's epochs (a reduced protocol; the book says so).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        epochs: Option<u64>,
        #[command(flatten)]
        limits: Limits,
        /// Where run folders go: <DIR>/<study>/<function>/seed-<n>/.
        #[arg(long, default_value = "artifacts", value_name = "DIR")]
        artifacts: PathBuf,
        /// Dataset source (see `actlab data --help`); default: the cache.
        #[arg(long, value_name = "PATH")]
        data: Option<PathBuf>,
    },
    /// Show each run of a study: done, partial (epoch k), running, diverged or missing.
    Status {
        study: String,
        #[arg(long, default_value = "artifacts", value_name = "DIR")]
        artifacts: PathBuf,
    },
}

/// Where the book is made from and built.
#[derive(Args)]
struct BookPaths {
    /// Run folders: <DIR>/<study>/<function>/seed-<n>/.
    #[arg(long, default_value = "artifacts", value_name = "DIR")]
    artifacts: PathBuf,
    /// Study files.
    #[arg(long, default_value = "studies", value_name = "DIR")]
    studies: PathBuf,
    /// The book folder (book.toml, i18n/, src/<lang>/); HTML lands in <DIR>/book/<lang>/.
    #[arg(long, default_value = "book", value_name = "DIR")]
    book: PathBuf,
}

impl BookPaths {
    fn options(self, langs: Option<Vec<String>>) -> actlab::report::Options {
        actlab::report::Options { studies: self.studies, artifacts: self.artifacts, book: self.book, langs }
    }
}

/// Data subsets for quick or reduced-protocol runs (recorded in run.json).
#[derive(Args)]
struct Limits {
    /// Train on a fixed class-balanced subset of N training images.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    train_limit: Option<u64>,
    /// Evaluate on a fixed subset of N test images.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    test_limit: Option<u64>,
}

impl Limits {
    fn train(&self) -> Option<usize> {
        self.train_limit.map(|n| n as usize)
    }
    fn test(&self) -> Option<usize> {
        self.test_limit.map(|n| n as usize)
    }
}

#[derive(Args)]
struct TrainArgs {
    /// The activation function: a built-in (relu, tanh, signed_sqrt, softplus_linear,
    /// reflection_linear, zero_fit_linear) or a name given to --define.
    #[arg(long = "act", value_name = "NAME")]
    act: String,
    /// Define a function by expression, NAME=EXPR or NAME=EXPR;GRAD (GRAD replaces the
    /// derivative, e.g. `ste=max(x,0);1`). Example: `leaky=where(x<0, 0.1*x, x)`.
    #[arg(long = "define", value_name = "NAME=EXPR")]
    define: Vec<String>,
    /// The run's seed: initial weights, shuffles and dropout masks derive from it.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Epochs (the article: 50).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    epochs: u64,
    /// Batch size (the article: 64).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    batch_size: u64,
    #[command(flatten)]
    limits: Limits,
    /// Output directory (default: runs/<act>/seed-<seed>).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Dataset source (see `actlab data --help`); default: the cache.
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
    /// Retrain even if the output directory holds a finished run.
    #[arg(long)]
    force: bool,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Some(n) = cli.threads {
        rayon::ThreadPoolBuilder::new().num_threads(n.max(1)).build_global().context("cannot start the thread pool")?;
    }
    match cli.command {
        Command::Data { data, force } => {
            let ds = data::load(&cli.data_dir, data.as_deref(), force, true)?;
            let m = &ds.manifest;
            println!("dataset:        {}", m.dataset);
            println!("source:         {} ({:?})", m.source, m.source_kind);
            println!("source sha256:  {}", m.source_sha256);
            println!("images:         {} train, {} test", m.train_images, m.test_images);
            println!("tensors sha256: {}", m.tensors_sha256);
            println!("cache:          {}", data::cache_paths(&cli.data_dir).0.display());
            Ok(())
        }
        Command::Train(a) => {
            for d in &a.define {
                let (name, body) = d.split_once('=').with_context(|| format!("--define `{d}`: write NAME=EXPR or NAME=EXPR;GRAD"))?;
                let (expr, grad) = match body.split_once(';') {
                    Some((e, g)) => (e.to_string(), Some(g.to_string())),
                    None => (body.to_string(), None),
                };
                actlab::activation::define(name.trim(), &actlab::activation::Definition { expr, grad }).map_err(anyhow::Error::msg)?;
            }
            let act = Activation::parse_arg(&a.act).map_err(anyhow::Error::msg)?;
            let config = TrainConfig {
                definition: act.definition(),
                activation: act,
                seed: a.seed,
                epochs: a.epochs as usize,
                batch_size: a.batch_size as usize,
                adam: AdamConfig::default(),
                train_limit: a.limits.train(),
                test_limit: a.limits.test(),
            };
            let out = a.out.unwrap_or_else(|| PathBuf::from(format!("runs/{}/seed-{}", act, a.seed)));
            if out.join("run.json").exists() {
                if !a.force {
                    anyhow::bail!("{} already holds a finished run; pass --force to train it again", out.display());
                }
                train::clear_run(&out)?;
            }
            let ds = data::load(&cli.data_dir, a.data.as_deref(), false, true)?;
            let reporter = Reporter { multi: Some(indicatif::MultiProgress::new()), epoch_lines: true };
            let device = device::select(cli.device)?;
            let mut outcome = None;
            train::run_all(std::slice::from_ref(&config), std::slice::from_ref(&out), &ds, &device, &reporter, &mut |_, o| outcome = Some(o))?;
            let r = &outcome.expect("run_all reports every run").record;
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
        Command::Study(StudyCommand::Run { study, shard, force, epochs, limits, artifacts, data }) => {
            let study = actlab::study::Study::load(&study)?;
            let ds = data::load(&cli.data_dir, data.as_deref(), false, true)?;
            let opts = actlab::study::RunOptions {
                shard,
                force,
                epochs: epochs.map(|e| e as usize),
                train_limit: limits.train(),
                test_limit: limits.test(),
                device: device::select(cli.device)?,
            };
            let s = actlab::study::run(&study, &ds, &artifacts, &opts)?;
            println!(
                "{}: {} trained, {} already done, {} diverged{}",
                study.name,
                s.trained,
                s.already_done,
                s.diverged,
                if s.busy.is_empty() { String::new() } else { format!(", {} busy elsewhere: {}", s.busy.len(), s.busy.join("; ")) }
            );
            Ok(())
        }
        Command::Study(StudyCommand::Status { study, artifacts }) => {
            let study = actlab::study::Study::load(&study)?;
            print!("{}", actlab::study::state::status_table(&study, &artifacts)?);
            Ok(())
        }
        Command::Report { paths, langs } => {
            let t = std::time::Instant::now();
            let b = actlab::report::build(&paths.options((!langs.is_empty()).then_some(langs)))?;
            println!(
                "book built in {:.1} s: {} studies, {}/{} runs with results, editions {}; open {}",
                t.elapsed().as_secs_f64(),
                b.studies,
                b.runs_used,
                b.runs_total,
                b.languages.join(", "),
                b.html.join("index.html").display()
            );
            Ok(())
        }
        Command::PublishCheck { paths } => {
            let b = actlab::report::build(&paths.options(None))?;
            let broken = actlab::report::links::broken_links(&b.html)?;
            for (page, target) in &broken {
                eprintln!("broken link in {}: {target}", page.display());
            }
            if !broken.is_empty() {
                anyhow::bail!("{} broken links in {}", broken.len(), b.html.display());
            }
            println!("{}: editions {} built, every internal link and image resolves", b.html.display(), b.languages.join(", "));
            Ok(())
        }
        Command::Verify { study, epochs, run, artifacts, data } => {
            let study = actlab::study::Study::load(&study)?;
            let ds = data::load(&cli.data_dir, data.as_deref(), false, false)?;
            let table = actlab::verify::verify(&study, &ds, &artifacts, epochs as usize, run.as_deref(), &device::select(cli.device)?)?;
            print!("{}", table.render());
            if table.failed() {
                anyhow::bail!("{} of {} runs differ from their stored history", table.mismatches(), table.rows.len());
            }
            Ok(())
        }
        Command::DeviceCheck => device_check(cli.device),
        Command::Bench { acts, steps } => {
            let acts = if acts.is_empty() { Activation::ALL.to_vec() } else { acts };
            match device::select(cli.device)? {
                Selected::Cpu => bench::run(&acts, steps),
                Selected::Cuda { ordinal, .. } => bench::run_gpu(&acts, steps, ordinal),
            }
        }
    }
}

fn device_check(arg: DeviceArg) -> Result<()> {
    match device::select(arg)? {
        Selected::Cpu => {
            println!("device: cpu ({} threads)", rayon::current_num_threads());
            match device::cuda_devices() {
                Ok(n) => println!("CUDA: {n} GPU(s) present; check them with --device cuda[:N]"),
                Err(why) => println!("CUDA: not available ({why})"),
            }
            Ok(())
        }
        Selected::Cuda { ordinal, .. } => {
            let gpu = actlab::engine::cuda::Gpu::open(ordinal)?;
            println!("device: cuda:{ordinal} {} (compute capability {}.{})", gpu.name, gpu.capability.0, gpu.capability.1);
            let mut acts = Activation::ALL.to_vec();
            // The expression-defined functions of the zero-slope study, when run from the repository.
            if let Ok(study) = actlab::study::Study::load("zero-slope") {
                for a in study.functions.iter().map(|f| f.activation) {
                    if !acts.contains(&a) {
                        acts.push(a);
                    }
                }
            }
            let t = std::time::Instant::now();
            // The activation kernels and the network's, in one program.
            let dev = actlab::engine::cuda::CudaDevice::new(gpu, &actlab::nn::gpu::program(&acts))?;
            let compile_seconds = t.elapsed().as_secs_f64();
            let groups = actlab::activation::kernels::Groups { samples: 64, spatial: 30 * 30, channels: 8 };
            let c = actlab::activation::cuda::check_kernels(&dev, &acts, groups)?;
            println!("generated kernels: {} functions, {} elements each, NVRTC (or the PTX cache) {compile_seconds:.2} s", c.functions.len(), c.elements);
            println!("rerun on the GPU: {}", if c.rerun_identical { "bit-identical" } else { "DIFFERENT" });
            if c.differences.is_empty() {
                println!("GPU vs CPU: bit-identical for {}", c.functions.join(", "));
            } else {
                for d in &c.differences {
                    println!("GPU vs CPU differs: {d}");
                }
            }
            // The network: GEMM kernels, then three runs trained together.
            let gemm = actlab::nn::gpu_check::check_gemm(&dev)?;
            println!("GEMM kernels vs CPU GEMM: {}", if gemm.is_empty() { "bit-identical".to_string() } else { format!("{} cases DIFFER", gemm.len()) });
            let gpu = actlab::engine::cuda::Gpu::open(ordinal)?;
            let training = actlab::nn::gpu_check::check_training(|p| actlab::engine::cuda::CudaDevice::new(gpu, p))?;
            println!("3 runs trained together, 2 epochs, vs 3 CPU runs: {}", if training.is_empty() { "bit-identical".to_string() } else { format!("{} differences", training.len()) });
            for d in gemm.iter().chain(&training) {
                println!("  {d}");
            }
            if !c.differences.is_empty() || !c.rerun_identical || !gemm.is_empty() || !training.is_empty() {
                anyhow::bail!("the GPU does not reproduce the CPU's bits");
            }
            Ok(())
        }
    }
}
