//! The layers, each with its forward and backward pass side by side.
//!
//! A layer value holds its shape only; its parameters live in the model's
//! flat parameter vector. The shapes come from the network's table, which
//! checks the wiring when it is built (`plan.rs`). Tensors are NHWC, so a conv is im2col + one GEMM and its weights are
//! Keras' HWIO layout, `[K·K·CIN, COUT]`; the engine computes it without
//! materialising the im2col matrix (`engine::cpu::conv`).

use crate::engine::cpu::simd::Isa;
use crate::engine::cpu::{conv, isa_compiled};
use crate::engine::cpu::gemm::{gemm, MatRef};
use crate::engine::math::{lanes, or_zero};
use crate::engine::profile::{gemm_flops, part, Mark};
use crate::engine::rng::{Purpose, Rng};
use rayon::prelude::*;

/// A 2-D convolution with bias, in the engine's shape (stride 1, `pad`
/// zeros on each side).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d(pub conv::Conv);

impl Conv2d {
    /// `y = im2col(x)·W + b`.
    pub fn forward(&self, n: usize, w: &[f32], b: &[f32], x: &[f32], y: &mut [f32]) {
        let _gemm = self.part("forward GEMM", n);
        conv::forward_then(self.0, n, &x[..n * self.0.in_len()], w, b, Some(&mut y[..n * self.0.out_len()]), &|_, _| {});
    }

    /// [`Self::forward`], handing each finished run of y to `then` (see
    /// [`conv::Then`]): an element-wise activation applied while the run is
    /// in the cache. Its time is the part's too. Without `y` the runs are
    /// not kept (see [`conv::forward_then`]).
    #[allow(clippy::too_many_arguments)]
    pub fn forward_then(&self, n: usize, w: &[f32], b: &[f32], x: &[f32], y: Option<&mut [f32]>, then: conv::Then) {
        let _gemm = self.part("forward GEMM + activation", n);
        conv::forward_then(self.0, n, &x[..n * self.0.in_len()], w, b, y.map(|y| &mut y[..n * self.0.out_len()]), then);
    }

    /// The profile's part for the forward GEMM over `n` samples.
    fn part(&self, what: &'static str, n: usize) -> Mark {
        let c = self.0;
        part(what, gemm_flops(n * c.positions(), c.cout, c.kdim()))
    }

    /// The weights' gradient, the bias's when `db` is given (a layer
    /// before a batch normalisation has none), and, when `dx` is given, the
    /// input gradient (`x` is the forward pass's input).
    #[allow(clippy::too_many_arguments)]
    pub fn backward(&self, n: usize, w: &[f32], x: &[f32], dy: &[f32], dw: &mut [f32], db: Option<&mut [f32]>, dx: Option<&mut [f32]>) {
        self.backward_with(n, w, x, dy, dw, db, dx.map(|dx| (dx, None)));
    }

    /// [`Self::backward`] with dx, handing each sample's finished input
    /// gradient to `then` (the slope of the activation that x came out of,
    /// applied while it is in the cache). Its time is the part's too.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_then(&self, n: usize, w: &[f32], x: &[f32], dy: &[f32], dw: &mut [f32], db: Option<&mut [f32]>, dx: &mut [f32], then: conv::Then) {
        self.backward_with(n, w, x, dy, dw, db, Some((dx, Some(then))));
    }

    #[allow(clippy::too_many_arguments)]
    fn backward_with(&self, n: usize, w: &[f32], x: &[f32], dy: &[f32], dw: &mut [f32], db: Option<&mut [f32]>, dx: Option<(&mut [f32], Option<conv::Then>)>) {
        let c = self.0;
        let rows = n * c.positions();
        let dy = &dy[..rows * c.cout];
        // The bias gradient is summed in the weight gradient's pass over dy.
        let wgrad = part("weight-gradient GEMM", gemm_flops(c.kdim(), c.cout, rows));
        conv::weight_grad(c, n, &x[..n * c.in_len()], dy, dw, db);
        drop(wgrad);
        if let Some((dx, then)) = dx {
            let what = if then.is_some() { "input-gradient GEMM + slope" } else { "input-gradient GEMM" };
            let _igrad = part(what, gemm_flops(rows, c.kdim(), c.cout));
            conv::input_grad_then(c, n, w, dy, &mut dx[..n * c.in_len()], then.unwrap_or(&|_, _| {}));
        }
    }
}

/// Σ over rows of `dy` (`[rows, cols]`), rows in order.
fn bias_grad(dy: &[f32], cols: usize, db: &mut [f32]) {
    let _bias = part("bias gradient", 0.0);
    conv::bias_grad(dy, cols, db);
}

