//! CPU kernels that apply an [`Activation`] to a layer's output.
//!
//! Elements are laid out `[sample][spatial][channel]` (NHWC; a dense layer is
//! spatial = units, channels = 1). Work is split by sample, so the thread
//! count never changes a result. The function is evaluated 16 elements at a
//! time over [`Lanes`], each lane with the operations of a lone `f32`.

use super::{Activation, Custom};
use crate::engine::cpu::{copy_short, isa_compiled};
use crate::engine::cpu::simd::Isa;
use crate::engine::math::lanes as lanes_of;
use crate::engine::real::{Dual, DualOf, Lanes, Real};
use rayon::prelude::*;
use std::sync::Arc;

/// How a layer's output is grouped for the layer-wise minimum.
#[derive(Clone, Copy, Debug)]
pub struct Groups {
    pub samples: usize,
    pub spatial: usize,
    pub channels: usize,
}

#[allow(clippy::len_without_is_empty)] // a layer's groups are never empty
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

/// Lanes per step of the kernels below.
const W: usize = 32;

/// The function to apply, looked up once per call (an expression's registry
/// entry, not once per element).
enum Resolved {
    /// Index into [`Activation::ALL`].
    Builtin(usize),
    Custom(Arc<Custom>),
}

impl Resolved {
    fn of(act: Activation) -> Resolved {
        match act.custom() {
            Some(c) => Resolved::Custom(c),
            None => Resolved::Builtin(Activation::ALL.iter().position(|&a| a == act).expect("a built-in is in Activation::ALL")),
        }
    }
}

/// A function as a kernel loop applies it. Each built-in is its own type, so
/// each gets a loop compiled for it alone: with the choice made inside the
/// loop, the compiler built the lanes on the stack (store-forwarding stalls
/// in `perf annotate`), and relu's training pass took 1.5× as long.
trait Kernel {
    fn eval<T: Real>(&self, x: T, m: T) -> T;

    /// ∂f/∂x as training uses it, given the derivative `d` of the definition.
    #[inline(always)]
    fn slope(&self, _x: Lanes<W>, _m: Lanes<W>, d: Lanes<W>) -> Lanes<W> {
        d
    }
}

/// The built-in `Activation::ALL[K]`.
struct Builtin<const K: usize>;

impl<const K: usize> Kernel for Builtin<K> {
    #[inline(always)]
    fn eval<T: Real>(&self, x: T, m: T) -> T {
        Activation::ALL[K].eval(x, m)
    }
}

impl Kernel for Custom {
    #[inline(always)]
    fn eval<T: Real>(&self, x: T, m: T) -> T {
        self.forward.eval(x, m)
    }

    /// A straight-through function's own slope expression, or `d`.
    #[inline(always)]
    fn slope(&self, x: Lanes<W>, m: Lanes<W>, d: Lanes<W>) -> Lanes<W> {
        self.grad.as_ref().map_or(d, |g| g.eval(x, m))
    }
}

