//! The two backward products of a convolution when most of dy is exactly 0,
//! computed from dy's non-zero values only.
//!
//! A convolution followed by 2×2 max pooling gets a gradient at one pixel
//! of each window per channel, so at least 3 in 4 of its dy values are +0
//! (and dropout and a zero slope clear more: `bench` read 10–25 % non-zero
//! for conv2 and conv4 of the article's network). The dense kernels spend
//! most of their FMAs adding those zero products.
//!
//! **The bits are the dense kernels'.** Each chain keeps its non-zero terms
//! in their order and leaves out terms `fma(±0, b, s)` = `s + (±0)`, which
//! is `s` itself for every finite `b`, except that `−0 + (+0)` is `+0`.
//! - Input gradient: a tap's chain over the output channels starts from +0
//!   and is added to the pixel's sum, which starts from +0. A sum that
//!   starts from +0 is never −0 (an exact 0 from two values of opposite
//!   signs rounds to +0), and adding a chain that is ±0 to it changes
//!   nothing. So every dx value is the dense one, bit for bit.
//! - Bias gradient: a sum of dy's values from +0, the same: bit for bit.
//! - Weight gradient: the chain `fma(dy, x, s)` from +0 reaches −0 only
//!   where a result rounds to 0 from below (|exact| ≤ 2⁻¹⁵⁰); a zero term
//!   left out after that would have made it +0 again. Step by step, the two
//!   chains are either equal or the sparse one is −0 where the dense one is
//!   +0 (a common non-zero term makes them equal again, whatever the sign
//!   of the zero it is added to). So a sparse result of −0 is the only one
//!   that can be wrong, and each is computed again with the dense chain
//!   ([`dense_chain`]): rare, and then exact.
//! - b = ±∞ or NaN would make `0·b` NaN in the dense chain. So the sparse
//!   path runs only when the dense operand (x for the weight gradient, w
//!   for the input gradient) is finite throughout; otherwise the dense
//!   kernels run.
//!
//! So every bit is the dense kernels', and which path runs, decided from
//! the data (the share of zeros in the first sample's dy), changes only the
//! speed.

#![allow(unsafe_op_in_unsafe_fn)]

use super::{Conv, Cursor, Then, WG_BLOCK};
use crate::engine::cpu::simd::{Isa, Simd};
use crate::engine::cpu::tile::store_row;
use crate::engine::cpu::{isa_dispatch, thread_scratch, with_packed, SendPtr, Shapes};
use crate::engine::profile;
use rayon::prelude::*;

/// At most this share of a sample's dy non-zero for the sparse kernels.
/// Each non-zero term costs about one vector load per FMA here (B's rows
/// are not shared between output channels), against about one per 1.6 in
/// the dense kernels, so past about half the dense ones are faster.
const MOST_NONZERO: f64 = 0.4;

/// Whether the sparse kernels should run for this dy: judged from the first
/// sample's `per` values (a speed decision; the bits are the same).
pub(super) fn mostly_zero(dy: &[f32], per: usize) -> bool {
    let first = &dy[..per.min(dy.len())];
    (nonzero(first) as f64) <= MOST_NONZERO * first.len() as f64
}

/// How many values of `v` are not ±0 (NaN counts as non-zero).
fn nonzero(v: &[f32]) -> usize {
    v.iter().filter(|x| **x != 0.0).count()
}

/// "N % non-zero" for `bench`'s list of paths: the share of the product's
/// terms that a sparse kernel computes.
fn nonzero_share(dy: &[f32]) -> String {
    format!("{:.0} % non-zero", 100.0 * nonzero(dy) as f64 / dy.len().max(1) as f64)
}

/// Whether every value of `v` is finite (neither ±∞ nor NaN).
pub(super) fn all_finite(v: &[f32]) -> bool {
    const EXP: u32 = 0x7f80_0000;
    // Branch-free per chunk, so it runs as vector code.
    v.par_chunks(1 << 16).all(|c| c.iter().fold(0u32, |any, x| any | u32::from(x.to_bits() & EXP == EXP)) == 0)
}

/// Bit `j` set where `row[j]` is not ±0 (NaN counts as non-zero): `row`
/// holds at most 64 values.
#[inline(always)]
fn nonzero_bits(row: &[f32]) -> u64 {
    debug_assert!(row.len() <= 64);
    row.iter().enumerate().fold(0u64, |m, (j, x)| m | (u64::from(x.to_bits() << 1 != 0) << j))
}