/// A fully connected layer `y = x·W + b`, W as `[inputs, outputs]` (Keras' layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dense {
    pub inputs: usize,
    pub outputs: usize,
}

impl Dense {
    pub fn forward(&self, n: usize, w: &[f32], b: &[f32], x: &[f32], y: &mut [f32]) {
        let (inputs, outputs) = (self.inputs, self.outputs);
        let _gemm = part("forward GEMM", gemm_flops(n, outputs, inputs));
        for r in y[..n * outputs].chunks_mut(outputs) {
            r.copy_from_slice(b);
        }
        gemm(n, outputs, inputs, MatRef::rows(x, inputs), MatRef::rows(w, outputs), y, outputs, true);
    }

    #[allow(clippy::too_many_arguments)]
    pub fn backward(&self, n: usize, w: &[f32], x: &[f32], dy: &[f32], dw: &mut [f32], db: Option<&mut [f32]>, dx: Option<&mut [f32]>) {
        let (inputs, outputs) = (self.inputs, self.outputs);
        if let Some(db) = db {
            bias_grad(&dy[..n * outputs], outputs, db);
        }
        let wgrad = part("weight-gradient GEMM", gemm_flops(inputs, outputs, n));
        gemm(inputs, outputs, n, MatRef::transposed(x, inputs), MatRef::rows(dy, outputs), dw, outputs, false);
        drop(wgrad);
        if let Some(dx) = dx {
            let _igrad = part("input-gradient GEMM", gemm_flops(n, inputs, outputs));
            gemm(n, inputs, outputs, MatRef::rows(dy, outputs), MatRef::transposed(w, outputs), dx, inputs, false);
        }
    }
}

/// Max pooling 2×2, stride 2, "valid" (an odd last row/column is dropped,
/// like Keras), over an `h × w × c` input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2 {
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl MaxPool2 {
    pub const fn oh(&self) -> usize {
        self.h / 2
    }

    pub const fn ow(&self) -> usize {
        self.w / 2
    }

    pub const fn in_len(&self) -> usize {
        self.h * self.w * self.c
    }

    pub const fn out_len(&self) -> usize {
        self.oh() * self.ow() * self.c
    }

    /// `argmax` keeps, per output, which of the 4 inputs won (first on ties).
    pub fn forward(&self, n: usize, x: &[f32], y: &mut [f32], argmax: &mut [u8]) {
        let isa = Isa::detected();
        let (in_len, out_len) = (self.in_len(), self.out_len());
        let shape = (self.w, self.c, self.oh(), self.ow());
        y[..n * out_len]
            .par_chunks_mut(out_len)
            .zip(argmax[..n * out_len].par_chunks_mut(out_len))
            .zip(x[..n * in_len].par_chunks(in_len))
            // SAFETY: the detected instruction set.
            .for_each(|((ys, am), xs)| unsafe { pool_sample(isa, shape, xs, ys, am) });
    }

    /// The gradient through dropout (`mask`, when training), this pooling
    /// and the element-wise activation before it (`slope`, its ∂f/∂x), in one
    /// pass: `dx = scatter(dy·mask)·slope`. The same operations, in the same
    /// order, as [`Dropout::backward`], [`Self::backward`] and the
    /// activation's backward pass one after another.
    pub fn backward_through(&self, n: usize, dy: &[f32], mask: Option<&[f32]>, argmax: &[u8], slope: &[f32], dx: &mut [f32]) {
        let isa = Isa::detected();
        let (in_len, out_len) = (self.in_len(), self.out_len());
        let len = n * out_len;
        let mask = mask.map(|m| &m[..len]);
        dx[..n * in_len]
            .par_chunks_mut(in_len)
            .zip(slope[..n * in_len].par_chunks(in_len))
            .enumerate()
            .for_each(|(s, (dxs, ks))| {
                let o0 = s * out_len;
                let (dys, am) = (&dy[o0..o0 + out_len], &argmax[o0..o0 + out_len]);
                let ms = mask.map(|m| &m[o0..o0 + out_len]);
                // SAFETY: the detected instruction set.
                unsafe { through_sample(isa, self, dys, ms, am, ks, dxs) }
            });
    }

    pub fn backward(&self, n: usize, dy: &[f32], argmax: &[u8], dx: &mut [f32]) {
        let &MaxPool2 { w, c, .. } = self;
        let (oh, ow, in_len, out_len) = (self.oh(), self.ow(), self.in_len(), self.out_len());
        dx[..n * in_len]
            .par_chunks_mut(in_len)
            .zip(dy[..n * out_len].par_chunks(out_len))
            .zip(argmax[..n * out_len].par_chunks(out_len))
            .for_each(|((dxs, dys), am)| {
                dxs.fill(0.0);
                for oy in 0..oh {
                    for ox in 0..ow {
                        for ch in 0..c {
                            let o = (oy * ow + ox) * c + ch;
                            let q = am[o] as usize;
                            dxs[((2 * oy + q / 2) * w + 2 * ox + q % 2) * c + ch] = dys[o];
                        }
                    }
                }
            });
    }
}

