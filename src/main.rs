//! The `actlab` command line.

use actlab::activation::Activation;
use actlab::bench;
use actlab::data;
use actlab::engine::device::{self, DeviceArg, Selected};
use actlab::store::Runs;
use actlab::study::queue::Queue;
use actlab::train::config::Protocol;
use actlab::train::{self, Reporter, TrainConfig};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};

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
        #[arg(long, value_name = "PATH", env = "ACTLAB_DATA")]
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
    /// Compute every study of studies/index.toml at its own protocol, a little at a time.
    #[command(subcommand)]
    Queue(QueueCommand),
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
    /// Retrain the first epochs of published runs and compare with their stored history, byte for byte.
    Verify {
        /// Only the runs of this study (a file or a name in studies/); default: every published run.
        study: Option<String>,
        /// Epochs to retrain per run (default 1; at most the run's epochs).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        epochs: u64,
        /// Only this run: FUNCTION/SEED (e.g. relu/2, at every protocol) or a folder (e.g. e50-b64/relu/seed-2).
        #[arg(long, value_name = "RUN")]
        run: Option<String>,
        /// A fixed choice of N runs that covers every study and every kind of function.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        sample: Option<u64>,
        /// The published runs: <DIR>/<protocol>/<function>/seed-<n>/.
        #[arg(long, default_value = "artifacts", value_name = "DIR")]
        artifacts: PathBuf,
        /// Dataset source (see `actlab data --help`); default: the cache.
        #[arg(long, value_name = "PATH", env = "ACTLAB_DATA")]
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
    /// Train every unfinished (function, seed) of a study in the run store, and publish each
    /// finished run into the artifacts; resumes after a crash. Exits non-zero if runs remain unfinished.
    Run {
        /// A study file, or a name in studies/ (e.g. positive-only).
        study: String,
        /// Run only the i-th of n slices of the grid (e.g. 2/4), for job arrays.
        #[arg(long, value_name = "i/n", default_value = "1/1")]
        shard: actlab::study::Shard,
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
        /// Dataset source (see `actlab data --help`); default: the cache.
        #[arg(long, value_name = "PATH", env = "ACTLAB_DATA")]
        data: Option<PathBuf>,
    },
    /// Show each run of a study: in the store (done, partial (epoch k), running, diverged, missing) and published or not.
    Status {
        study: String,
        #[command(flatten)]
        places: Places,
    },
}

#[derive(Subcommand)]
enum QueueCommand {
    /// Work through the queue's unfinished runs in order (resumable; run it at low priority, e.g. `nice -n 19`).
    /// Exits non-zero if runs remain unfinished.
    Run {
        /// The studies folder (its index.toml lists the studies in order).
        #[arg(long, default_value = "studies", value_name = "DIR")]
        studies: PathBuf,
        #[command(flatten)]
        places: Places,
        /// Dataset source (see `actlab data --help`); default: the cache.
        #[arg(long, value_name = "PATH", env = "ACTLAB_DATA")]
        data: Option<PathBuf>,
    },
    /// Done / running / left, in queue order, with the training time left at the measured rates.
    Status {
        #[arg(long, default_value = "studies", value_name = "DIR")]
        studies: PathBuf,
        #[command(flatten)]
        places: Places,
    },
}

/// Where runs train and where finished runs are published.
#[derive(Args)]
struct Places {
    /// The run store (checkpoints and finished runs; default $ACTLAB_STORE, else ~/.local/share/actlab/store).
    #[arg(long, value_name = "DIR", env = "ACTLAB_STORE")]
    store: Option<PathBuf>,
    /// Where finished runs are published: <DIR>/<protocol>/<function>/seed-<n>/.
    #[arg(long, default_value = "artifacts", value_name = "DIR")]
    artifacts: PathBuf,
}

impl Places {
    fn store(&self) -> Result<Runs> {
        match &self.store {
            Some(d) => Ok(Runs::at(d)),
            None => Runs::default_store(),
        }
    }
    fn options(&self, force: bool, device: DeviceArg) -> Result<actlab::study::RunOptions> {
        Ok(actlab::study::RunOptions { force, device: device::select(device)?, store: self.store()?, artifacts: Runs::at(&self.artifacts) })
    }
}

/// Where the book is made from and built.
#[derive(Args)]
struct BookPaths {
    /// The published runs: <DIR>/<protocol>/<function>/seed-<n>/.
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
    #[arg(long, value_name = "N")]
    train_limit: Option<usize>,
    /// Evaluate on a fixed subset of N test images.
    #[arg(long, value_name = "N")]
    test_limit: Option<usize>,
}

