//! What determines a run: everything here goes into run.json and checkpoints.

use crate::activation::{Activation, Definition};
use crate::nn::arch::Architecture;
use crate::nn::optim::{AdamConfig, OptimizerConfig};
use serde::{Deserialize, Serialize};

/// How a run trains, apart from its function and seed: runs with the same
/// protocol are comparable, and no statistic mixes two protocols.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Protocol {
    pub epochs: usize,
    pub batch_size: usize,
    /// In `run.json`, one key: `"adam": {…}` or `"sgd": {…}`.
    #[serde(flatten)]
    pub optimizer: OptimizerConfig,
    /// Train on a fixed class-balanced subset of this many images (None: all).
    pub train_limit: Option<usize>,
    /// Evaluate on a fixed subset of this many test images (None: all).
    pub test_limit: Option<usize>,
    /// The network (the article's unless a study names another).
    #[serde(default)]
    pub network: Architecture,
}

impl Protocol {
    /// The article's: 50 epochs, batch 64, Keras' Adam, all the data.
    pub const ARTICLE: Protocol = Protocol { epochs: 50, batch_size: 64, optimizer: OptimizerConfig::ARTICLE, train_limit: None, test_limit: None, network: Architecture::Article };

    /// The one check of a protocol's values (study files, flags and
    /// checkpoints all come through here): the first field that is wrong,
    /// and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let lr = self.optimizer.learning_rate();
        let mut rules: Vec<(&'static str, bool, String)> = vec![
            ("epochs", self.epochs >= 1, format!("epochs must be at least 1, not {}", self.epochs)),
            ("batch_size", (1..=4096).contains(&self.batch_size), format!("batch size must be between 1 and 4096, not {}", self.batch_size)),
            ("train_limit", self.train_limit != Some(0), "the train limit must be at least 1".into()),
            ("test_limit", self.test_limit != Some(0), "the test limit must be at least 1".into()),
            ("learning_rate", lr > 0.0 && lr.is_finite(), format!("the learning rate must be a positive number, not {lr}")),
        ];
        match self.optimizer {
            OptimizerConfig::Adam(a) => rules.extend([
                ("beta1", (0.0..1.0).contains(&a.beta1), format!("Adam's beta1 must lie in [0, 1), not {}", a.beta1)),
                ("beta2", (0.0..1.0).contains(&a.beta2), format!("Adam's beta2 must lie in [0, 1), not {}", a.beta2)),
                ("epsilon", a.epsilon > 0.0 && a.epsilon.is_finite(), format!("Adam's epsilon must be a positive number, not {}", a.epsilon)),
            ]),
            OptimizerConfig::Sgd(s) => rules.push(("momentum", (0.0..1.0).contains(&s.momentum), format!("SGD's momentum must lie in [0, 1), not {}", s.momentum))),
        }
        match rules.into_iter().find(|(_, ok, _)| !ok) {
            Some((field, _, why)) => Err((field, why)),
            None => Ok(()),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        self.check().map_err(|(_, why)| why)
    }

    /// A folder name that differs for every protocol: `e50-b64` for the
    /// article's, with `-n8192` / `-t2000` for data limits, the optimizer's
    /// settings when they are not the article's (`-lr1e-4`,
    /// `-sgd0.01m0.9`), and the network when it is not the article's.
    pub fn slug(&self) -> String {
        let mut s = format!("e{}-b{}", self.epochs, self.batch_size);
        if let Some(n) = self.train_limit {
            s.push_str(&format!("-n{n}"));
        }
        if let Some(n) = self.test_limit {
            s.push_str(&format!("-t{n}"));
        }
        match self.optimizer {
            OptimizerConfig::Adam(a) => {
                let k = AdamConfig::KERAS;
                if a.learning_rate != k.learning_rate {
                    s.push_str(&format!("-lr{:e}", a.learning_rate));
                }
                if (a.beta1, a.beta2, a.epsilon) != (k.beta1, k.beta2, k.epsilon) {
                    s.push_str(&format!("-adam{}-{}-{:e}", a.beta1, a.beta2, a.epsilon));
                }
            }
            OptimizerConfig::Sgd(c) => s.push_str(&format!("-sgd{}m{}", c.learning_rate, c.momentum)),
        }
        if self.network != Architecture::Article {
            s.push_str(&format!("-{}", self.network.name()));
        }
        s
    }

