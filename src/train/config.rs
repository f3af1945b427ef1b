//! What determines a run: everything here goes into run.json and checkpoints.

use crate::activation::{Activation, Definition};
use crate::nn::adam::AdamConfig;
use serde::{Deserialize, Serialize};

/// How a run trains, apart from its function and seed: runs with the same
/// protocol are comparable, and no statistic mixes two protocols.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Protocol {
    pub epochs: usize,
    pub batch_size: usize,
    pub adam: AdamConfig,
    /// Train on a fixed class-balanced subset of this many images (None: all).
    pub train_limit: Option<usize>,
    /// Evaluate on a fixed subset of this many test images (None: all).
    pub test_limit: Option<usize>,
}

impl Protocol {
    /// The article's: 50 epochs, batch 64, Keras' Adam, all the data.
    pub const ARTICLE: Protocol = Protocol { epochs: 50, batch_size: 64, adam: AdamConfig::KERAS, train_limit: None, test_limit: None };

    /// The one check of a protocol's values (study files, flags and
    /// checkpoints all come through here): the first field that is wrong,
    /// and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let a = &self.adam;
        let rules: [(&'static str, bool, String); 8] = [
            ("epochs", self.epochs >= 1, format!("epochs must be at least 1, not {}", self.epochs)),
            ("batch_size", (1..=4096).contains(&self.batch_size), format!("batch size must be between 1 and 4096, not {}", self.batch_size)),
            ("train_limit", self.train_limit != Some(0), "the train limit must be at least 1".into()),
            ("test_limit", self.test_limit != Some(0), "the test limit must be at least 1".into()),
            ("learning_rate", a.learning_rate > 0.0 && a.learning_rate.is_finite(), format!("the learning rate must be a positive number, not {}", a.learning_rate)),
            ("beta1", (0.0..1.0).contains(&a.beta1), format!("Adam's beta1 must lie in [0, 1), not {}", a.beta1)),
            ("beta2", (0.0..1.0).contains(&a.beta2), format!("Adam's beta2 must lie in [0, 1), not {}", a.beta2)),
            ("epsilon", a.epsilon > 0.0 && a.epsilon.is_finite(), format!("Adam's epsilon must be a positive number, not {}", a.epsilon)),
        ];
        match rules.into_iter().find(|(_, ok, _)| !ok) {
            Some((field, _, why)) => Err((field, why)),
            None => Ok(()),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        self.check().map_err(|(_, why)| why)
    }

    /// A folder name that differs for every protocol: `e50-b64` for the
    /// article's, with `-n8192` / `-t2000` for data limits and the Adam
    /// settings when they are not Keras' defaults.
    pub fn slug(&self) -> String {
        let mut s = format!("e{}-b{}", self.epochs, self.batch_size);
        if let Some(n) = self.train_limit {
            s.push_str(&format!("-n{n}"));
        }
        if let Some(n) = self.test_limit {
            s.push_str(&format!("-t{n}"));
        }
        let (a, k) = (self.adam, AdamConfig::KERAS);
        if a.learning_rate != k.learning_rate {
            s.push_str(&format!("-lr{:e}", a.learning_rate));
        }
        if (a.beta1, a.beta2, a.epsilon) != (k.beta1, k.beta2, k.epsilon) {
            s.push_str(&format!("-adam{}-{}-{:e}", a.beta1, a.beta2, a.epsilon));
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
        let slow = Protocol { adam: AdamConfig { learning_rate: 1e-4, ..AdamConfig::KERAS }, ..Protocol::ARTICLE };
        assert_eq!(slow.slug(), "e50-b64-lr1e-4");
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
    }
}
