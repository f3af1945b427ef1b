//! The optimizers, in Keras' forms: Adam (TensorFlow `ApplyAdam`) and SGD
//! with momentum. Which one, and its settings, is part of a run's protocol.
//!
//! Adam:
//! ```text
//! m += (g − m)·(1 − β1);  v += (g² − v)·(1 − β2)
//! α = lr·sqrt(1 − β2^t)/(1 − β1^t);  p −= α·m/(sqrt(v) + ε)
//! ```
//! ε is added to sqrt(v) without bias correction (Keras' epsilon-hat form).
//!
//! SGD with momentum (Keras' `SGD(learning_rate, momentum)`, not Nesterov):
//! ```text
//! v = momentum·v − lr·g;  p += v
//! ```
//! Each operation is rounded to f32 on its own (no fused multiply-add), here
//! and in `network.cu`, so both devices compute the same bits.

use crate::engine::cpu::isa_compiled;
use crate::engine::cpu::simd::Isa;
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

    /// The step size α for step `t` (1-based); powers by repeated
    /// multiplication in f64, so no libm is involved.
    pub fn alpha(&self, t: u64) -> f32 {
        let (b1, b2) = (self.beta1 as f64, self.beta2 as f64);
        let (mut p1, mut p2) = (1.0f64, 1.0f64);
        for _ in 0..t {
            p1 *= b1;
            p2 *= b2;
        }
        (self.learning_rate as f64 * (1.0 - p2).sqrt() / (1.0 - p1)) as f32
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SgdConfig {
    pub learning_rate: f32,
    pub momentum: f32,
}

impl SgdConfig {
    /// Keras' defaults: `SGD()` is learning rate 0.01 without momentum.
    pub const KERAS: SgdConfig = SgdConfig { learning_rate: 0.01, momentum: 0.0 };
}

/// Which optimizer a protocol trains with. In `run.json` and checkpoints it
/// is one key, `"adam": {…}` or `"sgd": {…}`, beside the protocol's others.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerConfig {
    Adam(AdamConfig),
    Sgd(SgdConfig),
}

impl OptimizerConfig {
    /// The article's: Keras' Adam with its defaults.
    pub const ARTICLE: OptimizerConfig = OptimizerConfig::Adam(AdamConfig::KERAS);

    /// Its name in files (`adam`, `sgd`): the prefix of its checkpoint entries.
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::Adam(_) => "adam",
            OptimizerConfig::Sgd(_) => "sgd",
        }
    }

    pub fn learning_rate(&self) -> f32 {
        match self {
            OptimizerConfig::Adam(a) => a.learning_rate,
            OptimizerConfig::Sgd(s) => s.learning_rate,
        }
    }

    /// The names of the per-parameter state tensors, in the order of
    /// [`Optimizer::state`]: Adam's two moments, SGD's velocity.
    pub fn state_names(&self) -> &'static [&'static str] {
        match self {
            OptimizerConfig::Adam(_) => &["adam.m", "adam.v"],
            OptimizerConfig::Sgd(_) => &["sgd.velocity"],
        }
    }
}

/// The optimizer's state: everything a checkpoint must hold besides the
/// parameters. `state[k]` is the tensor named `config.state_names()[k]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Optimizer {
    pub config: OptimizerConfig,
    pub state: Vec<Vec<f32>>,
    /// Steps taken so far.
    pub t: u64,
}

/// Parameters per parallel task of an update.
const CHUNK: usize = 1 << 14;

impl Optimizer {
    /// The state before the first step (all zeros) for `n` parameters.
    pub fn new(config: OptimizerConfig, n: usize) -> Optimizer {
        Optimizer { config, state: config.state_names().iter().map(|_| vec![0.0; n]).collect(), t: 0 }
    }