isa_compiled! {
    fn through_sample(pool: &MaxPool2, dy: &[f32], mask: Option<&[f32]>, am: &[u8], slope: &[f32], dx: &mut [f32]) => through_sample_with
}

/// One sample of [`MaxPool2::backward_through`]. The window element that
/// did not win gets +0, chosen with a bit mask ([`or_zero`]: a lane-wise `if` on f32
/// compiled to scalar code), and the multiplication by the slope follows
/// either way, as in the separate passes.
#[inline(always)]
fn through_sample_with(pool: &MaxPool2, dys: &[f32], ms: Option<&[f32]>, am: &[u8], ks: &[f32], dxs: &mut [f32]) {
    let &MaxPool2 { h, w, c } = pool;
    let (oh, ow) = (pool.oh(), pool.ow());
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) * c;
            let (d, k) = (&mut dxs[i..i + c], &ks[i..i + c]);
            let (oy, ox) = (y / 2, x / 2);
            if oy < oh && ox < ow {
                let (o, q) = ((oy * ow + ox) * c, ((y % 2) * 2 + x % 2) as u8);
                let (dys, am) = (&dys[o..o + c], &am[o..o + c]);
                match ms {
                    Some(m) => {
                        let m = &m[o..o + c];
                        for ch in 0..c {
                            d[ch] = or_zero(dys[ch] * m[ch], am[ch] == q) * k[ch];
                        }
                    }
                    None => {
                        for ch in 0..c {
                            d[ch] = or_zero(dys[ch], am[ch] == q) * k[ch];
                        }
                    }
                }
            } else {
                // Dropped by the pooling (an odd last row or column).
                for ch in 0..c {
                    d[ch] = 0.0 * k[ch];
                }
            }
        }
    }
}

isa_compiled! {
    fn pool_sample(shape: (usize, usize, usize, usize), xs: &[f32], ys: &mut [f32], am: &mut [u8]) => pool_sample_with
}

/// One sample's 2 × 2 max pooling; `shape` is (input width, channels,
/// output height, output width). Window element q (row-major) replaces the
/// best so far only when strictly greater, so the first wins ties and a NaN
/// never replaces; written as selects over the channels, which the compiler
/// turns into vector compares and blends.
#[inline(always)]
fn pool_sample_with((w, c, oh, ow): (usize, usize, usize, usize), xs: &[f32], ys: &mut [f32], am: &mut [u8]) {
    for oy in 0..oh {
        for ox in 0..ow {
            let at = |dy: usize, dx: usize| &xs[((2 * oy + dy) * w + 2 * ox + dx) * c..][..c];
            let (x0, x1, x2, x3) = (at(0, 0), at(0, 1), at(1, 0), at(1, 1));
            let o = (oy * ow + ox) * c;
            for (i, (y, a)) in ys[o..o + c].iter_mut().zip(&mut am[o..o + c]).enumerate() {
                let (mut best, mut arg) = (x0[i], 0u8);
                for (q, v) in [(1u8, x1[i]), (2, x2[i]), (3, x3[i])] {
                    let take = v > best;
                    best = if take { v } else { best };
                    arg = if take { q } else { arg };
                }
                *y = best;
                *a = arg;
            }
        }
    }
}

isa_compiled! {
    fn dropout_sample(isa: Isa, rng: &Rng, stream: u64, rate: f32, first_block: u32, mask: &mut [f32], x: &mut [f32]) => dropout_sample_with
}

