//! Softmax + categorical cross-entropy, computed stably from the logits.

use crate::engine::math::{exp64_f32_shifted, log_sum_exp};

/// Sums over one batch (Keras weights each batch's mean by its size, so an
/// epoch's `loss` is the sum over samples divided by the sample count).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BatchStats {
    pub loss_sum: f64,
    pub correct: usize,
    pub samples: usize,
}

impl BatchStats {
    pub fn add(&mut self, o: BatchStats) {
        self.loss_sum += o.loss_sum;
        self.correct += o.correct;
        self.samples += o.samples;
    }
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.samples.max(1) as f64
    }
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.samples.max(1) as f64
    }
}

/// Per-sample loss `logsumexp(z) − z[label]`; accuracy counts `argmax(z) == label`
/// (first maximum on ties, like `tf.argmax`). With `grad`, writes
/// d(mean loss)/d logits = (softmax − onehot)/n.
pub fn softmax_cross_entropy(logits: &[f32], labels: &[u8], mut grad: Option<&mut [f32]>) -> BatchStats {
    let classes = logits.len() / labels.len();
    let n = labels.len();
    let mut stats = BatchStats { samples: n, ..Default::default() };
    for (s, (z, &y)) in logits.chunks(classes).zip(labels).enumerate() {
        let lse = log_sum_exp(z);
        stats.loss_sum += lse - z[y as usize] as f64;
        let arg = z.iter().enumerate().fold(0, |best, (i, &v)| if v > z[best] { i } else { best });
        stats.correct += (arg == y as usize) as usize;
        if let Some(g) = grad.as_deref_mut() {
            for (c, (gv, &zv)) in g[s * classes..(s + 1) * classes].iter_mut().zip(z).enumerate() {
                let p = exp64_f32_shifted(zv, lse);
                *gv = ((p - (c == y as usize) as u8 as f64) / n as f64) as f32;
            }
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_matches_finite_differences() {
        let z = [0.3f32, -1.2, 2.0, 0.1, 0.0, 1.5];
        let labels = [2u8, 0];
        let mut g = [0f32; 6];
        let s = softmax_cross_entropy(&z, &labels, Some(&mut g));
        assert_eq!(s.correct, 1);
        for i in 0..6 {
            let h = 1e-3;
            let (mut zp, mut zm) = (z, z);
            zp[i] += h;
            zm[i] -= h;
            let f = |z: &[f32]| softmax_cross_entropy(z, &labels, None).mean_loss();
            let fd = (f(&zp) - f(&zm)) / (2.0 * h as f64);
            assert!((g[i] as f64 - fd).abs() < 1e-4, "{i}: {} vs {fd}", g[i]);
        }
    }
}
