//! The Markdown of each study's chapters, mirroring the article's sections
//! (目的・条件, 結果の予想, 結果, 考察) and then going past them: one file
//! per chapter. Every number comes from [`super::data`], every judgement
//! from [`super::rules`], every word from the catalogue.

mod discussion;
mod leaving_chance;
mod purpose;
mod results;
mod verdicts;

use super::charts::{LineChart, Rgb};
use super::data::StudyData;
use super::messages::{Messages, fill};
use super::text;
use crate::activation::Activation;
use crate::io::write_atomic;
use crate::train::state::RunState;
use crate::train::record::median_epoch_seconds;
use anyhow::Result;
use std::path::Path;

/// Writes every chart and page of one study under `dir`
/// (book/src/generated/<study>[/<protocol>]).
pub struct StudyPages<'a> {
    pub m: &'a Messages,
    pub data: &'a StudyData,
    /// The other studies at the same kind of protocol (own or reduced), for
    /// comparing verdicts across designs.
    pub peers: &'a [StudyData],
    pub dir: &'a Path,
    /// Each function's colour, the same on every chart of the book.
    pub colors: &'a dyn Fn(Activation) -> Rgb,
}

impl<'a> StudyPages<'a> {
    fn svg(&self, name: &str, chart: &LineChart) -> Result<String> {
        write_atomic(&self.dir.join("img").join(name), chart.render()?.as_bytes())?;
        Ok(format!("img/{name}"))
    }

    fn acts(&self) -> Vec<Activation> {
        self.data.study.functions.iter().map(|f| f.activation).collect()
    }

    /// The "reduced protocol" banner, when these runs used one.
    fn protocol_note(&self) -> Option<String> {
        let (m, d) = (self.m, self.data);
        (d.protocol != d.study.protocol).then(|| fill(&m.reduced_protocol, &[("protocol", &text::protocol(m, &d.protocol)), ("full", &text::protocol(m, &d.study.protocol))]))
    }

    /// How many runs are finished at this protocol, and what is left to compute.
    pub fn progress(&self) -> Option<String> {
        let (m, runs) = (self.m, &self.data.runs);
        let left = runs.iter().filter(|r| !matches!(r.state, RunState::Finished(_) | RunState::Diverged(..))).count();
        if left == 0 {
            return None;
        }
        let (left_text, total) = (left.to_string(), runs.len().to_string());
        Some(match median_epoch_seconds(runs.iter().filter_map(|r| r.record())) {
            None => fill(&m.compute_left_unknown, &[("left", &left_text), ("total", &total)]),
            Some(epoch) => {
                let per_run = epoch * self.data.protocol.epochs as f64 / 3600.0;
                let (time, rate) = (text::duration(m, per_run * left as f64), text::duration(m, per_run));
                fill(&m.compute_left, &[("left", &left_text), ("total", &total), ("time", &time), ("rate", &rate)])
            }
        })
    }

    /// The banners every chapter opens with.
    fn banners(&self) -> String {
        let mut p = String::new();
        for n in [self.protocol_note(), self.progress()].into_iter().flatten() {
            p.push_str(&format!("> {n}\n\n"));
        }
        p
    }

    /// Runs that are not finished, for the reproducibility chapter.
    pub fn missing(&self) -> Vec<String> {
        self.data.runs.iter().filter(|r| !matches!(r.state, RunState::Finished(_))).map(|r| format!("{} {}", r.activation, fill(&self.m.seed_state, &[("seed", &r.seed.to_string()), ("state", &text::state(self.m, &r.state))]))).collect()
    }

    /// Whether any run at this protocol can be shown.
    pub fn has_results(&self) -> bool {
        self.data.runs.iter().any(|r| r.usable())
    }
}