/// One sample's mask, 16 Philox blocks (64 elements) per draw: element `e`
/// of a draw is word `e % 4` of block `e / 4`.
///
/// Whole draws have a loop of their own, with the mask built as 64 lanes
/// at constant indices and chosen by bit masks; one loop over whole and
/// partial draws compiled to a scalar loop.
#[inline(always)]
fn dropout_sample_with(isa: Isa, rng: &Rng, stream: u64, rate: f32, first_block: u32, mask: &mut [f32], x: &mut [f32]) {
    const B: usize = 16;
    const E: usize = 4 * B;
    let scale = 1.0 / (1.0 - rate);
    // Statements, not a closure: out of line, a closure is compiled for
    // SSE2, not for this kernel's instruction set.
    macro_rules! draw {
        ($g:expr) => {{
            // SAFETY: `isa` is this kernel's, one the CPU has (`isa_compiled!`'s contract).
            let words: [[u32; B]; 4] = unsafe { rng.blocks16(isa, Purpose::Dropout, stream, first_block + ($g * B) as u32) };
            lanes::<f32, E>(|e| {
                or_zero(scale, Rng::unit(words[e % 4][e / 4]) >= rate)
            })
        }};
    }
    let whole = mask.len() / E;
    let (mut ms, mut xs) = (mask.chunks_exact_mut(E), x.chunks_exact_mut(E));
    for (g, (m, v)) in (&mut ms).zip(&mut xs).enumerate() {
        let (m, v) = (<&mut [f32; E]>::try_from(m).expect("a whole draw"), <&mut [f32; E]>::try_from(v).expect("a whole draw"));
        *m = draw!(g);
        for e in 0..E {
            v[e] *= m[e];
        }
    }
    let (m, v) = (ms.into_remainder(), xs.into_remainder());
    if !m.is_empty() {
        let drawn = draw!(whole);
        for ((m, v), &d) in m.iter_mut().zip(v).zip(&drawn) {
            *m = d;
            *v *= d;
        }
    }
}

/// Batch normalisation of each channel of `positions × channels` values per
/// sample, with Keras' semantics: in training, the batch's mean and biased
/// variance over samples and positions, folded into the moving statistics
/// (`moving = moving·momentum + batch·(1 − momentum)`); in inference, the
/// moving statistics. `y = γ·(x − μ)/√(σ² + ε) + β`. Sums over the batch
/// run in f64 in row order, so any thread count and the GPU give the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchNorm {
    pub positions: usize,
    pub channels: usize,
}

/// What a batch normalisation's backward pass needs from its forward pass.
#[derive(Clone, Debug, Default)]
pub struct BatchNormSaved {
    /// `x̂ = (x − μ)/√(σ² + ε)` per element.
    pub xhat: Vec<f32>,
    /// `1/√(σ² + ε)` per channel.
    pub inv_std: Vec<f32>,
    /// Whether μ and σ² were the batch's (training), so that the gradient
    /// flows through them too.
    pub batch_statistics: bool,
}

/// The moving statistics of a batch normalisation, updated in training.
pub struct Moving<'a> {
    pub mean: &'a mut [f32],
    pub variance: &'a mut [f32],
}

impl BatchNorm {
    /// Keras' defaults.
    pub const MOMENTUM: f64 = 0.99;
    pub const EPSILON: f64 = 1e-3;

    /// Values per sample.
    pub const fn per_sample(&self) -> usize {
        self.positions * self.channels
    }

    /// `1/√(σ² + ε)`, in f64 and rounded once.
    fn inv_std(variance: f64) -> f32 {
        (1.0 / (variance + Self::EPSILON).sqrt()) as f32
    }

    /// Per channel, `Σ f(row value, channel)` over the rows of `x`, in f64 in row order.
    fn channel_sums(&self, x: &[f32], f: impl Fn(f32, usize) -> f64) -> Vec<f64> {
        let mut sum = vec![0f64; self.channels];
        for row in x.chunks_exact(self.channels) {
            for (ch, (s, &v)) in sum.iter_mut().zip(row).enumerate() {
                *s += f(v, ch);
            }
        }
        sum
    }

