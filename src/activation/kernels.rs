//! CPU kernels that apply an [`Activation`] to a layer's output.
//!
//! Elements are laid out `[sample][spatial][channel]` (NHWC; a dense layer is
//! spatial = units, channels = 1). Work is split by sample, so the thread
//! count never changes a result.

use super::Activation;
use crate::engine::real::Dual;
use rayon::prelude::*;

/// How a layer's output is grouped for the layer-wise minimum.
#[derive(Clone, Copy, Debug)]
pub struct Groups {
    pub samples: usize,
    pub spatial: usize,
    pub channels: usize,
}

impl Groups {
    pub fn per_sample(&self) -> usize {
        self.spatial * self.channels
    }
    pub fn len(&self) -> usize {
        self.samples * self.per_sample()
    }
}

/// What the forward pass keeps for the backward pass.
#[derive(Default, Clone)]
pub struct Saved {
    /// ∂f/∂x per element.
    pub dydx: Vec<f32>,
    /// ∂f/∂m per element (layer-wise functions only).
    pub dydm: Vec<f32>,
    /// The group minimum per (sample, channel) (layer-wise functions only).
    pub mins: Vec<f32>,
}

impl Saved {
    pub fn with_capacity(act: Activation, g: Groups) -> Saved {
        let lw = act.uses_min();
        Saved {
            dydx: vec![0.0; g.len()],
            dydm: if lw { vec![0.0; g.len()] } else { Vec::new() },
            mins: if lw { vec![0.0; g.samples * g.channels] } else { Vec::new() },
        }
    }
}

/// Calls `$body` with `$f` bound to a closure for the concrete activation,
/// so each function gets its own monomorphised loop.
macro_rules! with_fn {
    ($act:expr, $f:ident, $body:expr) => {
        match $act {
            Activation::Relu => { let $f = |x, m| Activation::Relu.eval(x, m); $body }
            Activation::Tanh => { let $f = |x, m| Activation::Tanh.eval(x, m); $body }
            Activation::SignedSqrt => { let $f = |x, m| Activation::SignedSqrt.eval(x, m); $body }
            Activation::SoftplusLinear => { let $f = |x, m| Activation::SoftplusLinear.eval(x, m); $body }
            Activation::ReflectionLinear => { let $f = |x, m| Activation::ReflectionLinear.eval(x, m); $body }
            Activation::ZeroFitLinear => { let $f = |x, m| Activation::ZeroFitLinear.eval(x, m); $body }
            Activation::Custom(_) => {
                let c = $act.custom().unwrap();
                let $f = |x, m| c.forward.eval(x, m);
                $body
            }
        }
    };
}

fn group_mins(x: &[f32], g: Groups, mins: &mut [f32]) {
    let c = g.channels;
    for (xs, ms) in x.chunks(g.per_sample()).zip(mins.chunks_mut(c)) {
        ms.fill(f32::INFINITY);
        for row in xs.chunks(c) {
            for (m, &v) in ms.iter_mut().zip(row) {
                if v < *m {
                    *m = v;
                }
            }
        }
    }
}

/// Inference: `y = f(x, m)`.
pub fn forward_eval(act: Activation, g: Groups, x: &[f32], y: &mut [f32], mins_scratch: &mut Vec<f32>) {
    let n = g.len();
    if act.uses_min() {
        mins_scratch.resize(g.samples * g.channels, 0.0);
        group_mins(&x[..n], g, mins_scratch);
    }
    let mins: &[f32] = mins_scratch;
    let c = g.channels;
    let ps = g.per_sample();
    with_fn!(act, f, {
        y[..n].par_chunks_mut(ps).zip(x[..n].par_chunks(ps)).enumerate().for_each(|(s, (ys, xs))| {
            for (i, (yv, &xv)) in ys.iter_mut().zip(xs).enumerate() {
                let m = if act.uses_min() { mins[s * c + i % c] } else { 0.0 };
                *yv = f(xv, m);
            }
        })
    })
}

