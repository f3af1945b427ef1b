//! `steps.csv`: the first [`LOGGED_STEPS`] training steps one by one, so
//! that what happens before the first epoch ends (a stall, a collapse) can
//! be seen: the batch's loss and accuracy (training mode), and per activated
//! layer the mean and spread of its pre-activations and the norm of its
//! weight gradient on that batch.

use crate::nn::arch::ACTIVATED;
use crate::nn::loss::BatchStats;
use crate::nn::plan::Plan;
use serde::{Deserialize, Serialize};

pub const FILE: &str = "steps.csv";

/// Steps logged from the start of a run (a little over half of an epoch on
/// the full training set, several epochs of a reduced one).
pub const LOGGED_STEPS: u64 = 500;

/// Whether global step `step` is logged (its pre-activations are read after it).
pub fn logged(step: u64) -> bool {
    step < LOGGED_STEPS
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerStep {
    pub pre_mean: f64,
    pub pre_std: f64,
    /// L2 norm of ∂loss/∂kernel of the layer on the step's batch.
    grad_norm: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// The global step (0-based).
    pub step: u64,
    pub loss: f64,
    pub accuracy: f64,
    /// One per activated layer, in [`ACTIVATED`]'s order.
    pub layers: Vec<LayerStep>,
}

impl StepStats {
    /// From a step's batch totals, its pre-activations (one slice per
    /// activated layer) and its gradients (the flat parameter vector). Sums
    /// run in f64 in element order, so every device gives the same numbers.
    pub fn of(plan: &Plan, step: u64, batch: &BatchStats, pre: &[&[f32]], grads: &[f32]) -> StepStats {
        let layers = plan
            .activated
            .iter()
            .zip(pre)
            .map(|(a, p)| {
                let n = p.len().max(1) as f64;
                let (s, s2) = p.iter().fold((0.0f64, 0.0f64), |(s, s2), &v| (s + v as f64, s2 + v as f64 * v as f64));
                let mean = s / n;
                let g = &grads[plan.ranges[a.weights].clone()];
                LayerStep { pre_mean: mean, pre_std: (s2 / n - mean * mean).max(0.0).sqrt(), grad_norm: g.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt() }
            })
            .collect();
        StepStats { step, loss: batch.mean_loss(), accuracy: batch.accuracy(), layers }
    }
}

pub fn header() -> String {
    let mut h = String::from("step,loss,accuracy");
    for a in &ACTIVATED {
        h.push_str(&format!(",{0}_pre_mean,{0}_pre_std,{0}_grad_norm", a.name));
    }
    h
}

pub fn to_csv(rows: &[StepStats]) -> String {
    let mut s = header();
    s.push('\n');
    for r in rows {
        s.push_str(&format!("{},{},{}", r.step, r.loss, r.accuracy));
        for l in &r.layers {
            s.push_str(&format!(",{},{},{}", l.pre_mean, l.pre_std, l.grad_norm));
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::model::param_ranges;

    #[test]
    fn statistics_and_columns() {
        let pre: Vec<Vec<f32>> = ACTIVATED.iter().map(|_| vec![1.0, 3.0]).collect();
        let pre: Vec<&[f32]> = pre.iter().map(|v| v.as_slice()).collect();
        let mut grads = vec![0.0f32; crate::nn::model::param_count()];
        grads[param_ranges()[ACTIVATED[1].weights].start] = 3.0;
        grads[param_ranges()[ACTIVATED[1].weights].start + 1] = 4.0;
        let s = StepStats::of(crate::nn::arch::Architecture::Article.plan(), 7, &BatchStats { loss_sum: 3.0, correct: 1, samples: 2 }, &pre, &grads);
        assert_eq!((s.loss, s.accuracy, s.layers[0].pre_mean, s.layers[0].pre_std), (1.5, 0.5, 2.0, 1.0));
        assert_eq!((s.layers[0].grad_norm, s.layers[1].grad_norm), (0.0, 5.0));
        let csv = to_csv(&[s]);
        let (head, row) = csv.split_once('\n').unwrap();
        assert_eq!(head.split(',').count(), row.trim_end().split(',').count());
        assert!(head.starts_with("step,loss,accuracy,conv1_pre_mean,conv1_pre_std,conv1_grad_norm,conv2_pre_mean"));
    }
}