    /// A training pass: normalise by the batch's statistics (`moving`
    /// given: fold them into the moving ones) or, without `batch`, by the
    /// moving statistics; `saved`, when given, keeps what the backward pass needs.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(&self, n: usize, x: &[f32], gamma: &[f32], beta: &[f32], moving: Moving, batch: bool, y: &mut [f32], saved: Option<&mut BatchNormSaved>) {
        let (x, y) = (&x[..n * self.per_sample()], &mut y[..n * self.per_sample()]);
        let (mean, inv_std) = if batch {
            let rows = (n * self.positions) as f64;
            let mean: Vec<f64> = self.channel_sums(x, |v, _| v as f64).into_iter().map(|s| s / rows).collect();
            let variance: Vec<f64> = self
                .channel_sums(x, |v, ch| {
                    let d = v as f64 - mean[ch];
                    d * d
                })
                .into_iter()
                .map(|s| s / rows)
                .collect();
            let (keep, take) = (Self::MOMENTUM as f32, (1.0 - Self::MOMENTUM) as f32);
            for ch in 0..self.channels {
                moving.mean[ch] = moving.mean[ch] * keep + mean[ch] as f32 * take;
                moving.variance[ch] = moving.variance[ch] * keep + variance[ch] as f32 * take;
            }
            (mean.iter().map(|&m| m as f32).collect::<Vec<_>>(), variance.into_iter().map(Self::inv_std).collect::<Vec<_>>())
        } else {
            (moving.mean.to_vec(), moving.variance.iter().map(|&v| Self::inv_std(v as f64)).collect())
        };
        let c = self.channels;
        let normalise = |(xs, ys): (&[f32], &mut [f32]), mut xhat: Option<&mut [f32]>| {
            for (i, (&v, y)) in xs.iter().zip(ys.iter_mut()).enumerate() {
                let ch = i % c;
                let h = (v - mean[ch]) * inv_std[ch];
                *y = gamma[ch] * h + beta[ch];
                if let Some(xh) = xhat.as_deref_mut() {
                    xh[i] = h;
                }
            }
        };
        let chunk = 64 * c;
        match saved {
            Some(saved) => {
                saved.xhat.resize(x.len().max(saved.xhat.len()), 0.0);
                x.par_chunks(chunk).zip(y.par_chunks_mut(chunk)).zip(saved.xhat[..x.len()].par_chunks_mut(chunk)).for_each(|(xy, xh)| normalise(xy, Some(xh)));
                saved.inv_std = inv_std;
                saved.batch_statistics = batch;
            }
            None => x.par_chunks(chunk).zip(y.par_chunks_mut(chunk)).for_each(|xy| normalise(xy, None)),
        }
    }

    /// γ's and β's gradients, and the input gradient: with the batch's
    /// statistics `dx = γ/σ · (dy − mean(dy) − x̂·mean(dy·x̂))`, with the
    /// moving ones `dx = γ/σ · dy`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(&self, n: usize, dy: &[f32], gamma: &[f32], saved: &BatchNormSaved, dgamma: &mut [f32], dbeta: &mut [f32], dx: &mut [f32]) {
        let len = n * self.per_sample();
        let (dy, xhat, dx) = (&dy[..len], &saved.xhat[..len], &mut dx[..len]);
        let c = self.channels;
        let sum_dy = self.channel_sums(dy, |g, _| g as f64);
        let mut sum_dy_xhat = vec![0f64; c];
        for (gs, hs) in dy.chunks_exact(c).zip(xhat.chunks_exact(c)) {
            for ((s, &g), &h) in sum_dy_xhat.iter_mut().zip(gs).zip(hs) {
                *s += g as f64 * h as f64;
            }
        }
        let rows = (n * self.positions) as f32;
        for ch in 0..c {
            dbeta[ch] = sum_dy[ch] as f32;
            dgamma[ch] = sum_dy_xhat[ch] as f32;
        }
        // Per channel: the scale γ/σ, and the means of dy and dy·x̂ (0 with the moving statistics).
        let scale: Vec<f32> = (0..c).map(|ch| gamma[ch] * saved.inv_std[ch]).collect();
        let (mean_dy, mean_dy_xhat): (Vec<f32>, Vec<f32>) = if saved.batch_statistics {
            (0..c).map(|ch| (dbeta[ch] / rows, dgamma[ch] / rows)).unzip()
        } else {
            (vec![0.0; c], vec![0.0; c])
        };
        let chunk = 64 * c;
        dx.par_chunks_mut(chunk).zip(dy.par_chunks(chunk)).zip(xhat.par_chunks(chunk)).for_each(|((dx, dy), xhat)| {
            for (i, ((d, &g), &h)) in dx.iter_mut().zip(dy).zip(xhat).enumerate() {
                let ch = i % c;
                *d = scale[ch] * (g - mean_dy[ch] - h * mean_dy_xhat[ch]);
            }
        });
    }
}

/// Inverted dropout: keep with probability 1 − rate, scale kept values by 1/(1 − rate).
/// The mask element for sample `s`, feature `i` is drawn from the counter
/// (seed, Dropout, stream, s·len + i), so it does not depend on threads.
pub struct Dropout;

impl Dropout {
    /// Draw the mask (as multipliers 0 or 1/(1−rate)) and apply it in place.
    pub fn forward(rng: &Rng, stream: u64, rate: f32, x: &mut [f32], mask: &mut [f32], len: usize) {
        assert!(len.is_multiple_of(4), "dropout: feature count must be a multiple of 4");
        let isa = Isa::detected();
        mask.par_chunks_mut(len).zip(x.par_chunks_mut(len)).enumerate().for_each(|(s, (ms, xs))| {
            // SAFETY: the detected instruction set.
            // The body gets `isa` too, for the draws' vector multiplies.
            unsafe { dropout_sample(isa, isa, rng, stream, rate, (s * len / 4) as u32, ms, xs) }
        });
    }