    /// Whether this protocol trains on fewer images or epochs than `full`.
    pub fn is_reduction_of(&self, full: &Protocol) -> bool {
        // No more epochs and no more images than `full`, otherwise the same.
        let at_most = |mine: Option<usize>, theirs: Option<usize>| match (mine, theirs) {
            (_, None) => true,
            (Some(a), Some(b)) => a <= b,
            (None, Some(_)) => false,
        };
        self != full
            && self.epochs <= full.epochs
            && at_most(self.train_limit, full.train_limit)
            && at_most(self.test_limit, full.test_limit)
            && Protocol { epochs: full.epochs, train_limit: full.train_limit, test_limit: full.test_limit, ..*self } == *full
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub activation: Activation,
    /// The expression of an expression-defined activation (None for built-ins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<Definition>,
    pub seed: u64,
    #[serde(flatten)]
    pub protocol: Protocol,
}

impl TrainConfig {
    pub fn new(activation: Activation, seed: u64, protocol: Protocol) -> TrainConfig {
        TrainConfig { activation, definition: activation.definition(), seed, protocol }
    }

    /// The article's protocol: 50 epochs, batch 64, Keras' Adam.
    pub fn article(activation: Activation, seed: u64) -> TrainConfig {
        TrainConfig::new(activation, seed, Protocol::ARTICLE)
    }

    pub fn validate(&self) -> Result<(), String> {
        self.protocol.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_tell_protocols_apart() {
        let reduced = Protocol { epochs: 8, train_limit: Some(8192), test_limit: Some(2000), ..Protocol::ARTICLE };
        assert_eq!(Protocol::ARTICLE.slug(), "e50-b64");
        assert_eq!(reduced.slug(), "e8-b64-n8192-t2000");
        let slow = Protocol { optimizer: OptimizerConfig::Adam(AdamConfig { learning_rate: 1e-4, ..AdamConfig::KERAS }), ..Protocol::ARTICLE };
        assert_eq!(slow.slug(), "e50-b64-lr1e-4");
        let sgd = Protocol { epochs: 1, optimizer: OptimizerConfig::Sgd(crate::nn::optim::SgdConfig { learning_rate: 0.01, momentum: 0.9 }), ..Protocol::ARTICLE };
        assert_eq!(sgd.slug(), "e1-b64-sgd0.01m0.9");
        assert!(!sgd.is_reduction_of(&Protocol::ARTICLE));
        assert!(reduced.is_reduction_of(&Protocol::ARTICLE));
        assert!(!slow.is_reduction_of(&Protocol::ARTICLE) && !Protocol::ARTICLE.is_reduction_of(&Protocol::ARTICLE));
        // Longer is not a reduction, however few the images.
        let five = Protocol { epochs: 5, ..Protocol::ARTICLE };
        assert!(!reduced.is_reduction_of(&five));
        assert!(Protocol { epochs: 2, train_limit: Some(640), ..five }.is_reduction_of(&five));
    }

    #[test]
    fn run_json_keeps_its_flat_form() {
        let c = TrainConfig::article(Activation::Relu, 3);
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["epochs"], 50);
        assert_eq!(v["adam"]["learning_rate"], 0.001f32 as f64);
        assert_eq!(serde_json::from_value::<TrainConfig>(v).unwrap(), c);
        // A committed run.json reads as it was written.
        let rec: serde_json::Value = serde_json::from_str(include_str!("../../artifacts/e50-b64/relu/seed-1/run.json")).unwrap();
        assert_eq!(serde_json::from_value::<TrainConfig>(rec["config"].clone()).unwrap(), TrainConfig::article(Activation::Relu, 1));
        // SGD is one key of its own.
        let sgd = TrainConfig::new(Activation::Relu, 1, Protocol { optimizer: OptimizerConfig::Sgd(crate::nn::optim::SgdConfig { learning_rate: 0.01, momentum: 0.9 }), ..Protocol::ARTICLE });
        let v = serde_json::to_value(&sgd).unwrap();
        assert!(v.get("adam").is_none() && v["sgd"]["momentum"] == 0.9f32 as f64, "{v}");
        assert_eq!(serde_json::from_value::<TrainConfig>(v).unwrap(), sgd);
    }
}
