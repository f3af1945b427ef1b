//! What determines a run: everything here goes into run.json and checkpoints.

use crate::activation::{Activation, Definition};
use crate::nn::adam::AdamConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub activation: Activation,
    /// The expression of an expression-defined activation (None for built-ins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<Definition>,
    pub seed: u64,
    pub epochs: usize,
    pub batch_size: usize,
    pub adam: AdamConfig,
    /// Train on a fixed class-balanced subset of this many images (None: all).
    pub train_limit: Option<usize>,
    /// Evaluate on a fixed subset of this many test images (None: all).
    pub test_limit: Option<usize>,
}

impl TrainConfig {
    /// The article's protocol: 50 epochs, batch 64, Keras' Adam.
    pub fn article(activation: Activation, seed: u64) -> TrainConfig {
        TrainConfig { activation, definition: activation.definition(), seed, epochs: 50, batch_size: 64, adam: AdamConfig::default(), train_limit: None, test_limit: None }
    }

    /// Everything but the function and the seed: runs with the same
    /// protocol can train together on a GPU (`train::run_all`).
    pub fn protocol(&self) -> (usize, usize, Option<usize>, Option<usize>, AdamConfig) {
        (self.epochs, self.batch_size, self.train_limit, self.test_limit, self.adam)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.epochs == 0 {
            return Err("epochs must be at least 1".into());
        }
        if self.batch_size == 0 || self.batch_size > 4096 {
            return Err(format!("batch size must be between 1 and 4096, not {}", self.batch_size));
        }
        if matches!(self.train_limit, Some(0)) || matches!(self.test_limit, Some(0)) {
            return Err("train/test limits must be at least 1".into());
        }
        let a = &self.adam;
        if !(a.learning_rate > 0.0 && a.learning_rate.is_finite()) {
            return Err(format!("learning rate must be positive, not {}", a.learning_rate));
        }
        if !(0.0..1.0).contains(&a.beta1) || !(0.0..1.0).contains(&a.beta2) {
            return Err("Adam betas must lie in [0, 1)".into());
        }
        if !(a.epsilon > 0.0) {
            return Err("Adam epsilon must be positive".into());
        }
        Ok(())
    }
}
