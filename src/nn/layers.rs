//! The layers, each with its forward and backward pass side by side.
//!
//! Shapes live in the types (`Conv2d<H, W, CIN, COUT, K, PAD>`): the layer
//! types are zero-sized, their parameters live in the model's flat parameter
//! vector, and a mis-wired network fails to compile (see `model.rs`).
//! Tensors are NHWC, so a conv is im2col + one GEMM and its weights are
//! Keras' HWIO layout, `[K·K·CIN, COUT]`.

use crate::engine::gemm::{gemm, MatRef};
use crate::engine::rng::{Purpose, Rng};
use rayon::prelude::*;

/// A 2-D convolution, stride 1, `PAD` zeros on each side, with bias.
pub struct Conv2d<const H: usize, const W: usize, const CIN: usize, const COUT: usize, const K: usize, const PAD: usize>;

impl<const H: usize, const W: usize, const CIN: usize, const COUT: usize, const K: usize, const PAD: usize> Conv2d<H, W, CIN, COUT, K, PAD> {
    pub const H: usize = H;
    pub const W: usize = W;
    pub const CIN: usize = CIN;
    pub const COUT: usize = COUT;
    pub const OH: usize = H + 2 * PAD - K + 1;
    pub const OW: usize = W + 2 * PAD - K + 1;
    /// Length of one im2col row: (ky, kx, cin).
    pub const KDIM: usize = K * K * CIN;
    pub const IN_LEN: usize = H * W * CIN;
    pub const OUT_LEN: usize = Self::OH * Self::OW * COUT;
    pub const COL_LEN: usize = Self::OH * Self::OW * Self::KDIM;
    pub const WEIGHTS: usize = Self::KDIM * COUT;
    pub const FAN_IN: usize = Self::KDIM;
    pub const FAN_OUT: usize = K * K * COUT;

    /// Unfold one sample's input patches into rows of the im2col matrix.
    fn im2col(x: &[f32], col: &mut [f32]) {
        for oy in 0..Self::OH {
            for ox in 0..Self::OW {
                let row = &mut col[(oy * Self::OW + ox) * Self::KDIM..][..Self::KDIM];
                for ky in 0..K {
                    let iy = (oy + ky) as isize - PAD as isize;
                    for kx in 0..K {
                        let ix = (ox + kx) as isize - PAD as isize;
                        let dst = &mut row[(ky * K + kx) * CIN..][..CIN];
                        if iy < 0 || ix < 0 || iy >= H as isize || ix >= W as isize {
                            dst.fill(0.0);
                        } else {
                            dst.copy_from_slice(&x[(iy as usize * W + ix as usize) * CIN..][..CIN]);
                        }
                    }
                }
            }
        }
    }

    /// Fold one sample's im2col gradient back onto the input (scatter-add, fixed order).
    fn col2im(dcol: &[f32], dx: &mut [f32]) {
        dx.fill(0.0);
        for oy in 0..Self::OH {
            for ox in 0..Self::OW {
                let row = &dcol[(oy * Self::OW + ox) * Self::KDIM..][..Self::KDIM];
                for ky in 0..K {
                    let iy = (oy + ky) as isize - PAD as isize;
                    if iy < 0 || iy >= H as isize {
                        continue;
                    }
                    for kx in 0..K {
                        let ix = (ox + kx) as isize - PAD as isize;
                        if ix < 0 || ix >= W as isize {
                            continue;
                        }
                        let dst = &mut dx[(iy as usize * W + ix as usize) * CIN..][..CIN];
                        for (d, s) in dst.iter_mut().zip(&row[(ky * K + kx) * CIN..][..CIN]) {
                            *d += s;
                        }
                    }
                }
            }
        }
    }

    /// `y = im2col(x)·W + b`; keeps `col` for the backward pass.
    pub fn forward(n: usize, w: &[f32], b: &[f32], x: &[f32], col: &mut [f32], y: &mut [f32]) {
        col[..n * Self::COL_LEN]
            .par_chunks_mut(Self::COL_LEN)
            .zip(x[..n * Self::IN_LEN].par_chunks(Self::IN_LEN))
            .for_each(|(c, xs)| Self::im2col(xs, c));
        let rows = n * Self::OH * Self::OW;
        for r in y[..rows * COUT].chunks_mut(COUT) {
            r.copy_from_slice(b);
        }
        gemm(rows, COUT, Self::KDIM, MatRef::rows(col, Self::KDIM), MatRef::rows(w, COUT), y, COUT, true);
    }

