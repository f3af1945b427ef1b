//! `run.json`: what was run, on what, how it ended, and the hash of its history.

use super::checkpoint::Checkpoint;
use super::config::TrainConfig;
use super::history;
use crate::data::{Dataset, Manifest};
use crate::io::sha256_hex;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    Finished,
    Diverged { epoch: usize },
    Partial { epochs: usize },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    #[serde(flatten)]
    pub status: Status,
    pub config: TrainConfig,
    pub epochs_completed: usize,
    pub final_test_loss: Option<f64>,
    pub final_test_accuracy: Option<f64>,
    pub history_sha256: String,
    /// sha256 of the final parameters (little-endian f32, the model's flat order).
    pub params_sha256: String,
    /// sha256 of the parameters after each epoch (empty in runs recorded
    /// before it was kept), so retraining k epochs can compare parameters too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params_sha256_by_epoch: Vec<String>,
    /// sha256 of the network's layer table (`Architecture::sha256`; None in
    /// runs recorded before it was kept, all of the article's network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_sha256: Option<String>,
    pub dataset: Manifest,
    pub train_images: usize,
    pub device: Device,
    pub engine: Engine,
    pub wall_seconds: f64,
    pub train_seconds: f64,
    pub images_per_second: f64,
}

/// Where a run was computed. Results are bit-identical across thread counts
/// and reruns within one device class; `class` says which.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// "cpu" or "cuda".
    pub class: String,
    pub name: String,
    /// CPU threads; on CUDA, the runs trained together.
    pub threads: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Engine {
    pub version: String,
    /// The last commit that changed the code when the binary was built,
    /// followed by `+modified` where the code differed from it (see
    /// `build.rs`); None for a binary not built from a git checkout. Runs
    /// recorded by binaries older than 401fe65 hold instead the HEAD of the
    /// directory the run was recorded in.
    pub git_commit: Option<String>,
    /// `engine::ARITHMETIC` of the engine that computed the run.
    #[serde(default = "first_arithmetic")]
    pub arithmetic: u32,
}

/// Runs recorded before the version was kept computed version 1.
fn first_arithmetic() -> u32 {
    1
}

impl Engine {
    /// This binary's engine.
    pub fn current() -> Engine {
        let commit = env!("ACTLAB_CODE_COMMIT");
        Engine { version: env!("CARGO_PKG_VERSION").to_string(), git_commit: (!commit.is_empty()).then(|| commit.to_string()), arithmetic: crate::engine::ARITHMETIC }
    }
}

impl Device {
    pub fn cpu() -> Device {
        let name = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|s| s.trim().to_string()))
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        Device { class: "cpu".into(), name, threads: rayon::current_num_threads() }
    }

    pub fn cuda(name: &str, runs: usize) -> Device {
        Device { class: "cuda".into(), name: name.to_string(), threads: runs }
    }
}

/// Read a run.json. A function defined by expression under a name this
/// process does not know (another study's name for the same definition) is
/// defined from the record first, so its runs can be shared.
pub fn parse(text: &str) -> Result<RunRecord, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if let (Some(name), Some(def)) = (v["config"]["activation"].as_str(), v["config"].get("definition"))
        && crate::activation::Activation::from_name(name).is_none()
    {
        let def: crate::activation::Definition = serde_json::from_value(def.clone()).map_err(|e| e.to_string())?;
        crate::activation::define(name, &def)?;
    }
    serde_json::from_value(v).map_err(|e| e.to_string())
}

pub fn params_sha256(params: &[f32]) -> String {
    let bytes: Vec<u8> = params.iter().flat_map(|p| p.to_le_bytes()).collect();
    sha256_hex(&bytes)
}

impl RunRecord {
    pub fn new(config: &TrainConfig, data: &Dataset, ck: &Checkpoint, status: Status, device: Device, train_images: usize) -> RunRecord {
        let last = ck.history.last();
        let images = (train_images * ck.epochs_done()) as f64;
        RunRecord {
            status,
            config: config.clone(),
            epochs_completed: ck.epochs_done(),
            final_test_loss: last.map(|e| e.val_loss),
            final_test_accuracy: last.map(|e| e.val_accuracy),
            history_sha256: sha256_hex(history::to_csv(&ck.history).as_bytes()),
            params_sha256: params_sha256(&ck.params),
            params_sha256_by_epoch: if ck.params_sha256_by_epoch.len() == ck.epochs_done() { ck.params_sha256_by_epoch.clone() } else { Vec::new() },
            network_sha256: Some(config.protocol.network.sha256()),
            dataset: data.manifest.clone(),
            train_images,
            device,
            engine: Engine::current(),
            wall_seconds: ck.wall_seconds,
            train_seconds: ck.train_seconds,
            images_per_second: if ck.train_seconds > 0.0 { images / ck.train_seconds } else { 0.0 },
        }
    }
}

/// The typical training seconds per epoch of some runs: the median over
/// runs of each one's `train_seconds / epochs_completed`. A median, because
/// a run trained beside a build or on a slower machine is several times
/// slower than a quiet one, and a mean lets one such run set the estimate.
pub fn median_epoch_seconds<'a>(records: impl IntoIterator<Item = &'a RunRecord>) -> Option<f64> {
    median(records.into_iter().filter(|r| r.epochs_completed > 0 && r.train_seconds > 0.0).map(|r| r.train_seconds / r.epochs_completed as f64).collect())
}

/// The median (the mean of the middle two for an even count); None of nothing.
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    (n > 0).then(|| if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}
