//! A run's identity: everything that determines its bits — the function's
//! definition, the seed, the protocol (epochs, batch, optimizer, data
//! limits, network), the dataset's decoded tensors, the network's layer
//! table and the engine's arithmetic version — written in a form this
//! project defines ([`RunIdentity::canonical`]), never a `Debug` string.
//!
//! Two runs with one identity compute the same bits, so either can stand for
//! the other; a run of another identity never replaces a published one, and
//! no statistic mixes identities beyond the function and seed it compares.

use super::config::TrainConfig;
use super::record::RunRecord;
use crate::activation::Activation;
use std::fmt::Write as _;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunIdentity {
    /// `builtin <name>`, or `expr <normalised>` with `; grad <normalised>`.
    pub function: String,
    pub seed: u64,
    /// The protocol's folder name, which spells every field (`Protocol::slug`).
    pub protocol: String,
    /// The network's name and the sha256 of its layer table.
    pub network: String,
    /// sha256 of the dataset's decoded tensors.
    pub dataset: String,
    pub arithmetic: u32,
}

/// A function's definition in the identity's spelling.
pub fn function_definition(a: Activation) -> String {
    match a.custom() {
        None => format!("builtin {}", a.name()),
        Some(c) => {
            let mut s = format!("expr {}", c.forward.normalised());
            if let Some(g) = &c.grad {
                let _ = write!(s, "; grad {}", g.normalised());
            }
            s
        }
    }
}

impl RunIdentity {
    /// The run `config` describes, trained on the dataset whose tensors hash
    /// to `dataset` by this engine.
    pub fn new(config: &TrainConfig, dataset: &str) -> RunIdentity {
        let network = config.protocol.network;
        RunIdentity {
            function: function_definition(config.activation),
            seed: config.seed,
            protocol: config.protocol.slug(),
            network: format!("{} {}", network.name(), network.sha256()),
            dataset: dataset.to_string(),
            arithmetic: crate::engine::ARITHMETIC,
        }
    }

    /// The run a `run.json` records. Records written before the network's
    /// hash was kept are of the article's network as it still is.
    pub fn of_record(rec: &RunRecord) -> RunIdentity {
        let network = rec.config.protocol.network;
        RunIdentity {
            network: format!("{} {}", network.name(), rec.network_sha256.clone().unwrap_or_else(|| network.sha256())),
            dataset: rec.dataset.tensors_sha256.clone(),
            arithmetic: rec.engine.arithmetic,
            ..RunIdentity::new(&rec.config, "")
        }
    }

    /// One `key: value` line per part, in a fixed order.
    pub fn canonical(&self) -> String {
        format!(
            "actlab run identity 1\nfunction: {}\nseed: {}\nprotocol: {}\nnetwork: {}\ndataset: {}\narithmetic: {}\n",
            self.function, self.seed, self.protocol, self.network, self.dataset, self.arithmetic
        )
    }

    /// A short description for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} seed {}, protocol {}, network {}, data {}…, arithmetic {}",
            self.function,
            self.seed,
            self.protocol,
            self.network.split(' ').next().unwrap_or(""),
            &self.dataset[..12.min(self.dataset.len())],
            self.arithmetic
        )
    }

    /// What differs between two identities, for error messages: `mine` vs `theirs`.
    pub fn differences(&self, other: &RunIdentity) -> String {
        let pairs = [
            ("function", &self.function, &other.function),
            ("protocol", &self.protocol, &other.protocol),
            ("network", &self.network, &other.network),
            ("dataset", &self.dataset, &other.dataset),
        ];
        let mut out: Vec<String> = pairs.iter().filter(|(_, a, b)| a != b).map(|(k, a, b)| format!("{k} {a} vs {b}")).collect();
        if self.seed != other.seed {
            out.push(format!("seed {} vs {}", self.seed, other.seed));
        }
        if self.arithmetic != other.arithmetic {
            out.push(format!("arithmetic {} vs {}", self.arithmetic, other.arithmetic));
        }
        out.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::config::Protocol;

    #[test]
    fn every_part_tells_identities_apart() {
        let base = RunIdentity::new(&TrainConfig::article(Activation::Relu, 1), "aa");
        assert_eq!(base.canonical().lines().count(), 7);
        assert!(base.canonical().contains("function: builtin relu\n") && base.canonical().contains("protocol: e50-b64\n"));
        let others = [
            RunIdentity::new(&TrainConfig::article(Activation::Tanh, 1), "aa"),
            RunIdentity::new(&TrainConfig::article(Activation::Relu, 2), "aa"),
            RunIdentity::new(&TrainConfig::new(Activation::Relu, 1, Protocol { epochs: 1, ..Protocol::ARTICLE }), "aa"),
            RunIdentity::new(&TrainConfig::article(Activation::Relu, 1), "bb"),
            RunIdentity { arithmetic: 2, ..base.clone() },
            RunIdentity { network: "article 00".into(), ..base.clone() },
        ];
        for o in &others {
            assert_ne!(o.canonical(), base.canonical());
            assert!(!base.differences(o).is_empty());
        }
        assert_eq!(base.differences(&base.clone()), "");
    }

    #[test]
    fn a_committed_record_has_the_identity_it_was_trained_with() {
        let rec: RunRecord = serde_json::from_str(include_str!("../../artifacts/e50-b64/relu/seed-1/run.json")).unwrap();
        let id = RunIdentity::of_record(&rec);
        assert_eq!(id, RunIdentity::new(&TrainConfig::article(Activation::Relu, 1), crate::data::JPEG_Q75_TENSORS_SHA256));
    }
}
