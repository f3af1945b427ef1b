//! The layers, each with its forward and backward pass side by side.
//!
//! Shapes live in the types (`Conv2d<H, W, CIN, COUT, K, PAD>`): the layer
//! types are zero-sized, their parameters live in the model's flat parameter
//! vector, and a mis-wired network fails to compile (see `model.rs`).
//! Tensors are NHWC, so a conv is im2col + one GEMM and its weights are
//! Keras' HWIO layout, `[K·K·CIN, COUT]`; the engine computes it without
//! materialising the im2col matrix (`engine::cpu::conv`).

use crate::engine::cpu::simd::Isa;
use crate::engine::cpu::{conv, isa_compiled};
use crate::engine::cpu::gemm::{gemm, MatRef};
use crate::engine::profile::{gemm_flops, part};
use crate::engine::rng::{Purpose, Rng};
use rayon::prelude::*;

/// A 2-D convolution, stride 1, `PAD` zeros on each side, with bias.
pub struct Conv2d<const H: usize, const W: usize, const CIN: usize, const COUT: usize, const K: usize, const PAD: usize>;

impl<const H: usize, const W: usize, const CIN: usize, const COUT: usize, const K: usize, const PAD: usize> Conv2d<H, W, CIN, COUT, K, PAD> {
    pub const H: usize = H;
    pub const W: usize = W;
    pub const OH: usize = H + 2 * PAD - K + 1;
    pub const OW: usize = W + 2 * PAD - K + 1;
    /// Length of one im2col row: (ky, kx, cin).
    const KDIM: usize = K * K * CIN;
    pub const IN_LEN: usize = H * W * CIN;
    pub const OUT_LEN: usize = Self::OH * Self::OW * COUT;
    pub const COL_LEN: usize = Self::OH * Self::OW * Self::KDIM;
    #[cfg(test)]
    const WEIGHTS: usize = Self::KDIM * COUT;

    /// The shape, for the engine's convolution kernels.
    const SHAPE: conv::Conv = conv::Conv { h: H, w: W, cin: CIN, cout: COUT, k: K, pad: PAD };

    /// `y = im2col(x)·W + b`.
    pub fn forward(n: usize, w: &[f32], b: &[f32], x: &[f32], y: &mut [f32]) {
        let _gemm = part("forward GEMM", gemm_flops(n * Self::OH * Self::OW, COUT, Self::KDIM));
        conv::forward(Self::SHAPE, n, &x[..n * Self::IN_LEN], w, b, &mut y[..n * Self::OUT_LEN]);
    }

    /// Parameter gradients and, when `dx` is given, the input gradient
    /// (`x` is the forward pass's input).
    #[allow(clippy::too_many_arguments)]
    pub fn backward(n: usize, w: &[f32], x: &[f32], dy: &[f32], dw: &mut [f32], db: &mut [f32], dx: Option<&mut [f32]>) {
        let rows = n * Self::OH * Self::OW;
        let dy = &dy[..rows * COUT];
        bias_grad(dy, COUT, db);
        let wgrad = part("weight-gradient GEMM", gemm_flops(Self::KDIM, COUT, rows));
        conv::weight_grad(Self::SHAPE, n, &x[..n * Self::IN_LEN], dy, dw);
        drop(wgrad);
        if let Some(dx) = dx {
            let _igrad = part("input-gradient GEMM", gemm_flops(rows, Self::KDIM, COUT));
            conv::input_grad(Self::SHAPE, n, w, dy, &mut dx[..n * Self::IN_LEN]);
        }
    }
}

/// Σ over rows of `dy` (`[rows, cols]`), rows in order.
fn bias_grad(dy: &[f32], cols: usize, db: &mut [f32]) {
    let _bias = part("bias gradient", 0.0);
    conv::bias_grad(dy, cols, db);
}

/// A fully connected layer `y = x·W + b`, W as `[IN, OUT]` (Keras' layout).
pub struct Dense<const IN: usize, const OUT: usize>;

impl<const IN: usize, const OUT: usize> Dense<IN, OUT> {
    pub const IN: usize = IN;
    pub const OUT: usize = OUT;

    pub fn forward(n: usize, w: &[f32], b: &[f32], x: &[f32], y: &mut [f32]) {
        let _gemm = part("forward GEMM", gemm_flops(n, OUT, IN));
        for r in y[..n * OUT].chunks_mut(OUT) {
            r.copy_from_slice(b);
        }
        gemm(n, OUT, IN, MatRef::rows(x, IN), MatRef::rows(w, OUT), y, OUT, true);
    }

