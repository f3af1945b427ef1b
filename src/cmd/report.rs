//! `actlab report` and `actlab publish-check`: the book from the published runs.

use anyhow::Result;
use std::path::PathBuf;

/// Where the book is made from and built.
#[derive(clap::Args)]
struct BookPaths {
    /// The published runs: <DIR>/<protocol>/<function>/seed-<n>/.
    #[arg(long, default_value = "artifacts", value_name = "DIR")]
    artifacts: PathBuf,
    /// Study files (and their index.toml).
    #[arg(long, default_value = "studies", value_name = "DIR")]
    studies: PathBuf,
    /// The book folder (book.toml, i18n/, src/<lang>/); HTML lands in <DIR>/book/<lang>/.
    #[arg(long, default_value = "book", value_name = "DIR")]
    book: PathBuf,
    /// The repository's web address, linked from every page with each page's source
    /// (the Makefile passes https://github.com/$GITHUB_REPOSITORY in GitHub Actions).
    #[arg(long, value_name = "URL")]
    repository: Option<String>,
    /// Show the runs computed on another dataset: the sha256 of its tensors (`tensors sha256`
    /// in `actlab data`'s output) or a unique prefix of it, such as the hash of its
    /// `data-<hash>` folder; default: the committed runs' data, CIFAR-10 (JPEG q75).
    #[arg(long, value_name = "SHA256")]
    dataset: Option<String>,
    /// Build even if published runs are damaged (each is named on stderr and marked in the book).
    #[arg(long)]
    allow_damaged: bool,
}

impl BookPaths {
    fn options(self, langs: Option<Vec<String>>) -> actlab::report::Options {
        actlab::report::Options { studies: self.studies, artifacts: self.artifacts, book: self.book, langs, repository: self.repository, dataset: self.dataset, allow_damaged: self.allow_damaged }
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    paths: BookPaths,
    /// Build only these editions (default: one per catalogue in <book>/i18n/).
    #[arg(long = "lang", value_name = "LANG")]
    langs: Vec<String>,
}

pub fn execute(a: Args) -> Result<()> {
    let t = std::time::Instant::now();
    let b = actlab::report::build(&a.paths.options((!a.langs.is_empty()).then_some(a.langs)))?;
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

#[derive(clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    paths: BookPaths,
}

pub fn publish_check(a: CheckArgs) -> Result<()> {
    let b = actlab::report::build(&a.paths.options(None))?;
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