    /// One update of `params` by `grads`.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        let _s = crate::engine::profile::stage(match self.config {
            OptimizerConfig::Adam(_) => "Adam",
            OptimizerConfig::Sgd(_) => "SGD",
        });
        self.t += 1;
        match (self.config, self.state.as_mut_slice()) {
            (OptimizerConfig::Adam(c), [m, v]) => {
                let alpha = c.alpha(self.t);
                let (one_b1, one_b2) = (1.0 - c.beta1, 1.0 - c.beta2);
                let (isa, rates) = (Isa::detected(), [alpha, one_b1, one_b2, c.epsilon]);
                params.par_chunks_mut(CHUNK).zip(grads.par_chunks(CHUNK)).zip(m.par_chunks_mut(CHUNK)).zip(v.par_chunks_mut(CHUNK)).for_each(|(((p, g), m), v)| {
                    // SAFETY: the detected instruction set.
                    unsafe { adam_chunk(isa, rates, p, g, m, v) }
                });
            }
            (OptimizerConfig::Sgd(c), [velocity]) => {
                params.par_chunks_mut(CHUNK).zip(grads.par_chunks(CHUNK)).zip(velocity.par_chunks_mut(CHUNK)).for_each(|((p, g), v)| {
                    for i in 0..p.len() {
                        v[i] = c.momentum * v[i] - c.learning_rate * g[i];
                        p[i] += v[i];
                    }
                });
            }
            (c, s) => panic!("{} optimizer with {} state tensors", c.name(), s.len()),
        }
    }
}

isa_compiled! {
    fn adam_chunk(rates: [f32; 4], p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) => adam_chunk_with
}

/// Adam's update of one chunk; `rates` are α, 1 − β1, 1 − β2 and ε.
/// Compiled per instruction set, as the rayon closure around it is built
/// for SSE2: 4 square roots and divisions at a time instead of 16.
#[inline(always)]
fn adam_chunk_with([alpha, one_b1, one_b2, epsilon]: [f32; 4], p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    for i in 0..p.len() {
        m[i] += (g[i] - m[i]) * one_b1;
        v[i] += (g[i] * g[i] - v[i]) * one_b2;
        p[i] -= alpha * m[i] / (v[i].sqrt() + epsilon);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keras' SGD with momentum, two steps in f64 (v = m·v − lr·g; p += v),
    /// against the f32 update: each element within a few f32 roundings of
    /// the terms it sums.
    #[test]
    fn sgd_with_momentum_is_keras_update() {
        let c = SgdConfig { learning_rate: 0.01, momentum: 0.9 };
        let p0: Vec<f32> = (0..100).map(|i| ((i * 37 % 101) as f32 - 50.0) / 64.0).collect();
        let g1: Vec<f32> = (0..100).map(|i| ((i * 53 % 97) as f32 - 48.0) / 16.0).collect();
        let g2: Vec<f32> = (0..100).map(|i| ((i * 29 % 89) as f32 - 44.0) / 8.0).collect();
        let mut opt = Optimizer::new(OptimizerConfig::Sgd(c), 100);
        let mut p = p0.clone();
        opt.step(&mut p, &g1);
        opt.step(&mut p, &g2);
        assert_eq!(opt.t, 2);
        let (lr, mo) = (c.learning_rate as f64, c.momentum as f64);
        for i in 0..100 {
            let v1 = -lr * g1[i] as f64;
            let v2 = mo * v1 - lr * g2[i] as f64;
            let want = p0[i] as f64 + v1 + v2;
            let ulps = |x: f64, want: f64, terms: f64| (x - want).abs() / (f32::EPSILON as f64 * terms);
            let v_terms = (mo * v1).abs() + (lr * g2[i] as f64).abs();
            assert!(ulps(opt.state[0][i] as f64, v2, v_terms) <= 4.0, "velocity {i}: {} vs {v2}", opt.state[0][i]);
            assert!(ulps(p[i] as f64, want, (p0[i] as f64).abs() + v1.abs() + v_terms) <= 4.0, "parameter {i}: {} vs {want}", p[i]);
        }
        // Without momentum the velocity is only this step's.
        let mut plain = Optimizer::new(OptimizerConfig::Sgd(SgdConfig::KERAS), 1);
        let mut q = [1.0f32];
        plain.step(&mut q, &[2.0]);
        plain.step(&mut q, &[2.0]);
        assert_eq!(q[0], 1.0 - 0.02 - 0.02);
    }

    #[test]
    fn the_state_is_named_per_optimizer() {
        let a = Optimizer::new(OptimizerConfig::ARTICLE, 3);
        assert_eq!((a.state.len(), a.config.state_names()), (2, &["adam.m", "adam.v"][..]));
        let s = Optimizer::new(OptimizerConfig::Sgd(SgdConfig::KERAS), 3);
        assert_eq!((s.state.len(), s.config.name()), (1, "sgd"));
    }
}