    pub fn backward(mask: &[f32], d: &mut [f32]) {
        // Chunks of 4096: a task per element would cost more than its multiply.
        d.par_chunks_mut(4096).zip(mask.par_chunks(4096)).for_each(|(g, m)| g.iter_mut().zip(m).for_each(|(g, m)| *g *= m));
    }
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)] // index loops mirror the formulas they check
mod tests {
    //! Finite-difference checks of every layer's backward pass. The objective
    //! is s = Σ g·y for a fixed random upstream gradient g, in f64.
    use super::*;

    fn rand(n: usize, seed: u64) -> Vec<f32> {
        let mut v = vec![0.0; n];
        Rng::new(seed).fill_uniform(Purpose::Synthetic, 0, &mut v);
        v.iter().map(|x| 2.0 * x - 1.0).collect()
    }

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    /// Central difference of `f` in coordinate `i` of `v`.
    fn fd(v: &mut [f32], i: usize, f: &mut dyn FnMut(&[f32]) -> f64) -> f64 {
        let h = 1e-2f32;
        let orig = v[i];
        v[i] = orig + h;
        let up = f(v);
        v[i] = orig - h;
        let down = f(v);
        v[i] = orig;
        (up - down) / (2.0 * h as f64)
    }

    fn assert_close(analytic: f32, numeric: f64, what: &str) {
        assert!((analytic as f64 - numeric).abs() < 2e-3 * numeric.abs().max(1.0), "{what}: analytic {analytic} vs numeric {numeric}");
    }

    fn check_conv(c: conv::Conv) {
        let layer = Conv2d(c);
        let n = 2;
        let mut x = rand(n * c.in_len(), 1);
        let mut w = rand(c.kdim() * c.cout, 2);
        let mut b = rand(c.cout, 3);
        let g = rand(n * c.out_len(), 4);
        let mut y = vec![0.0; n * c.out_len()];
        layer.forward(n, &w, &b, &x, &mut y);
        let (mut dw, mut db, mut dx) = (vec![0.0; w.len()], vec![0.0; c.cout], vec![0.0; x.len()]);
        layer.backward(n, &w, &x, &g, &mut dw, Some(&mut db), Some(&mut dx));
        let s = |x: &[f32], w: &[f32], b: &[f32]| {
            let mut y = vec![0.0; n * c.out_len()];
            layer.forward(n, w, b, x, &mut y);
            dot(&y, &g)
        };
        let (w0, b0, x0) = (w.clone(), b.clone(), x.clone());
        for i in (0..x.len()).step_by(7) {
            assert_close(dx[i], fd(&mut x, i, &mut |x| s(x, &w0, &b0)), "conv dx");
        }
        for i in (0..w.len()).step_by(5) {
            assert_close(dw[i], fd(&mut w, i, &mut |w| s(&x0, w, &b0)), "conv dw");
        }
        for i in 0..c.cout {
            assert_close(db[i], fd(&mut b, i, &mut |b| s(&x0, &w0, b)), "conv db");
        }
    }

    #[test]
    fn conv_gradients_same_and_valid_padding() {
        check_conv(conv::Conv { h: 5, w: 4, cin: 3, cout: 4, k: 3, pad: 1 });
        check_conv(conv::Conv { h: 6, w: 5, cin: 2, cout: 3, k: 3, pad: 0 });
    }

    #[test]
    fn dense_gradients() {
        let d = Dense { inputs: 7, outputs: 5 };
        let n = 3;
        let mut x = rand(n * 7, 5);
        let mut w = rand(35, 6);
        let mut b = rand(5, 7);
        let g = rand(n * 5, 8);
        let mut y = vec![0.0; n * 5];
        d.forward(n, &w, &b, &x, &mut y);
        let (mut dw, mut db, mut dx) = (vec![0.0; 35], vec![0.0; 5], vec![0.0; n * 7]);
        d.backward(n, &w, &x, &g, &mut dw, Some(&mut db), Some(&mut dx));
        let s = |x: &[f32], w: &[f32], b: &[f32]| {
            let mut y = vec![0.0; n * 5];
            d.forward(n, w, b, x, &mut y);
            dot(&y, &g)
        };
        let (w0, b0, x0) = (w.clone(), b.clone(), x.clone());
        for i in 0..x.len() {
            assert_close(dx[i], fd(&mut x, i, &mut |x| s(x, &w0, &b0)), "dense dx");
        }
        for i in 0..w.len() {
            assert_close(dw[i], fd(&mut w, i, &mut |w| s(&x0, w, &b0)), "dense dw");
        }
        for i in 0..5 {
            assert_close(db[i], fd(&mut b, i, &mut |b| s(&x0, &w0, b)), "dense db");
        }
    }