    #[allow(clippy::too_many_arguments)]
    pub fn backward(n: usize, w: &[f32], x: &[f32], dy: &[f32], dw: &mut [f32], db: &mut [f32], dx: Option<&mut [f32]>) {
        bias_grad(&dy[..n * OUT], OUT, db);
        let wgrad = part("weight-gradient GEMM", gemm_flops(IN, OUT, n));
        gemm(IN, OUT, n, MatRef::transposed(x, IN), MatRef::rows(dy, OUT), dw, OUT, false);
        drop(wgrad);
        if let Some(dx) = dx {
            let _igrad = part("input-gradient GEMM", gemm_flops(n, IN, OUT));
            gemm(n, IN, OUT, MatRef::rows(dy, OUT), MatRef::transposed(w, OUT), dx, IN, false);
        }
    }
}

/// Max pooling 2×2, stride 2, "valid" (an odd last row/column is dropped, like Keras).
pub struct MaxPool2<const H: usize, const W: usize, const C: usize>;

impl<const H: usize, const W: usize, const C: usize> MaxPool2<H, W, C> {
    pub const H: usize = H;
    pub const W: usize = W;
    pub const C: usize = C;
    pub const OH: usize = H / 2;
    pub const OW: usize = W / 2;
    pub const IN_LEN: usize = H * W * C;
    pub const OUT_LEN: usize = Self::OH * Self::OW * C;

    /// `argmax` keeps, per output, which of the 4 inputs won (first on ties).
    pub fn forward(n: usize, x: &[f32], y: &mut [f32], argmax: &mut [u8]) {
        let isa = Isa::detected();
        y[..n * Self::OUT_LEN]
            .par_chunks_mut(Self::OUT_LEN)
            .zip(argmax[..n * Self::OUT_LEN].par_chunks_mut(Self::OUT_LEN))
            .zip(x[..n * Self::IN_LEN].par_chunks(Self::IN_LEN))
            // SAFETY: the detected instruction set.
            .for_each(|((ys, am), xs)| unsafe { pool_sample(isa, (W, C, Self::OH, Self::OW), xs, ys, am) });
    }

    /// The gradient through dropout (`mask`, when training), this pooling
    /// and the element-wise activation before it (`slope`, its ∂f/∂x), in one
    /// pass: `dx = scatter(dy·mask)·slope`. The same operations, in the same
    /// order, as [`Dropout::backward`], [`Self::backward`] and the
    /// activation's backward pass one after another.
    pub fn backward_through(n: usize, dy: &[f32], mask: Option<&[f32]>, argmax: &[u8], slope: &[f32], dx: &mut [f32]) {
        let len = n * Self::OUT_LEN;
        let mask = mask.map(|m| &m[..len]);
        dx[..n * Self::IN_LEN]
            .par_chunks_mut(Self::IN_LEN)
            .zip(slope[..n * Self::IN_LEN].par_chunks(Self::IN_LEN))
            .enumerate()
            .for_each(|(s, (dxs, ks))| {
                let o0 = s * Self::OUT_LEN;
                let (dys, am) = (&dy[o0..o0 + Self::OUT_LEN], &argmax[o0..o0 + Self::OUT_LEN]);
                let ms = mask.map(|m| &m[o0..o0 + Self::OUT_LEN]);
                for y in 0..H {
                    for x in 0..W {
                        let i = (y * W + x) * C;
                        let (d, k) = (&mut dxs[i..i + C], &ks[i..i + C]);
                        let (oy, ox) = (y / 2, x / 2);
                        if oy < Self::OH && ox < Self::OW {
                            let (o, q) = ((oy * Self::OW + ox) * C, ((y % 2) * 2 + x % 2) as u8);
                            for c in 0..C {
                                let g = match ms {
                                    Some(m) => dys[o + c] * m[o + c],
                                    None => dys[o + c],
                                };
                                d[c] = (if am[o + c] == q { g } else { 0.0 }) * k[c];
                            }
                        } else {
                            // Dropped by the pooling (an odd last row or column).
                            for c in 0..C {
                                d[c] = 0.0 * k[c];
                            }
                        }
                    }
                }
            });
    }