/// Run `$body` with `$k` bound to the [`Kernel`] of `$f` (a `&Resolved`).
macro_rules! with_kernel {
    ($f:expr, $k:ident => $body:expr) => {{
        const _: () = assert!(Activation::ALL.len() == 6, "give each built-in its arm below");
        match $f {
            Resolved::Builtin(0) => { let $k = &Builtin::<0>; $body }
            Resolved::Builtin(1) => { let $k = &Builtin::<1>; $body }
            Resolved::Builtin(2) => { let $k = &Builtin::<2>; $body }
            Resolved::Builtin(3) => { let $k = &Builtin::<3>; $body }
            Resolved::Builtin(4) => { let $k = &Builtin::<4>; $body }
            Resolved::Builtin(5) => { let $k = &Builtin::<5>; $body }
            Resolved::Builtin(k) => unreachable!("built-in {k} has no arm"),
            Resolved::Custom(c) => { let $k: &Custom = c; $body }
        }
    }};
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

/// Up to `W` values from `v` (zeros past its end).
#[inline(always)]
fn lanes(v: &[f32]) -> Lanes<W> {
    match v.try_into() {
        Ok(full) => Lanes(full),
        Err(_) => Lanes(lanes_of(|i| v.get(i).copied().unwrap_or(0.0))),
    }
}

/// The first `dst.len()` (≤ W) lanes of `v` into `dst`.
#[inline(always)]
fn store(dst: &mut [f32], v: Lanes<W>) {
    match <&mut [f32; W]>::try_from(&mut *dst) {
        Ok(full) => *full = v.0,
        Err(_) => copy_short(dst, &v.0[..dst.len()]),
    }
}

/// The group minima of elements `i0..i0+W` of sample `s` (0 where unused).
#[inline(always)]
fn lane_mins(mins: &[f32], g: Groups, s: usize, i0: usize) -> Lanes<W> {
    if mins.is_empty() {
        return Lanes([0.0; W]);
    }
    let c = g.channels;
    let row = &mins[s * c..(s + 1) * c];
    let ch = i0 % c;
    // Channels wrap within the 16 lanes only for groups narrower than them.
    Lanes(lanes_of(|i| row[if ch + i < c { ch + i } else { (ch + i) % c }]))
}

/// Inference: `y = f(x, m)`.
pub fn forward_eval(act: Activation, g: Groups, x: &[f32], y: &mut [f32], mins_scratch: &mut Vec<f32>) {
    let n = g.len();
    let mins: &[f32] = if act.uses_min() {
        mins_scratch.resize(g.samples * g.channels, 0.0);
        group_mins(&x[..n], g, mins_scratch);
        mins_scratch
    } else {
        &[]
    };
    let (f, isa, ps, linear) = (Resolved::of(act), Isa::detected(), g.per_sample(), act.linear_above_zero());
    y[..n].par_chunks_mut(ps).zip(x[..n].par_chunks(ps)).enumerate().for_each(|(s, (ys, xs))| {
        // SAFETY: the detected instruction set.
        unsafe { eval_sample(isa, &f, g, s, xs, ys, mins, linear) }
    });
}

isa_compiled! {
    fn eval_sample(f: &Resolved, g: Groups, s: usize, x: &[f32], y: &mut [f32], mins: &[f32], linear: Option<f32>) => eval_sample_with
}

#[inline(always)]
fn eval_sample_with(f: &Resolved, g: Groups, s: usize, x: &[f32], y: &mut [f32], mins: &[f32], linear: Option<f32>) {
    with_kernel!(f, f => {
        if let Some(c) = linear {
            // The function needs evaluating only where x <= 0.
            for (y, &v) in y.iter_mut().zip(x) {
                *y = v + c;
            }
            let mut below = AtOrBelowZero { x, next: 0 };
            while let Some((at, n)) = below.batch() {
                let v = f.eval(gather(x, &at, n), Lanes([0.0; W]));
                for (j, &i) in at[..n].iter().enumerate() {
                    y[i] = v.0[j];
                }
            }
            return;
        }
        for (k, (ys, xs)) in y.chunks_mut(W).zip(x.chunks(W)).enumerate() {
            let v = f.eval(lanes(xs), lane_mins(mins, g, s, k * W));
            store(ys, v);
        }
    })
}

/// The positions of the elements where `x <= 0` (false for NaN), `W` at a
/// time (`n` of them valid; fewer only in the last batch). Branch-free: a
/// sample's signs are as good as random, and a mispredicted branch per
/// element cost more than the function it saved. (An iterator, not a
/// function taking a closure: a closure's body would be compiled without
/// the kernel's vector instructions.)
struct AtOrBelowZero<'a> {
    x: &'a [f32],
    next: usize,
}

impl AtOrBelowZero<'_> {
    #[inline(always)]
    fn batch(&mut self) -> Option<([usize; W], usize)> {
        let (mut at, mut n) = ([0usize; W], 0);
        while self.next < self.x.len() {
            let i = self.next;
            self.next += 1;
            at[n] = i;
            n += (self.x[i] <= 0.0) as usize;
            if n == W {
                return Some((at, W));
            }
        }
        (n > 0).then_some((at, n))
    }
}

/// The first `n` of the elements at `at` as lanes (zeros after them, as [`lanes`] pads).
#[inline(always)]
fn gather(x: &[f32], at: &[usize; W], n: usize) -> Lanes<W> {
    Lanes(lanes_of(|j| if j < n { x[at[j]] } else { 0.0 }))
}