/// The sparse weight gradient's block: the k·k taps × `NV` vectors of
/// input channels of one output channel, summed in registers over a list
/// of rows (18 vectors on AVX-512: the 9 taps' chains are independent, so
/// the FMAs do not wait on each other's latency).
const WEIGHT_GRAD_SPARSE: Shapes = Shapes { avx512: (9, 2), avx2: (9, 1), scalar: (9, 4) };

/// Whether [`weight_grad`] can compute this convolution over `n` samples:
/// no padding (a row's taps are then always inside x), `k·k` taps of its
/// block, whole blocks of channels, dy's rows of 1 to 64 channels, and
/// x's offsets within a u32.
pub(super) fn weight_grad_fits(isa: Isa, g: &Conv, n: usize) -> bool {
    let taps_and_channels = g.k * g.k == WEIGHT_GRAD_SPARSE.rows(isa) && g.cin.is_multiple_of(WEIGHT_GRAD_SPARSE.columns(isa));
    g.pad == 0 && taps_and_channels && (1..=64).contains(&g.cout) && n * g.in_len() <= u32::MAX as usize
}

struct WeightGrad<'a> {
    g: Conv,
    n: usize,
    x: &'a [f32],
    dy: &'a [f32],
    /// The result, `[cout][kd]`.
    dwt: SendPtr,
    db: Option<SendPtr>,
    tasks: usize,
}

/// The weight gradient (and the bias gradient, with `db`) as
/// [`super::weight_grad`] computes it, from dy's non-zero values: each task
/// owns some output channels and walks all rows a block at a time, listing
/// for each of its channels the block's rows where dy is not 0, then
/// running each channel's chains over its list. Call it where
/// [`weight_grad_fits`] holds and x is finite.
pub(super) fn weight_grad(isa: Isa, g: Conv, n: usize, x: &[f32], dy: &[f32], dw: &mut [f32], db: Option<SendPtr>) {
    let kd = g.kdim();
    let tasks = rayon::current_num_threads().clamp(1, g.cout);
    profile::path(|| format!("{}, sparse: the rows where dy is not 0 ({}), {}×{} blocks of taps × channels per output channel (k = {})", isa.name(), nonzero_share(dy), WEIGHT_GRAD_SPARSE.rows(isa), WEIGHT_GRAD_SPARSE.columns(isa), n * g.positions()));
    with_packed(g.cout * kd, |dwt| {
        let f = WeightGrad { g, n, x, dy, dwt: SendPtr(dwt.as_mut_ptr()), db, tasks };
        // SAFETY: each task writes its own output channels' rows of dwt and values of db.
        (0..tasks).into_par_iter().with_max_len(1).for_each(|t| unsafe { weight_grad_task(isa, &f, t) });
        for k in 0..kd {
            for co in 0..g.cout {
                let v = dwt[co * kd + k];
                dw[k * g.cout + co] = if v.to_bits() == (-0.0f32).to_bits() { dense_chain(g, n, x, dy, k, co) } else { v };
            }
        }
    });
}

/// `dw[k, co]` by the dense chain: over every row in order, from +0, the
/// zero terms included (see the module's notes on −0). Scalar: it runs
/// only for the rare result that the sparse chain left at −0.
fn dense_chain(g: Conv, n: usize, x: &[f32], dy: &[f32], k: usize, co: usize) -> f32 {
    let (tap, c) = (k / g.cin, k % g.cin);
    let (ky, kx) = (tap / g.k, tap % g.k);
    let mut at = Cursor::at(&g, 0);
    let mut sum = 0.0f32;
    for r in 0..n * g.positions() {
        // No padding: the tap's pixel is inside the sample.
        let pixel = (at.s * g.h + at.oy + ky) * g.w + at.ox + kx;
        sum = dy[r * g.cout + co].mul_add(x[pixel * g.cin + c], sum);
        at.next(&g);
    }
    sum
}

isa_dispatch! {
    fn weight_grad_task(f: &WeightGrad, t: usize) => weight_grad_task_with per WEIGHT_GRAD_SPARSE
}