    /// In training (the batch's statistics) and in inference (the moving ones).
    #[test]
    fn batch_norm_gradients_and_moving_statistics() {
        let bn = BatchNorm { positions: 5, channels: 3 };
        let n = 4;
        let mut x = rand(n * bn.per_sample(), 13);
        // Channels far from zero mean and unit variance, as after a convolution.
        for (i, v) in x.iter_mut().enumerate() {
            *v = *v * (1.0 + (i % 3) as f32) + (i % 3) as f32 - 1.0;
        }
        let mut gamma: Vec<f32> = rand(3, 14).iter().map(|v| 1.0 + 0.5 * v).collect();
        let mut beta = rand(3, 15);
        let g = rand(n * bn.per_sample(), 16);
        for batch in [true, false] {
            let (mut mm, mut mv) = (vec![0.1f32, -0.2, 0.3], vec![0.5f32, 2.0, 1.5]);
            let (mm0, mv0) = (mm.clone(), mv.clone());
            let mut y = vec![0.0; x.len()];
            let mut saved = BatchNormSaved::default();
            bn.forward(n, &x, &gamma, &beta, Moving { mean: &mut mm, variance: &mut mv }, batch, &mut y, Some(&mut saved));
            let (mut dgamma, mut dbeta, mut dx) = (vec![0.0; 3], vec![0.0; 3], vec![0.0; x.len()]);
            bn.backward(n, &g, &gamma, &saved, &mut dgamma, &mut dbeta, &mut dx);
            let s = |x: &[f32], gamma: &[f32], beta: &[f32]| {
                let (mut mm, mut mv) = (mm0.clone(), mv0.clone());
                let mut y = vec![0.0; x.len()];
                bn.forward(n, x, gamma, beta, Moving { mean: &mut mm, variance: &mut mv }, batch, &mut y, None);
                dot(&y, &g)
            };
            let (x0, g0, b0) = (x.clone(), gamma.clone(), beta.clone());
            for i in 0..x.len() {
                assert_close(dx[i], fd(&mut x, i, &mut |x| s(x, &g0, &b0)), &format!("batch norm dx (batch statistics: {batch})"));
            }
            for ch in 0..3 {
                assert_close(dgamma[ch], fd(&mut gamma, ch, &mut |gm| s(&x0, gm, &b0)), "batch norm dγ");
                assert_close(dbeta[ch], fd(&mut beta, ch, &mut |bt| s(&x0, &g0, bt)), "batch norm dβ");
            }
            // The moving statistics: momentum 0.99 toward the batch's mean and biased variance.
            for ch in 0..3 {
                let v: Vec<f64> = x.iter().skip(ch).step_by(3).map(|&v| v as f64).collect();
                let mean = v.iter().sum::<f64>() / v.len() as f64;
                let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
                let (want_m, want_v) = if batch { (0.99 * mm0[ch] as f64 + 0.01 * mean, 0.99 * mv0[ch] as f64 + 0.01 * var) } else { (mm0[ch] as f64, mv0[ch] as f64) };
                assert!((mm[ch] as f64 - want_m).abs() < 1e-6 && (mv[ch] as f64 - want_v).abs() < 1e-6, "channel {ch}: moving ({}, {}) vs ({want_m}, {want_v})", mm[ch], mv[ch]);
            }
        }
    }

    #[test]
    fn maxpool_gradients_with_odd_sizes() {
        let m = MaxPool2 { h: 5, w: 7, c: 3 };
        let n = 2;
        // Distinct values at least 0.05 apart, so ±h never changes a window's winner.
        let mut x: Vec<f32> = (0..n * m.in_len()).map(|i| ((i * 7919) % (n * m.in_len())) as f32 * 0.05).collect();
        let g = rand(n * m.out_len(), 9);
        let (mut y, mut arg) = (vec![0.0; n * m.out_len()], vec![0u8; n * m.out_len()]);
        m.forward(n, &x, &mut y, &mut arg);
        let mut dx = vec![0.0; x.len()];
        m.backward(n, &g, &arg, &mut dx);
        for i in 0..x.len() {
            let num = fd(&mut x, i, &mut |x| {
                let (mut y, mut a) = (vec![0.0; n * m.out_len()], vec![0u8; n * m.out_len()]);
                m.forward(n, x, &mut y, &mut a);
                dot(&y, &g)
            });
            assert_close(dx[i], num, "maxpool dx");
        }
        assert_eq!((m.oh(), m.ow()), (2, 3));
    }