/// Training: `y = f(x, m)` and the derivatives the backward pass needs.
pub fn forward_train(act: Activation, g: Groups, x: &[f32], y: &mut [f32], saved: &mut Saved) {
    let n = g.len();
    let lw = act.uses_min();
    if lw {
        group_mins(&x[..n], g, &mut saved.mins);
    }
    let (f, isa, ps, linear) = (Resolved::of(act), Isa::detected(), g.per_sample(), act.linear_above_zero());
    let mins: &[f32] = &saved.mins;
    // SAFETY (both calls): the detected instruction set.
    let per_sample = y[..n].par_chunks_mut(ps).zip(saved.dydx[..n].par_chunks_mut(ps)).zip(x[..n].par_chunks(ps)).enumerate();
    if lw {
        // Layer-wise functions also keep ∂f/∂m.
        per_sample.zip(saved.dydm[..n].par_chunks_mut(ps)).for_each(|((s, ((ys, ds), xs)), dms)| unsafe { train_sample(isa, &f, g, s, xs, ys, ds, dms, mins, None) });
    } else {
        per_sample.for_each(|(s, ((ys, ds), xs))| unsafe { train_sample(isa, &f, g, s, xs, ys, ds, &mut [], mins, linear) });
    }
}

isa_compiled! {
    fn train_sample(f: &Resolved, g: Groups, s: usize, x: &[f32], y: &mut [f32], dydx: &mut [f32], dydm: &mut [f32], mins: &[f32], linear: Option<f32>) => train_sample_with
}

#[inline(always)]
#[allow(clippy::too_many_arguments)] // the sample's inputs, its three outputs, and the linear side
fn train_sample_with(f: &Resolved, g: Groups, s: usize, x: &[f32], y: &mut [f32], dydx: &mut [f32], dydm: &mut [f32], mins: &[f32], linear: Option<f32>) {
    with_kernel!(f, f => {
        if let Some(c) = linear {
            // x + c with slope 1 everywhere first, then the definition where x <= 0.
            for ((y, d), &v) in y.iter_mut().zip(dydx.iter_mut()).zip(x) {
                *y = v + c;
                *d = 1.0;
            }
            let mut below = AtOrBelowZero { x, next: 0 };
            while let Some((at, n)) = below.batch() {
                let (xv, m) = (gather(x, &at, n), Lanes([0.0; W]));
                let r = f.eval(DualOf::var(xv), DualOf::constant(m));
                let d = f.slope(xv, m, r.d);
                for (j, &i) in at[..n].iter().enumerate() {
                    y[i] = r.v.0[j];
                    dydx[i] = d.0[j];
                }
            }
            return;
        }
        for (k, xs) in x.chunks(W).enumerate() {
            let (i0, len) = (k * W, xs.len());
            let (xv, m) = (lanes(xs), lane_mins(mins, g, s, k * W));
            let r = f.eval(DualOf::var(xv), DualOf::constant(m));
            store(&mut y[i0..i0 + len], r.v);
            store(&mut dydx[i0..i0 + len], f.slope(xv, m, r.d));
            if !dydm.is_empty() {
                store(&mut dydm[i0..i0 + len], f.eval(DualOf::constant(xv), DualOf::var(m)).d);
            }
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
        for ((d, &g), &k) in dxs.iter_mut().zip(&dy[base..base + ps]).zip(&saved.dydx[base..base + ps]) {
            *d = g * k;
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

    /// A function evaluated only where x <= 0 (softplus_linear) gives each
    /// element the bits of its definition, in training and in inference,
    /// whatever the mix of signs: NaN, ±0, ±∞, and runs longer than a batch.
    #[test]
    fn evaluating_only_at_or_below_zero_keeps_the_bits() {
        let act = Activation::SoftplusLinear;
        let g = Groups { samples: 3, spatial: 37, channels: 5 };
        let mut x: Vec<f32> = (0..g.len()).map(|i| (((i * 7919) % 201) as f32 - 100.0) / 9.0).collect();
        x[3..9].copy_from_slice(&[f32::NAN, -0.0, 0.0, f32::NEG_INFINITY, f32::INFINITY, -200.0]);
        for v in &mut x[100..100 + 3 * W] {
            *v = -v.abs() - 0.1;
        }
        let mut saved = Saved::with_capacity(act, g);
        let mut y = vec![0.0; g.len()];
        forward_train(act, g, &x, &mut y, &mut saved);
        let mut inferred = vec![0.0; g.len()];
        forward_eval(act, g, &x, &mut inferred, &mut Vec::new());
        for (i, &v) in x.iter().enumerate() {
            let r = act.eval(Dual::var(v), Dual::constant(0.0));
            let bits = (y[i].to_bits(), saved.dydx[i].to_bits(), inferred[i].to_bits());
            assert_eq!(bits, (r.v.to_bits(), r.d.to_bits(), r.v.to_bits()), "element {i} = {v}");
        }
    }

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