#[inline(always)]
unsafe fn weight_grad_task_with<S: Simd, const TAPS: usize, const NV: usize>(f: &WeightGrad, t: usize) {
    let (g, ch, l) = (f.g, NV * S::LANES, S::LANES);
    let (c0, c1) = (t * g.cout / f.tasks, (t + 1) * g.cout / f.tasks);
    let (channels, kd, rows) = (c1 - c0, g.kdim(), f.n * g.positions());
    // Per channel of the task: the block's rows where dy is not 0, as x's
    // offset of the row's first tap (a u32 kept in an f32's bits: the
    // scratch is f32), and dy's value there.
    let (mut lens, mut sums) = ([0usize; 64], [0.0f32; 64]);
    let (offs, vals) = thread_scratch(2 * channels * WG_BLOCK).split_at_mut(channels * WG_BLOCK);
    // Where tap t reads, from the row's first tap.
    let tap_off: [usize; TAPS] = std::array::from_fn(|t| (t / g.k * g.w + t % g.k) * g.cin);
    let mut at = Cursor::at(&g, 0);
    let x = f.x.as_ptr();
    for r0 in (0..rows).step_by(WG_BLOCK) {
        let kc = WG_BLOCK.min(rows - r0);
        lens[..channels].fill(0);
        for r in r0..r0 + kc {
            let row = &f.dy[r * g.cout + c0..][..channels];
            let base = ((at.s * g.h + at.oy) * g.w + at.ox) * g.cin;
            let mut m = nonzero_bits(row);
            while m != 0 {
                let j = m.trailing_zeros() as usize;
                m &= m - 1;
                let i = j * WG_BLOCK + lens[j];
                (offs[i], vals[i]) = (f32::from_bits(base as u32), row[j]);
                lens[j] += 1;
            }
            at.next(&g);
        }
        for (j, &len) in lens[..channels].iter().enumerate() {
            let (offs, vals) = (&offs[j * WG_BLOCK..][..len], &vals[j * WG_BLOCK..][..len]);
            for v in vals {
                sums[j] += v;
            }
            let out = f.dwt.0.add((c0 + j) * kd);
            for c in (0..g.cin).step_by(ch) {
                let mut acc = [[S::zero(); NV]; TAPS];
                if r0 > 0 {
                    for (tap, a) in acc.iter_mut().enumerate() {
                        for (v, s) in a.iter_mut().enumerate() {
                            *s = S::load(out.add(tap * g.cin + c + v * l));
                        }
                    }
                }
                for (&off, val) in offs.iter().zip(vals) {
                    let (dy, b) = (S::splat(val), x.add(off.to_bits() as usize + c));
                    for (a, &to) in acc.iter_mut().zip(&tap_off) {
                        for (v, s) in a.iter_mut().enumerate() {
                            *s = S::fma(dy, S::load(b.add(to + v * l)), *s);
                        }
                    }
                }
                for (tap, a) in acc.iter().enumerate() {
                    for (v, s) in a.iter().enumerate() {
                        S::store(out.add(tap * g.cin + c + v * l), *s);
                    }
                }
            }
        }
    }
    if let Some(db) = f.db {
        std::ptr::copy_nonoverlapping(sums.as_ptr(), db.0.add(c0), channels);
    }
}

/// The sparse input gradient's block: the k·k taps × `NV` vectors of
/// input channels of one output row's `dcol` (18 vectors on AVX-512, 9 on
/// AVX2's 16 registers), summed in registers over the row's non-zero values.
const INPUT_GRAD_SPARSE: Shapes = Shapes { avx512: (9, 2), avx2: (9, 1), scalar: (9, 4) };

/// Whether [`input_grad`] can compute this convolution: `k·k` taps of its
/// block, and dy's rows of at most 64 channels.
pub(super) fn input_grad_fits(isa: Isa, g: &Conv) -> bool {
    g.k * g.k == INPUT_GRAD_SPARSE.rows(isa) && g.cout <= 64
}

struct InputGrad<'a> {
    g: Conv,
    /// w per output channel: channel co, tap t, then `width` input
    /// channels (zero-padded), so that a value of dy reads its 9 taps'
    /// vectors side by side. (In the dense kernel's layout, tap-major, they
    /// lay 4 KiB apart for conv2, all in one set of L1's: `perf` put most of
    /// this kernel's time on those loads.)
    wt: &'a [f32],
    width: usize,
    dy: &'a [f32],
    dx: SendPtr,
}

