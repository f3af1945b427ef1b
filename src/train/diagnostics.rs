//! Per-epoch, per-layer statistics that explain *why* a function trains as it
//! does, gathered on a fixed probe batch of test images in inference mode.
//!
//! Definitions (all over the probe batch, every sample and position):
//! - `pre_mean`, `pre_std`: the layer's pre-activation (conv/dense output);
//! - `post_mean`, `post_std`: after the activation;
//! - `sparsity`: fraction of post-activation values exactly 0;
//! - `zero_slope`: fraction of pre-activations where the activation's
//!   derivative is exactly 0 (no gradient passes there);
//! - `dead_units`: fraction of units (channels of a conv, neurons of the
//!   dense layer) whose derivative is 0 at every sample and position, so
//!   no gradient reaches their weights on this batch;
//! - `grad_in_mean_abs`: mean |∂loss/∂x| of the layer's input x;
//! - `weight_grad_norm`: L2 norm of ∂loss/∂kernel of the layer.

use crate::data::Split;
use crate::nn::model::{LayerTap, Model, IMAGE_LEN};
use serde::{Deserialize, Serialize};

pub const HEADER: &str = "epoch,layer,pre_mean,pre_std,post_mean,post_std,sparsity,zero_slope,dead_units,grad_in_mean_abs,weight_grad_norm";

/// How many test images the probe uses.
pub const PROBE_IMAGES: usize = 256;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerStats {
    pub epoch: usize,
    pub layer: String,
    pub pre_mean: f64,
    pub pre_std: f64,
    pub post_mean: f64,
    post_std: f64,
    pub sparsity: f64,
    pub zero_slope: f64,
    pub dead_units: f64,
    pub grad_in_mean_abs: f64,
    weight_grad_norm: f64,
}

#[derive(Default)]
struct Acc {
    n: f64,
    pre: (f64, f64),
    post: (f64, f64),
    zeros: f64,
    flat: f64,
    grad_n: f64,
    grad_abs: f64,
    /// Per unit: has any element had a non-zero slope?
    alive: Vec<bool>,
}

/// Statistics of the probe batch for `epoch` (1-based; 0 = before training).
pub fn probe(model: &mut Model, test: &Split, epoch: usize) -> Vec<LayerStats> {
    let total = test.len().min(PROBE_IMAGES);
    let chunk = model.max_batch();
    let plan = model.plan();
    let mut taps: Vec<LayerTap> = plan.activated.iter().map(|_| LayerTap::default()).collect();
    let mut acc: Vec<Acc> = plan.activated.iter().map(|_| Acc::default()).collect();
    let mut wgrad = vec![0f64; model.grads.len()];
    let mut start = 0;
    while start < total {
        let n = chunk.min(total - start);
        model.load_images(&test.images[start * IMAGE_LEN..(start + n) * IMAGE_LEN]);
        model.probe(n, &test.labels[start..start + n], &mut taps);
        // Gradients are of the chunk's mean loss; weight by chunk size for the probe mean.
        for (w, g) in wgrad.iter_mut().zip(&model.grads) {
            *w += *g as f64 * n as f64 / total as f64;
        }
        for (i, (t, a)) in taps.iter().zip(acc.iter_mut()).enumerate() {
            let u = plan.activated[i].units;
            a.alive.resize(u, false);
            for (j, ((&pre, &post), &slope)) in t.pre.iter().zip(&t.post).zip(&t.slope).enumerate() {
                a.n += 1.0;
                a.pre.0 += pre as f64;
                a.pre.1 += (pre as f64) * (pre as f64);
                a.post.0 += post as f64;
                a.post.1 += (post as f64) * (post as f64);
                a.zeros += (post == 0.0) as u8 as f64;
                a.flat += (slope == 0.0) as u8 as f64;
                if slope != 0.0 {
                    a.alive[j % u] = true;
                }
            }
            a.grad_n += t.input_grad.len() as f64;
            a.grad_abs += t.input_grad.iter().map(|g| g.abs() as f64).sum::<f64>();
        }
        start += n;
    }
    let std = |s: (f64, f64), n: f64| ((s.1 / n - (s.0 / n).powi(2)).max(0.0)).sqrt();
    acc.iter()
        .enumerate()
        .map(|(i, a)| LayerStats {
            epoch,
            layer: plan.activated[i].name.to_string(),
            pre_mean: a.pre.0 / a.n,
            pre_std: std(a.pre, a.n),
            post_mean: a.post.0 / a.n,
            post_std: std(a.post, a.n),
            sparsity: a.zeros / a.n,
            zero_slope: a.flat / a.n,
            dead_units: a.alive.iter().filter(|x| !**x).count() as f64 / a.alive.len() as f64,
            grad_in_mean_abs: a.grad_abs / a.grad_n.max(1.0),
            weight_grad_norm: wgrad[plan.ranges[plan.activated[i].weights].clone()].iter().map(|g| g * g).sum::<f64>().sqrt(),
        })
        .collect()
}

pub fn to_csv(rows: &[LayerStats]) -> String {
    let mut s = String::from(HEADER);
    s.push('\n');
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            r.epoch, r.layer, r.pre_mean, r.pre_std, r.post_mean, r.post_std, r.sparsity, r.zero_slope, r.dead_units, r.grad_in_mean_abs, r.weight_grad_norm
        ));
    }
    s
}