    pub fn backward(n: usize, dy: &[f32], argmax: &[u8], dx: &mut [f32]) {
        dx[..n * Self::IN_LEN]
            .par_chunks_mut(Self::IN_LEN)
            .zip(dy[..n * Self::OUT_LEN].par_chunks(Self::OUT_LEN))
            .zip(argmax[..n * Self::OUT_LEN].par_chunks(Self::OUT_LEN))
            .for_each(|((dxs, dys), am)| {
                dxs.fill(0.0);
                for oy in 0..Self::OH {
                    for ox in 0..Self::OW {
                        for c in 0..C {
                            let o = (oy * Self::OW + ox) * C + c;
                            let q = am[o] as usize;
                            dxs[((2 * oy + q / 2) * W + 2 * ox + q % 2) * C + c] = dys[o];
                        }
                    }
                }
            });
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
    fn dropout_sample(rng: &Rng, stream: u64, rate: f32, first_block: u32, mask: &mut [f32], x: &mut [f32]) => dropout_sample_with
}

/// One sample's mask, 16 Philox blocks (64 elements) per draw.
#[inline(always)]
fn dropout_sample_with(rng: &Rng, stream: u64, rate: f32, first_block: u32, mask: &mut [f32], x: &mut [f32]) {
    const B: usize = 16;
    let scale = 1.0 / (1.0 - rate);
    for (g, (ms, xs)) in mask.chunks_mut(4 * B).zip(x.chunks_mut(4 * B)).enumerate() {
        let words: [[u32; B]; 4] = rng.blocks(Purpose::Dropout, stream, first_block + (g * B) as u32);
        for (e, (m, v)) in ms.iter_mut().zip(xs.iter_mut()).enumerate() {
            let keep = Rng::unit(words[e % 4][e / 4]) >= rate;
            *m = if keep { scale } else { 0.0 };
            *v *= *m;
        }
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
            unsafe { dropout_sample(isa, rng, stream, rate, (s * len / 4) as u32, ms, xs) }
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

    fn check_conv<const H: usize, const W: usize, const CI: usize, const CO: usize, const K: usize, const P: usize>() {
        type C<const H: usize, const W: usize, const CI: usize, const CO: usize, const K: usize, const P: usize> = Conv2d<H, W, CI, CO, K, P>;
        let n = 2;
        let mut x = rand(n * C::<H, W, CI, CO, K, P>::IN_LEN, 1);
        let mut w = rand(C::<H, W, CI, CO, K, P>::WEIGHTS, 2);
        let mut b = rand(CO, 3);
        let g = rand(n * C::<H, W, CI, CO, K, P>::OUT_LEN, 4);
        let mut y = vec![0.0; n * C::<H, W, CI, CO, K, P>::OUT_LEN];
        C::<H, W, CI, CO, K, P>::forward(n, &w, &b, &x, &mut y);
        let (mut dw, mut db, mut dx) = (vec![0.0; w.len()], vec![0.0; CO], vec![0.0; x.len()]);
        C::<H, W, CI, CO, K, P>::backward(n, &w, &x, &g, &mut dw, &mut db, Some(&mut dx));
        let s = |x: &[f32], w: &[f32], b: &[f32]| {
            let mut y = vec![0.0; n * C::<H, W, CI, CO, K, P>::OUT_LEN];
            C::<H, W, CI, CO, K, P>::forward(n, w, b, x, &mut y);
            dot(&y, &g)
        };
        let (w0, b0, x0) = (w.clone(), b.clone(), x.clone());
        for i in (0..x.len()).step_by(7) {
            assert_close(dx[i], fd(&mut x, i, &mut |x| s(x, &w0, &b0)), "conv dx");
        }
        for i in (0..w.len()).step_by(5) {
            assert_close(dw[i], fd(&mut w, i, &mut |w| s(&x0, w, &b0)), "conv dw");
        }
        for i in 0..CO {
            assert_close(db[i], fd(&mut b, i, &mut |b| s(&x0, &w0, b)), "conv db");
        }
    }

    #[test]
    fn conv_gradients_same_and_valid_padding() {
        check_conv::<5, 4, 3, 4, 3, 1>();
        check_conv::<6, 5, 2, 3, 3, 0>();
    }

    #[test]
    fn dense_gradients() {
        type D = Dense<7, 5>;
        let n = 3;
        let mut x = rand(n * 7, 5);
        let mut w = rand(35, 6);
        let mut b = rand(5, 7);
        let g = rand(n * 5, 8);
        let mut y = vec![0.0; n * 5];
        D::forward(n, &w, &b, &x, &mut y);
        let (mut dw, mut db, mut dx) = (vec![0.0; 35], vec![0.0; 5], vec![0.0; n * 7]);
        D::backward(n, &w, &x, &g, &mut dw, &mut db, Some(&mut dx));
        let s = |x: &[f32], w: &[f32], b: &[f32]| {
            let mut y = vec![0.0; n * 5];
            D::forward(n, w, b, x, &mut y);
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

    #[test]
    fn maxpool_gradients_with_odd_sizes() {
        type M = MaxPool2<5, 7, 3>;
        let n = 2;
        // Distinct values at least 0.05 apart, so ±h never changes a window's winner.
        let mut x: Vec<f32> = (0..n * M::IN_LEN).map(|i| ((i * 7919) % (n * M::IN_LEN)) as f32 * 0.05).collect();
        let g = rand(n * M::OUT_LEN, 9);
        let (mut y, mut arg) = (vec![0.0; n * M::OUT_LEN], vec![0u8; n * M::OUT_LEN]);
        M::forward(n, &x, &mut y, &mut arg);
        let mut dx = vec![0.0; x.len()];
        M::backward(n, &g, &arg, &mut dx);
        for i in 0..x.len() {
            let num = fd(&mut x, i, &mut |x| {
                let (mut y, mut a) = (vec![0.0; n * M::OUT_LEN], vec![0u8; n * M::OUT_LEN]);
                M::forward(n, x, &mut y, &mut a);
                dot(&y, &g)
            });
            assert_close(dx[i], num, "maxpool dx");
        }
        assert_eq!((M::OH, M::OW), (2, 3));
    }

    /// Pooling's winners and values are the plain definition's, bit for bit,
    /// with ties, signed zeros and NaNs among the inputs.
    #[test]
    fn maxpool_matches_its_definition_on_ties_zeros_and_nans() {
        type M = MaxPool2<9, 7, 19>;
        let n = 3;
        let pool = [1.0f32, -1.0, 0.0, -0.0, f32::NAN, 2.0, 2.0, -3.0];
        let x: Vec<f32> = (0..n * M::IN_LEN).map(|i| pool[((i * 2654435761usize) >> 7) % pool.len()]).collect();
        let (mut y, mut arg) = (vec![0.0; n * M::OUT_LEN], vec![9u8; n * M::OUT_LEN]);
        M::forward(n, &x, &mut y, &mut arg);
        for s in 0..n {
            for oy in 0..M::OH {
                for ox in 0..M::OW {
                    for c in 0..M::C {
                        let (mut best, mut want) = (f32::NEG_INFINITY, 0u8);
                        for (q, (dy, dx)) in [(0, 0), (0, 1), (1, 0), (1, 1)].into_iter().enumerate() {
                            let v = x[s * M::IN_LEN + ((2 * oy + dy) * M::W + 2 * ox + dx) * M::C + c];
                            if v > best || q == 0 {
                                best = v;
                                want = q as u8;
                            }
                        }
                        let o = s * M::OUT_LEN + (oy * M::OW + ox) * M::C + c;
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
        type M = MaxPool2<7, 5, 20>;
        let n = 3;
        let x = rand(n * M::IN_LEN, 10);
        let (mut y, mut arg) = (vec![0.0; n * M::OUT_LEN], vec![0u8; n * M::OUT_LEN]);
        M::forward(n, &x, &mut y, &mut arg);
        let mut slope = rand(n * M::IN_LEN, 11);
        slope[0] = -0.0;
        slope[1] = 0.0;
        let dy = rand(n * M::OUT_LEN, 12);
        let mut mask = vec![0.0; dy.len()];
        Dropout::forward(&Rng::new(3), 1, 0.25, &mut vec![1.0; dy.len()], &mut mask, M::OUT_LEN);
        for mask in [Some(&mask[..]), None] {
            let mut g = dy.clone();
            if let Some(m) = mask {
                Dropout::backward(m, &mut g);
            }
            let mut pooled = vec![0.0; n * M::IN_LEN];
            M::backward(n, &g, &arg, &mut pooled);
            let want: Vec<f32> = pooled.iter().zip(&slope).map(|(g, k)| g * k).collect();
            let mut got = vec![f32::NAN; n * M::IN_LEN];
            M::backward_through(n, &dy, mask, &arg, &slope, &mut got);
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