    /// Parameter gradients and, when `dx` is given, the input gradient.
    /// `dcol` is scratch of the size of `col`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(n: usize, w: &[f32], col: &[f32], dy: &[f32], dw: &mut [f32], db: &mut [f32], dcol: &mut [f32], dx: Option<&mut [f32]>) {
        let rows = n * Self::OH * Self::OW;
        bias_grad(&dy[..rows * COUT], COUT, db);
        gemm(Self::KDIM, COUT, rows, MatRef::transposed(col, Self::KDIM), MatRef::rows(dy, COUT), dw, COUT, false);
        if let Some(dx) = dx {
            gemm(rows, Self::KDIM, COUT, MatRef::rows(dy, COUT), MatRef::transposed(w, COUT), dcol, Self::KDIM, false);
            dx[..n * Self::IN_LEN]
                .par_chunks_mut(Self::IN_LEN)
                .zip(dcol[..n * Self::COL_LEN].par_chunks(Self::COL_LEN))
                .for_each(|(d, c)| Self::col2im(c, d));
        }
    }
}

/// Σ over rows of `dy` (`[rows, cols]`), rows in order.
fn bias_grad(dy: &[f32], cols: usize, db: &mut [f32]) {
    db.fill(0.0);
    for r in dy.chunks(cols) {
        for (d, v) in db.iter_mut().zip(r) {
            *d += v;
        }
    }
}

/// A fully connected layer `y = x·W + b`, W as `[IN, OUT]` (Keras' layout).
pub struct Dense<const IN: usize, const OUT: usize>;

impl<const IN: usize, const OUT: usize> Dense<IN, OUT> {
    pub const IN: usize = IN;
    pub const OUT: usize = OUT;
    pub const WEIGHTS: usize = IN * OUT;
    pub const FAN_IN: usize = IN;
    pub const FAN_OUT: usize = OUT;

    pub fn forward(n: usize, w: &[f32], b: &[f32], x: &[f32], y: &mut [f32]) {
        for r in y[..n * OUT].chunks_mut(OUT) {
            r.copy_from_slice(b);
        }
        gemm(n, OUT, IN, MatRef::rows(x, IN), MatRef::rows(w, OUT), y, OUT, true);
    }

    #[allow(clippy::too_many_arguments)]
    pub fn backward(n: usize, w: &[f32], x: &[f32], dy: &[f32], dw: &mut [f32], db: &mut [f32], dx: Option<&mut [f32]>) {
        bias_grad(&dy[..n * OUT], OUT, db);
        gemm(IN, OUT, n, MatRef::transposed(x, IN), MatRef::rows(dy, OUT), dw, OUT, false);
        if let Some(dx) = dx {
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
        y[..n * Self::OUT_LEN]
            .par_chunks_mut(Self::OUT_LEN)
            .zip(argmax[..n * Self::OUT_LEN].par_chunks_mut(Self::OUT_LEN))
            .zip(x[..n * Self::IN_LEN].par_chunks(Self::IN_LEN))
            .for_each(|((ys, am), xs)| {
                for oy in 0..Self::OH {
                    for ox in 0..Self::OW {
                        for c in 0..C {
                            let mut best = f32::NEG_INFINITY;
                            let mut arg = 0u8;
                            for (q, (dy, dx)) in [(0, 0), (0, 1), (1, 0), (1, 1)].into_iter().enumerate() {
                                let v = xs[((2 * oy + dy) * W + 2 * ox + dx) * C + c];
                                if v > best || q == 0 {
                                    best = v;
                                    arg = q as u8;
                                }
                            }
                            let o = (oy * Self::OW + ox) * C + c;
                            ys[o] = best;
                            am[o] = arg;
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

/// Inverted dropout: keep with probability 1 − rate, scale kept values by 1/(1 − rate).
/// The mask element for sample `s`, feature `i` is drawn from the counter
/// (seed, Dropout, stream, s·len + i), so it does not depend on threads.
pub struct Dropout;

impl Dropout {
    /// Draw the mask (as multipliers 0 or 1/(1−rate)) and apply it in place.
    pub fn forward(rng: &Rng, stream: u64, rate: f32, x: &mut [f32], mask: &mut [f32], len: usize) {
        assert!(len % 4 == 0, "dropout: feature count must be a multiple of 4");
        let scale = 1.0 / (1.0 - rate);
        mask.par_chunks_mut(len).zip(x.par_chunks_mut(len)).enumerate().for_each(|(s, (ms, xs))| {
            let first_block = (s * len / 4) as u32;
            for (b, (m4, x4)) in ms.chunks_mut(4).zip(xs.chunks_mut(4)).enumerate() {
                let words = rng.block(Purpose::Dropout, stream, first_block + b as u32);
                for ((m, v), w) in m4.iter_mut().zip(x4.iter_mut()).zip(words) {
                    let keep = Rng::unit(w) >= rate;
                    *m = if keep { scale } else { 0.0 };
                    *v *= *m;
                }
            }
        });
    }

    pub fn backward(mask: &[f32], d: &mut [f32]) {
        d.par_iter_mut().zip(mask.par_iter()).for_each(|(g, m)| *g *= m);
    }
}