/// A protocol with the flags' changes, checked by `Protocol::check` (the
/// error names the flag).
fn protocol_with(base: Protocol, epochs: Option<usize>, batch_size: Option<usize>, limits: &Limits) -> Result<Protocol> {
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
    #[arg(long, value_name = "N")]
    epochs: Option<usize>,
    /// Batch size (the article: 64).
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    #[command(flatten)]
    limits: Limits,
    /// Output directory (default: the run's folder in the store).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The run store (default $ACTLAB_STORE, else ~/.local/share/actlab/store).
    #[arg(long, value_name = "DIR", env = "ACTLAB_STORE")]
    store: Option<PathBuf>,
    /// Dataset source (see `actlab data --help`); default: the cache.
    #[arg(long, value_name = "PATH", env = "ACTLAB_DATA")]
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
            let config = TrainConfig::new(act, a.seed, protocol_with(Protocol::ARTICLE, a.epochs, a.batch_size, &a.limits)?);
            let out = match a.out {
                Some(o) => o,
                None => a.store.map_or_else(Runs::default_store, |d| Ok(Runs::at(d)))?.dir(&config),
            };
            if out.join("run.json").exists() {
                if !a.force {
                    anyhow::bail!("{} already holds a finished run; pass --force to train it again", out.display());
                }
                train::clear_run(&out)?;
            }
            let device = device::select(cli.device)?;
            let ds = data::load(&cli.data_dir, a.data.as_deref(), false, true)?;
            let reporter = Reporter { multi: Some(indicatif::MultiProgress::new()), epoch_lines: true };
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
        Command::Study(StudyCommand::Run { study, shard, force, epochs, limits, places, data }) => {
            let study = actlab::study::Study::load(&study)?;
            let protocol = protocol_with(study.protocol, epochs, None, &limits)?;
            let opts = places.options(force, cli.device)?;
            let ds = data::load(&cli.data_dir, data.as_deref(), false, true)?;
            let jobs = actlab::study::jobs(&study, &protocol, shard);
            let title = format!("{} {} (shard {}/{})", study.name, protocol.slug(), shard.index, shard.count);
            let s = actlab::study::compute(&jobs, &ds, &opts, &title)?;
            println!("{}", s.line(&study.name));
            finished_or_fail(&s)
        }
        Command::Study(StudyCommand::Status { study, places }) => {
            let study = actlab::study::Study::load(&study)?;
            print!("{}", actlab::study::state::status_table(&study, &places.store()?, &Runs::at(&places.artifacts))?);
            Ok(())
        }
        Command::Queue(QueueCommand::Run { studies, places, data }) => {
            let queue = Queue::load(&studies)?;
            let opts = places.options(false, cli.device)?;
            let ds = data::load(&cli.data_dir, data.as_deref(), false, true)?;
            println!("queue: store {}, publishing into {}", opts.store.root.display(), opts.artifacts.root.display());
            let s = actlab::study::compute(&queue.jobs(), &ds, &opts, "queue")?;
            println!("{}", s.line("queue"));
            finished_or_fail(&s)
        }
        Command::Queue(QueueCommand::Status { studies, places }) => {
            print!("{}", actlab::study::queue::status(&Queue::load(&studies)?, &places.store()?, &Runs::at(&places.artifacts))?);
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
        Command::Verify { study, epochs, run, sample, artifacts, data } => {
            let studies = actlab::study::index::load(Path::new("studies"))?;
            let study = study.map(|s| actlab::study::Study::load(&s)).transpose()?;
            let runs = actlab::verify::select(actlab::verify::published(&Runs::at(&artifacts))?, study.as_ref(), run.as_deref())?;
            let runs = match sample {
                Some(n) => actlab::verify::sample(runs, &studies, n as usize),
                None => runs,
            };
            let ds = data::load(&cli.data_dir, data.as_deref(), false, false)?;
            let table = actlab::verify::verify(&runs, &ds, epochs as usize, &device::select(cli.device)?)?;
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

/// A computation that left runs unfinished (held by other processes) says so and fails.
fn finished_or_fail(s: &actlab::study::Summary) -> Result<()> {
    if !s.busy.is_empty() {
        anyhow::bail!("{} runs are still unfinished (another process holds them); run this again when it is done", s.busy.len());
    }
    Ok(())
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
