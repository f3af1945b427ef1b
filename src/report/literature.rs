//! Published results the notes set beside ours: `book/literature.toml`.
//!
//! A paper's figures are quoted, not measured, so they are kept apart from
//! the runs: each is written once, as text exactly as the paper prints it
//! (with its unit), for both editions. A note names one with
//! `{{published PAPER FIGURE}}`; a name that is not in the file fails the
//! build, as a run's value would.

use anyhow::{Context, Result, anyhow};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One paper.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paper {
    /// Authors, year and title, as the notes' readers would look it up.
    pub cite: String,
    /// Where the figures were read (the paper's own text or a copy of it).
    pub source: String,
    /// Figure name → the figure as the paper gives it.
    #[serde(default)]
    pub figures: BTreeMap<String, String>,
}

/// The papers, by the key a note names them with.
#[derive(Debug, Default)]
pub struct Literature(BTreeMap<String, Paper>);

impl Literature {
    /// `path`'s papers; a missing file is an empty literature (a book
    /// without notes that cite any).
    pub fn load(path: &Path) -> Result<Literature> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Literature::default()),
            Err(e) => return Err(anyhow::Error::from(e).context(format!("reading {}", path.display()))),
        };
        Self::parse(&text).with_context(|| format!("{}: each paper is a table `[key]` with `cite`, `source` and `[key.figures]`", path.display()))
    }

    pub fn parse(text: &str) -> Result<Literature> {
        Ok(Literature(toml::from_str(text)?))
    }

    /// The figure `figure` of paper `paper`.
    pub fn figure(&self, paper: &str, figure: &str) -> Result<&str> {
        let p = self.0.get(paper).ok_or_else(|| anyhow!("no paper `{paper}` in book/literature.toml (there are {})", self.keys(self.0.keys())))?;
        p.figures.get(figure).map(String::as_str).ok_or_else(|| anyhow!("paper `{paper}` has no figure `{figure}` (it has {})", self.keys(p.figures.keys())))
    }

    fn keys<'a>(&self, keys: impl Iterator<Item = &'a String>) -> String {
        let k: Vec<&str> = keys.map(String::as_str).collect();
        if k.is_empty() { "none".into() } else { k.join(", ") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_found_by_paper_and_name_and_others_are_refused() {
        let lit = Literature::parse("[p2015]\ncite = \"P (2015)\"\nsource = \"its text\"\n[p2015.figures]\ntop1 = \"33.82 %\"\n").unwrap();
        assert_eq!(lit.figure("p2015", "top1").unwrap(), "33.82 %");
        let e = lit.figure("p2015", "top5").unwrap_err().to_string();
        assert!(e.contains("`top5`") && e.contains("top1"), "{e}");
        let e = lit.figure("q2013", "top1").unwrap_err().to_string();
        assert!(e.contains("`q2013`") && e.contains("p2015"), "{e}");
        assert!(Literature::parse("[p]\ncite = \"x\"\nsource = \"y\"\nyear = 1\n").is_err(), "unknown fields are refused");
    }
}
