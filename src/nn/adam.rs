//! Adam in Keras' (TensorFlow `ApplyAdam`) form.
//!
//! ```text
//! m += (g − m)·(1 − β1);  v += (g² − v)·(1 − β2)
//! α = lr·sqrt(1 − β2^t)/(1 − β1^t);  p −= α·m/(sqrt(v) + ε)
//! ```
//! ε is added to sqrt(v) without bias correction (Keras' epsilon-hat form).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamConfig {
    pub learning_rate: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
}

impl AdamConfig {
    /// Keras' defaults.
    pub const KERAS: AdamConfig = AdamConfig { learning_rate: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 };
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig::KERAS
    }
}

/// The optimizer state: everything a checkpoint must hold besides the parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    pub config: AdamConfig,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    /// Steps taken so far.
    pub t: u64,
}

impl Adam {
    pub fn new(config: AdamConfig, n: usize) -> Adam {
        Adam { config, m: vec![0.0; n], v: vec![0.0; n], t: 0 }
    }

    /// The step size α for step `t` (1-based); powers by repeated
    /// multiplication in f64, so no libm is involved.
    pub fn alpha(&self, t: u64) -> f32 {
        let (b1, b2) = (self.config.beta1 as f64, self.config.beta2 as f64);
        let (mut p1, mut p2) = (1.0f64, 1.0f64);
        for _ in 0..t {
            p1 *= b1;
            p2 *= b2;
        }
        (self.config.learning_rate as f64 * (1.0 - p2).sqrt() / (1.0 - p1)) as f32
    }

    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        let _s = crate::engine::profile::stage("Adam");
        self.t += 1;
        let alpha = self.alpha(self.t);
        let c = self.config;
        let (one_b1, one_b2) = (1.0 - c.beta1, 1.0 - c.beta2);
        const CHUNK: usize = 1 << 14;
        params
            .par_chunks_mut(CHUNK)
            .zip(grads.par_chunks(CHUNK))
            .zip(self.m.par_chunks_mut(CHUNK))
            .zip(self.v.par_chunks_mut(CHUNK))
            .for_each(|(((p, g), m), v)| {
                for i in 0..p.len() {
                    m[i] += (g[i] - m[i]) * one_b1;
                    v[i] += (g[i] * g[i] - v[i]) * one_b2;
                    p[i] -= alpha * m[i] / (v[i].sqrt() + c.epsilon);
                }
            });
    }
}
