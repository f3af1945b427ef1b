//! A checkpoint holds everything that determines the rest of a run:
//! parameters, the optimizer's state and step, the epochs done and their metrics.
//! Random draws are functions of (seed, purpose, counter), so no generator
//! state is needed: resuming equals never having stopped.
//!
//! The file carries the sha256 of its own contents (metadata `sha256`): a
//! checkpoint damaged on disk is refused, never resumed into a false result.

use super::config::TrainConfig;
use super::diagnostics::LayerStats;
use super::history::Epoch;
use super::steps::StepStats;
use crate::io::safetensors::{SafeTensors, Tensor};
use crate::io::{sha256_hex, write_atomic};
use super::identity::RunIdentity;
use crate::nn::optim::Optimizer;
use anyhow::{bail, Context, Result};
use std::path::Path;

pub const FILE: &str = "checkpoint.safetensors";

#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub config: TrainConfig,
    pub params: Vec<f32>,
    pub optimizer: Optimizer,
    pub history: Vec<Epoch>,
    pub diagnostics: Vec<LayerStats>,
    /// Training seconds spent so far (for images/s across resumes).
    pub train_seconds: f64,
    /// Wall-clock seconds the run has been open so far, over all resumes.
    pub wall_seconds: f64,
    /// sha256 of the dataset's tensors it trains on (None in checkpoints
    /// written before it was recorded).
    pub dataset: Option<String>,
    /// The first steps, one by one (`steps.csv`; empty in checkpoints written before it was kept).
    pub steps: Vec<StepStats>,
    /// sha256 of the parameters after each epoch done (shorter in runs
    /// resumed from checkpoints written before it was kept).
    pub params_sha256_by_epoch: Vec<String>,
}

/// The metadata key of the file's own checksum.
const CHECKSUM: &str = "sha256";

/// sha256 of the file `st` makes, without its checksum entry.
fn checksum(st: &SafeTensors) -> String {
    let mut bare = st.clone();
    bare.metadata.remove(CHECKSUM);
    sha256_hex(&bare.to_bytes())
}

impl Checkpoint {
    pub fn epochs_done(&self) -> usize {
        self.history.len()
    }

    /// The identity of the run it belongs to (checkpoints written before the
    /// dataset was recorded count as the committed runs' data).
    pub fn identity(&self) -> RunIdentity {
        RunIdentity::new(&self.config, self.dataset.as_deref().unwrap_or(crate::data::JPEG_Q75_TENSORS_SHA256))
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let mut st = SafeTensors::default();
        let n = self.params.len();
        st.tensors.insert("params".into(), Tensor::f32(vec![n], self.params.clone()));
        let opt = &self.optimizer;
        for (name, state) in opt.config.state_names().iter().zip(&opt.state) {
            st.tensors.insert(name.to_string(), Tensor::f32(vec![n], state.clone()));
        }
        let md = &mut st.metadata;
        md.insert("config".into(), serde_json::to_string(&self.config)?);
        md.insert(format!("{}.t", opt.config.name()), opt.t.to_string());
        md.insert("history".into(), serde_json::to_string(&self.history)?);
        md.insert("diagnostics".into(), serde_json::to_string(&self.diagnostics)?);
        md.insert("train_seconds".into(), self.train_seconds.to_string());
        md.insert("wall_seconds".into(), self.wall_seconds.to_string());
        md.insert("params_sha256_by_epoch".into(), serde_json::to_string(&self.params_sha256_by_epoch)?);
        if let Some(d) = &self.dataset {
            md.insert("dataset".into(), d.clone());
        }
        md.insert("steps".into(), serde_json::to_string(&self.steps)?);
        let sum = checksum(&st);
        st.metadata.insert(CHECKSUM.into(), sum);
        write_atomic(&dir.join(FILE), &st.to_bytes())
    }

    pub fn load(dir: &Path) -> Result<Option<Checkpoint>> {
        let path = dir.join(FILE);
        if !path.exists() {
            return Ok(None);
        }
        let damaged = |why: String| anyhow::anyhow!("{} is damaged ({why}); it is not resumed: pass --force to train the run again from the start", path.display());
        let st = SafeTensors::read(&path).map_err(|e| damaged(format!("{e:#}")))?;
        // Checkpoints written before checksums were kept have none, and are read as they are.
        if let Some(sum) = st.metadata.get(CHECKSUM)
            && *sum != checksum(&st)
        {
            return Err(damaged("its contents do not match the checksum written with it".into()));
        }
        let md = |k: &str| st.metadata.get(k).with_context(|| format!("{}: metadata `{k}` missing", path.display()));
        let config: TrainConfig = serde_json::from_str(md("config")?).with_context(|| format!("{}: bad config", path.display()))?;
        let tensor = |k: &str| -> Result<Vec<f32>> {
            st.get(k)?.as_f32().map(<[f32]>::to_vec).with_context(|| format!("{}: {k} is not f32", path.display()))
        };
        let params = tensor("params")?;
        let oc = config.protocol.optimizer;
        let optimizer = Optimizer { config: oc, state: oc.state_names().iter().map(|k| tensor(k)).collect::<Result<_>>()?, t: md(&format!("{}.t", oc.name()))?.parse()? };
        if optimizer.state.iter().any(|s| s.len() != params.len()) {
            bail!("{}: tensors of different lengths", path.display());
        }
        Ok(Some(Checkpoint {
            config,
            params,
            optimizer,
            history: serde_json::from_str(md("history")?)?,
            diagnostics: serde_json::from_str(md("diagnostics")?)?,
            train_seconds: md("train_seconds")?.parse()?,
            wall_seconds: st.metadata.get("wall_seconds").map(|s| s.parse()).transpose()?.unwrap_or(0.0),
            params_sha256_by_epoch: st.metadata.get("params_sha256_by_epoch").map(|s| serde_json::from_str(s)).transpose()?.unwrap_or_default(),
            dataset: st.metadata.get("dataset").cloned(),
            steps: st.metadata.get("steps").map(|s| serde_json::from_str(s)).transpose()?.unwrap_or_default(),
        }))
    }
}