    /// Pooling's winners and values are the plain definition's, bit for bit,
    /// with ties, signed zeros and NaNs among the inputs.
    #[test]
    fn maxpool_matches_its_definition_on_ties_zeros_and_nans() {
        let m = MaxPool2 { h: 9, w: 7, c: 19 };
        let n = 3;
        let pool = [1.0f32, -1.0, 0.0, -0.0, f32::NAN, 2.0, 2.0, -3.0];
        let x: Vec<f32> = (0..n * m.in_len()).map(|i| pool[((i * 2654435761usize) >> 7) % pool.len()]).collect();
        let (mut y, mut arg) = (vec![0.0; n * m.out_len()], vec![9u8; n * m.out_len()]);
        m.forward(n, &x, &mut y, &mut arg);
        for s in 0..n {
            for oy in 0..m.oh() {
                for ox in 0..m.ow() {
                    for c in 0..m.c {
                        let (mut best, mut want) = (f32::NEG_INFINITY, 0u8);
                        for (q, (dy, dx)) in [(0, 0), (0, 1), (1, 0), (1, 1)].into_iter().enumerate() {
                            let v = x[s * m.in_len() + ((2 * oy + dy) * m.w + 2 * ox + dx) * m.c + c];
                            if v > best || q == 0 {
                                best = v;
                                want = q as u8;
                            }
                        }
                        let o = s * m.out_len() + (oy * m.ow() + ox) * m.c + c;
                        assert_eq!((y[o].to_bits(), arg[o]), (best.to_bits(), want), "sample {s} ({oy}, {ox}, {c})");
                    }
                }
            }
        }
    }

    /// The one-pass gradient through dropout, pooling and the activation's
    /// slope equals the three passes one after another, bit for bit (odd
    /// sizes, negative and zero slopes, with and without dropout).
    #[test]
    fn backward_through_equals_the_three_passes() {
        let m = MaxPool2 { h: 7, w: 5, c: 20 };
        let n = 3;
        let x = rand(n * m.in_len(), 10);
        let (mut y, mut arg) = (vec![0.0; n * m.out_len()], vec![0u8; n * m.out_len()]);
        m.forward(n, &x, &mut y, &mut arg);
        let mut slope = rand(n * m.in_len(), 11);
        slope[0] = -0.0;
        slope[1] = 0.0;
        let dy = rand(n * m.out_len(), 12);
        let mut mask = vec![0.0; dy.len()];
        Dropout::forward(&Rng::new(3), 1, 0.25, &mut vec![1.0; dy.len()], &mut mask, m.out_len());
        for mask in [Some(&mask[..]), None] {
            let mut g = dy.clone();
            if let Some(m) = mask {
                Dropout::backward(m, &mut g);
            }
            let mut pooled = vec![0.0; n * m.in_len()];
            m.backward(n, &g, &arg, &mut pooled);
            let want: Vec<f32> = pooled.iter().zip(&slope).map(|(g, k)| g * k).collect();
            let mut got = vec![f32::NAN; n * m.in_len()];
            m.backward_through(n, &dy, mask, &arg, &slope, &mut got);
            assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "dropout {}", mask.is_some());
        }
    }

    #[test]
    fn dropout_keeps_the_expected_fraction_and_scales() {
        let rng = Rng::new(11);
        let len = 4000;
        let mut x = vec![1.0f32; 2 * len];
        let mut mask = vec![0.0; 2 * len];
        Dropout::forward(&rng, 5, 0.25, &mut x, &mut mask, len);
        let kept = x.iter().filter(|&&v| v != 0.0).count() as f64 / x.len() as f64;
        assert!((kept - 0.75).abs() < 0.02, "kept {kept}");
        assert!(x.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
        let mut d = vec![2.0f32; 2 * len];
        Dropout::backward(&mask, &mut d);
        assert!(d.iter().zip(&x).all(|(g, v)| *g == 2.0 * v));
        // Element i of sample s is word i mod 4 of block s·len/4 + i/4, as the
        // GPU and earlier runs draw it.
        let (len, rate) = (200, 0.5);
        let mut x = vec![1.0f32; 3 * len];
        let mut m = vec![0.0; 3 * len];
        Dropout::forward(&rng, 9, rate, &mut x, &mut m, len);
        for (i, &v) in m.iter().enumerate() {
            let (s, e) = (i / len, i % len);
            let w = rng.block(Purpose::Dropout, 9, (s * len / 4 + e / 4) as u32)[e % 4];
            assert_eq!(v, if Rng::unit(w) >= rate { 2.0 } else { 0.0 }, "element {i}");
        }
        // Another step draws another mask.
        let mut x2 = vec![1.0f32; 2 * len];
        Dropout::forward(&rng, 6, 0.25, &mut x2, &mut mask, len);
        assert_ne!(x, x2);
    }
}