/// [`super::input_grad_then`] from dy's non-zero values: per sample, each
/// output row's `dcol` from its non-zero (channel, value) pairs, then each
/// pixel's sum over its taps. Call it where [`input_grad_fits`] holds and
/// w is finite.
pub(super) fn input_grad(isa: Isa, g: Conv, n: usize, w: &[f32], dy: &[f32], dx: &mut [f32], then: Then) {
    let (taps, width) = (g.k * g.k, g.cin.next_multiple_of(INPUT_GRAD_SPARSE.columns(isa)));
    profile::path(|| format!("{}, sparse: each output row's dcol for all {taps} taps from dy's non-zero values ({}), {} channels at a time, then col2im (k ≤ {} per tap)", isa.name(), nonzero_share(dy), INPUT_GRAD_SPARSE.columns(isa), g.cout));
    with_packed(g.cout * taps * width, |wt| {
        for co in 0..g.cout {
            for t in 0..taps {
                let dst = &mut wt[(co * taps + t) * width..][..width];
                for (c, d) in dst.iter_mut().enumerate() {
                    *d = if c < g.cin { w[(t * g.cin + c) * g.cout + co] } else { 0.0 };
                }
            }
        }
        let f = InputGrad { g, wt, width, dy, dx: SendPtr(dx.as_mut_ptr()) };
        // SAFETY: each sample writes only its own part of dx.
        (0..n).into_par_iter().for_each(|s| unsafe {
            input_grad_sample(isa, &f, s);
            (then)(s * g.in_len(), std::slice::from_raw_parts_mut(f.dx.0.add(s * g.in_len()), g.in_len()));
        });
    });
}

isa_dispatch! {
    fn input_grad_sample(f: &InputGrad, s: usize) => input_grad_sample_with per INPUT_GRAD_SPARSE
}

/// One sample's dx, a row of the output at a time:
/// - `dcol` for each position of the row and each tap, the chain over the
///   output channels where dy is not 0 (all taps together: one pass over
///   the row's values, and independent chains), kept for the last k rows;
/// - then each input row whose taps those rows complete: a pixel's sum of
///   its taps' `dcol`, the taps in reverse, the order col2im adds them in
///   (as the dense kernel, [`super::input_grad_sample_with`]).
#[inline(always)]
unsafe fn input_grad_sample_with<S: Simd, const TAPS: usize, const NV: usize>(f: &InputGrad, s: usize) {
    let (g, l, cv, width) = (f.g, S::LANES, NV * S::LANES, f.width);
    let (ow, oh) = (g.ow(), g.oh());
    let dy = f.dy.as_ptr().add(s * g.positions() * g.cout);
    let dx = f.dx.0.add(s * g.in_len());
    // dcol of the last k output rows: row oy in slot oy % k, `[ox][tap][width]`.
    let line = ow * TAPS * width;
    let (ring, rest) = thread_scratch(g.k * line + 64).split_at_mut(g.k * line);
    let vals = &mut rest[..64];
    let mut chans = [0usize; 64];
    let mut next = 0;
    for iy in 0..g.h {
        // The output rows that reach input row iy: up to iy + pad.
        while next < oh && next <= iy + g.pad {
            for ox in 0..ow {
                let row = std::slice::from_raw_parts(dy.add((next * ow + ox) * g.cout), g.cout);
                let mut e = 0;
                let mut m = nonzero_bits(row);
                while m != 0 {
                    let j = m.trailing_zeros() as usize;
                    m &= m - 1;
                    (chans[e], vals[e]) = (j * TAPS * width, row[j]);
                    e += 1;
                }
                let out = ring.as_mut_ptr().add(next % g.k * line + ox * TAPS * width);
                for c in (0..width).step_by(cv) {
                    let mut acc = [[S::zero(); NV]; TAPS];
                    for (&co, val) in chans[..e].iter().zip(&vals[..e]) {
                        let a = S::splat(val);
                        for (tap, t) in acc.iter_mut().enumerate() {
                            let b = f.wt.as_ptr().add(co + tap * width + c);
                            for (v, x) in t.iter_mut().enumerate() {
                                *x = S::fma(a, S::load(b.add(v * l)), *x);
                            }
                        }
                    }
                    for (tap, t) in acc.iter().enumerate() {
                        for (v, x) in t.iter().enumerate() {
                            S::store(out.add(tap * width + c + v * l), *x);
                        }
                    }
                }
            }
            next += 1;
        }
        let y = iy + g.pad;
        for ix in 0..g.w {
            let x = ix + g.pad;
            for c in (0..g.cin).step_by(cv) {
                let mut acc = [S::zero(); NV];
                for j in 0..TAPS {
                    let tap = TAPS - 1 - j;
                    // Below 0 wraps to far above the output's size.
                    let (oy, ox) = (y.wrapping_sub(tap / g.k), x.wrapping_sub(tap % g.k));
                    if oy < oh && ox < ow {
                        let part = ring.as_ptr().add(oy % g.k * line + (ox * TAPS + tap) * width + c);
                        for (v, a) in acc.iter_mut().enumerate() {
                            *a = S::add(*a, S::load(part.add(v * l)));
                        }
                    }
                }
                store_row::<S, NV>(dx.add((iy * g.w + ix) * g.cin + c), &acc, g.cin - c);
            }
        }
    }
}