/// Training: `y = f(x, m)` and the derivatives the backward pass needs.
pub fn forward_train(act: Activation, g: Groups, x: &[f32], y: &mut [f32], saved: &mut Saved) {
    let n = g.len();
    let lw = act.uses_min();
    if lw {
        group_mins(&x[..n], g, &mut saved.mins);
    }
    let c = g.channels;
    let ps = g.per_sample();
    let mins = &saved.mins;
    let dydm = &mut saved.dydm;
    // A straight-through function gives its slope by a separate expression.
    let slope_override = act.custom().filter(|c| c.grad.is_some());
    with_fn!(act, f, {
        let per_sample = |(s, ((ys, ds), xs)): (usize, ((&mut [f32], &mut [f32]), &[f32]))| {
            for (i, ((yv, dv), &xv)) in ys.iter_mut().zip(ds.iter_mut()).zip(xs).enumerate() {
                let m = if lw { mins[s * c + i % c] } else { 0.0 };
                let r = f(Dual::var(xv), Dual::constant(m));
                *yv = r.v;
                *dv = match &slope_override {
                    Some(o) => o.grad.as_ref().unwrap().eval(xv, m),
                    None => r.d,
                };
            }
        };
        y[..n].par_chunks_mut(ps).zip(saved.dydx[..n].par_chunks_mut(ps)).zip(x[..n].par_chunks(ps)).enumerate().for_each(per_sample);
        if lw {
            dydm[..n].par_chunks_mut(ps).zip(x[..n].par_chunks(ps)).enumerate().for_each(|(s, (ds, xs))| {
                for (i, (dv, &xv)) in ds.iter_mut().zip(xs).enumerate() {
                    *dv = f(Dual::constant(xv), Dual::var(mins[s * c + i % c])).d;
                }
            });
        }
    })
}

/// `dx = dy·∂f/∂x`, plus, for layer-wise functions, `Σ dy·∂f/∂m` of each
/// group shared among the elements equal to its minimum.
pub fn backward(act: Activation, g: Groups, x: &[f32], dy: &[f32], saved: &Saved, dx: &mut [f32]) {
    let n = g.len();
    let ps = g.per_sample();
    let c = g.channels;
    let lw = act.uses_min();
    dx[..n].par_chunks_mut(ps).enumerate().for_each(|(s, dxs)| {
        let base = s * ps;
        for (i, d) in dxs.iter_mut().enumerate() {
            *d = dy[base + i] * saved.dydx[base + i];
        }
        if lw {
            for ch in 0..c {
                let m = saved.mins[s * c + ch];
                let (mut sum, mut ties) = (0f32, 0u32);
                for p in 0..g.spatial {
                    let i = p * c + ch;
                    sum += dy[base + i] * saved.dydm[base + i];
                    ties += (x[base + i] == m) as u32;
                }
                let share = sum / ties as f32;
                for p in 0..g.spatial {
                    let i = p * c + ch;
                    if x[base + i] == m {
                        dxs[i] += share;
                    }
                }
            }
        }
    });
}

/// The activation's values and the slopes training uses, on a grid (charts).
pub fn curve(act: Activation, xs: &[f32], m: f32) -> Vec<(f32, f32, f32)> {
    let custom = act.custom();
    xs.iter()
        .map(|&x| match &custom {
            Some(c) => {
                let (v, d) = c.value_and_slope(x, m);
                (x, v, d)
            }
            None => {
                let r = act.eval(Dual::var(x), Dual::constant(m));
                (x, r.v, r.d)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layer-wise gradient (through the minimum) against central differences.
    #[test]
    fn zero_fit_gradient_flows_through_the_minimum() {
        let g = Groups { samples: 2, spatial: 5, channels: 3 };
        let x: Vec<f32> = (0..g.len()).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
        let w: Vec<f32> = (0..g.len()).map(|i| ((i * 13 % 17) as f32 - 8.0) / 5.0).collect();
        let act = Activation::ZeroFitLinear;
        let mut saved = Saved::with_capacity(act, g);
        let mut y = vec![0.0; g.len()];
        forward_train(act, g, &x, &mut y, &mut saved);
        let mut dx = vec![0.0; g.len()];
        backward(act, g, &x, &w, &saved, &mut dx);
        let objective = |x: &[f32]| -> f64 {
            let mut y = vec![0.0; g.len()];
            forward_eval(act, g, x, &mut y, &mut Vec::new());
            y.iter().zip(&w).map(|(a, b)| *a as f64 * *b as f64).sum()
        };
        for i in 0..g.len() {
            let h = 1e-3;
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += h;
            xm[i] -= h;
            let fd = (objective(&xp) - objective(&xm)) / (2.0 * h as f64);
            assert!((dx[i] as f64 - fd).abs() < 1e-2, "element {i}: {} vs {fd}", dx[i]);
        }
    }
}
