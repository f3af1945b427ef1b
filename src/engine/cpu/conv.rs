//! Convolutions (stride 1, zero padding, NHWC, HWIO weights) as matrix
//! products that never build the whole im2col matrix.
//!
//! The arithmetic is the im2col formulation's, element for element:
//! - forward: `y[row, co] = chain over kd of col[row, kd]·w[kd, co]`, started from the bias;
//! - input gradient: `dcol[row, kd] = chain over co of dy[row, co]·w[kd, co]` from 0, then
//!   col2im adds each `dcol` value onto its input pixel, visiting rows in raster order
//!   and, within a row, the kernel taps in order;
//! - weight gradient: `dw[kd, co] = chain over all rows (samples, then positions) of
//!   col[row, kd]·dy[row, co]` from 0; the bias gradient sums `dy` over rows in order
//!   (in the same pass, while each block of dy's rows is in cache).
//!
//! What changes is where the operands live: a tile's im2col rows are built in
//! a small per-thread buffer that stays in L1, the input gradient keeps a
//! block of pixels in registers while it adds their taps' chains in col2im's
//! order, and the weight gradient reads
//! x in place through a table of each tap's pixels, a block of rows at a
//! time. Inputs with taps narrower than a panel (conv1's 3 channels) build
//! no im2col rows at all: both the forward pass and the weight gradient
//! read a copy of x with its padding written out. Where most of dy is 0
//! (a convolution before max pooling), both gradients are computed from
//! dy's non-zero values alone ([`sparse`]), with the same bits.

#![allow(unsafe_op_in_unsafe_fn)]

use super::simd::{prefetch, Isa, Simd};
use super::tile::{strided, tile, tile_and_b_sums, tile_sum, Start};
use super::{isa_dispatch, thread_scratch, with_packed, SendPtr, Shapes};
use crate::engine::profile;
use rayon::prelude::*;

mod sparse;

/// The shape of a convolution layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv {
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub pad: usize,
}

impl Conv {
    pub fn oh(&self) -> usize {
        self.h + 2 * self.pad - self.k + 1
    }
    pub fn ow(&self) -> usize {
        self.w + 2 * self.pad - self.k + 1
    }
    /// Output positions per sample (rows of the im2col matrix).
    pub fn positions(&self) -> usize {
        self.oh() * self.ow()
    }
    /// Length of an im2col row: (ky, kx, cin).
    pub fn kdim(&self) -> usize {
        self.k * self.k * self.cin
    }
    pub fn in_len(&self) -> usize {
        self.h * self.w * self.cin
    }
    pub fn out_len(&self) -> usize {
        self.positions() * self.cout
    }

    /// The input pixel that output position (oy, ox) reads through tap
    /// (ky, kx), or None where that falls in the zero padding.
    #[inline(always)]
    pub fn source(&self, (oy, ox): (usize, usize), ky: usize, kx: usize) -> Option<usize> {
        let iy = (oy + ky).checked_sub(self.pad).filter(|&v| v < self.h)?;
        let ix = (ox + kx).checked_sub(self.pad).filter(|&v| v < self.w)?;
        Some(iy * self.w + ix)
    }

    /// A full im2col row: output position (oy, ox) of one sample `x`, zeros
    /// in the padding. Each kernel row's in-bounds taps are one copy, made
    /// of whole and masked vectors of `S` (a segment is 3 to 192 values, too
    /// short for a `memcpy` call or an element-by-element loop to pay).
    #[inline(always)]
    unsafe fn im2col<S: Simd>(&self, x: &[f32], (oy, ox): (usize, usize), dst: &mut [f32]) {
        let (k, cin) = (self.k, self.cin);
        // Taps kx in lo..hi read inside the image.
        let lo = self.pad.saturating_sub(ox).min(k);
        let hi = (self.w + self.pad).saturating_sub(ox).clamp(lo, k);
        let d = dst[..k * k * cin].as_mut_ptr();
        for ky in 0..k {
            let seg = d.add(ky * k * cin);
            match (oy + ky).checked_sub(self.pad).filter(|&iy| iy < self.h) {
                Some(iy) if hi > lo => {
                    zero_lanes::<S>(seg, lo * cin);
                    let from = (iy * self.w + ox + lo - self.pad) * cin;
                    let n = (hi - lo) * cin;
                    copy_lanes::<S>(seg.add(lo * cin), x[from..from + n].as_ptr(), n);
                    zero_lanes::<S>(seg.add(hi * cin), (k - hi) * cin);
                }
                _ => zero_lanes::<S>(seg, k * cin),
            }
        }
    }
}

/// `n` values from `src` to `dst` as whole vectors of `S`; the last one
/// overlaps the one before it (the same values written twice) rather than
/// masked, as masked stores are slow on some parts (Zen 3: conv1's im2col
/// rows of 9 values). Only runs shorter than a vector are masked.
///
/// # Safety
/// `S`'s instruction set; `src` readable and `dst` writable for `n` values.
#[inline(always)]
unsafe fn copy_lanes<S: Simd>(dst: *mut f32, src: *const f32, n: usize) {
    if n < S::LANES {
        if n > 0 {
            S::store_first(dst, S::load_first(src, n), n);
        }
        return;
    }
    let mut i = 0;
    while i + S::LANES <= n {
        S::store(dst.add(i), S::load(src.add(i)));
        i += S::LANES;
    }
    if i < n {
        let last = n - S::LANES;
        S::store(dst.add(last), S::load(src.add(last)));
    }
}

/// `n` zeros at `dst`, as [`copy_lanes`] writes.
#[inline(always)]
unsafe fn zero_lanes<S: Simd>(dst: *mut f32, n: usize) {
    if n < S::LANES {
        if n > 0 {
            S::store_first(dst, S::zero(), n);
        }
        return;
    }
    let mut i = 0;
    while i + S::LANES <= n {
        S::store(dst.add(i), S::zero());
        i += S::LANES;
    }
    if i < n {
        S::store(dst.add(n - S::LANES), S::zero());
    }
}

/// Output positions in order — (sample, oy, ox) — stepping without a division per row.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    s: usize,
    oy: usize,
    ox: usize,
}

impl Cursor {
    fn at(g: &Conv, row: usize) -> Cursor {
        let (s, p) = (row / g.positions(), row % g.positions());
        Cursor { s, oy: p / g.ow(), ox: p % g.ow() }
    }
    #[inline(always)]
    fn next(&mut self, g: &Conv) {
        self.skip(g, 1);
    }
    /// `run` positions on, no further than the end of the output row.
    #[inline(always)]
    fn skip(&mut self, g: &Conv, run: usize) {
        debug_assert!(self.ox + run <= g.ow());
        self.ox += run;
        if self.ox == g.ow() {
            self.ox = 0;
            self.oy += 1;
            if self.oy == g.oh() {
                self.oy = 0;
                self.s += 1;
            }
        }
    }
    fn pos(&self) -> (usize, usize) {
        (self.oy, self.ox)
    }
}

/// `b` (`rows × cols`, row-major) as panels of `nr` columns, zero-padded:
/// `panel q, row r, column j` at `(q·rows + r)·nr + j`.
fn pack_panels(b: &[f32], rows: usize, cols: usize, nr: usize, out: &mut [f32]) {
    for (q, panel) in out.chunks_mut(rows * nr).enumerate().take(cols.div_ceil(nr)) {
        let (j0, w) = (q * nr, nr.min(cols - q * nr));
        for (r, dst) in panel.chunks_mut(nr).enumerate() {
            dst[..w].copy_from_slice(&b[r * cols + j0..][..w]);
            dst[w..].fill(0.0);
        }
    }
}

/// The forward pass's blocks.
const FORWARD: Shapes = Shapes { avx512: (12, 2), avx2: (6, 2), scalar: (4, 4) };

struct Forward<'a> {
    g: Conv,
    n: usize,
    x: &'a [f32],
    /// The weights as panels (see [`pack_panels`]).
    w: &'a [f32],
    bias: &'a [f32],
    /// y, when it is kept.
    y: Option<SendPtr>,
    then: Then<'a>,
}

/// What a pass does with each run of its output that it finishes: called
/// with the run's first index in the output and its values, on the thread
/// that computed them, while they are in its cache (an element-wise
/// activation, or the slope of the activation that the input went through).
/// It must not enter rayon or use `thread_scratch`: the run may live in
/// the thread's scratch buffer (see [`forward_then`]).
pub type Then<'a> = &'a (dyn Fn(usize, &mut [f32]) + Sync);

/// `y = im2col(x)·w + bias` for `n` samples, handing each finished run of
/// y's rows to `then`; the runs cover y's `n` samples once. Without `y`,
/// each run is computed in a small buffer of the thread's that stays in
/// its cache, and y is not kept: when only the activation's values and
/// slopes are wanted, conv1 and conv2 each write 8 MB less.
pub fn forward_then(g: Conv, n: usize, x: &[f32], w: &[f32], bias: &[f32], y: Option<&mut [f32]>, then: Then) {
    forward_on(Isa::detected(), g, n, x, w, bias, y, then)
}

#[allow(clippy::too_many_arguments)]
fn forward_on(isa: Isa, g: Conv, n: usize, x: &[f32], w: &[f32], bias: &[f32], y: Option<&mut [f32]>, then: Then) {
    let (kd, rows) = (g.kdim(), n * g.positions());
    assert!(x.len() >= n * g.in_len() && w.len() == kd * g.cout && bias.len() == g.cout && y.as_ref().is_none_or(|y| y.len() >= rows * g.cout));
    let y = y.map(|y| SendPtr(y.as_mut_ptr()));
    let (nr, mr) = (FORWARD.columns(isa), FORWARD.rows(isa));
    if !g.cin.is_multiple_of(nr) {
        return forward_narrow(isa, g, n, x, w, bias, y, then);
    }
    profile::path(|| format!("{}, {mr}×{nr} blocks, im2col rows built per block (k = {kd})", isa.name()));
    with_packed(g.cout.div_ceil(nr) * kd * nr, |wp| {
        pack_panels(w, kd, g.cout, nr, wp);
        let f = Forward { g, n, x, w: wp, bias, y, then };
        let blocks = rows.div_ceil(mr);
        // SAFETY: each block writes its own rows of y (the bounds were checked
        // above) or of its thread's scratch, which `then` leaves alone.
        (0..blocks).into_par_iter().with_min_len(8).for_each(|t| unsafe { forward_block(isa, &f, t) });
    });
}

isa_dispatch! {
    fn forward_block(f: &Forward, t: usize) => forward_block_with per FORWARD
}

#[inline(always)]
unsafe fn forward_block_with<S: Simd, const MR: usize, const NV: usize>(f: &Forward, t: usize) {
    let (g, kd, nr) = (f.g, f.g.kdim(), NV * S::LANES);
    let total = f.n * g.positions();
    let (r0, rows) = (t * MR, MR.min(total - t * MR));
    let (a, out) = thread_scratch(MR * kd + if f.y.is_none() { MR * g.cout } else { 0 }).split_at_mut(MR * kd);
    let y = match f.y {
        Some(y) => y.0.add(r0 * g.cout),
        None => out.as_mut_ptr(),
    };
    let mut at = Cursor::at(&g, r0);
    for (i, dst) in a.chunks_mut(kd).enumerate() {
        if i < rows {
            g.im2col::<S>(&f.x[at.s * g.in_len()..][..g.in_len()], at.pos(), dst);
            at.next(&g);
        } else {
            dst.fill(0.0);
        }
    }
    for q in 0..g.cout.div_ceil(nr) {
        let w = f.w.as_ptr().add(q * kd * nr);
        tile::<S, MR, NV>(
            kd,
            strided(a.as_ptr(), kd, 1),
            |k| w.add(k * nr),
            g.cout - q * nr,
            |i| if i < rows { y.add(i * g.cout + q * nr) } else { std::ptr::null_mut() },
            Start::Row(f.bias.as_ptr().add(q * nr)),
        );
    }
    (f.then)(r0 * g.cout, std::slice::from_raw_parts_mut(y, rows * g.cout));
}

/// The forward pass for inputs with taps narrower than a panel (conv1's 3
/// channels, k = 27), without im2col rows: building them cost as much as
/// their products. x is copied with its zero padding written out, so that
/// for a block of MR positions in one output row, `A[i, k]` is the block's
/// first pixel + `off[k]` + `i·cin`. A row's last block computes rows past
/// its end and drops them. The chains are [`forward_block`]'s.
#[allow(clippy::too_many_arguments)]
fn forward_narrow(isa: Isa, g: Conv, n: usize, x: &[f32], w: &[f32], bias: &[f32], y: Option<SendPtr>, then: Then) {
    let (kd, nr, mr) = (g.kdim(), FORWARD_NARROW.columns(isa), FORWARD_NARROW.rows(isa));
    let (per, wp) = padded_shape(&g);
    // A row's last block reads up to MR − 1 pixels past the row (the rows it drops).
    let xp_len = n * per + mr * g.cin;
    let panels_len = g.cout.div_ceil(nr) * kd * nr;
    profile::path(|| format!("{}, {mr}×{nr} blocks, x read in place from a padded copy (k = {kd})", isa.name()));
    with_packed(panels_len + xp_len, |packed| {
        let (panels, xp) = packed.split_at_mut(panels_len);
        pack_panels(w, kd, g.cout, nr, panels);
        padded_copy(&g, n, x, xp);
        // k = (ky, kx, c): kernel row ky is k·cin values in a row of xp.
        let off: Vec<usize> = (0..kd).map(|k| k / (g.k * g.cin) * wp * g.cin + k % (g.k * g.cin)).collect();
        let f = ForwardNarrow { g, per, wp, xp, off: &off, w: panels, bias, y, then };
        let blocks = n * g.oh() * g.ow().div_ceil(mr);
        // SAFETY: each block writes its own rows of y, or of its thread's
        // scratch, which `then` leaves alone.
        (0..blocks).into_par_iter().with_min_len(8).for_each(|t| unsafe { forward_narrow_block(isa, &f, t) });
    });
}

/// Values per sample, and pixels per row, of x with its padding written out.
fn padded_shape(g: &Conv) -> (usize, usize) {
    let (hp, wp) = (g.h + 2 * g.pad, g.w + 2 * g.pad);
    (hp * wp * g.cin, wp)
}

/// x's `n` samples with their zero padding written out (see [`padded_shape`])
/// into `xp`, whose values past them are zeroed too.
fn padded_copy(g: &Conv, n: usize, x: &[f32], xp: &mut [f32]) {
    let ((per, wp), row) = (padded_shape(g), g.w * g.cin);
    xp.fill(0.0);
    for s in 0..n {
        for iy in 0..g.h {
            xp[s * per + ((iy + g.pad) * wp + g.pad) * g.cin..][..row].copy_from_slice(&x[s * g.in_len() + iy * row..][..row]);
        }
    }
}

struct ForwardNarrow<'a> {
    g: Conv,
    /// Values per sample, and pixels per row, of the padded copy of x.
    per: usize,
    wp: usize,
    xp: &'a [f32],
    /// Where A's column k lies from a block's first pixel.
    off: &'a [usize],
    /// The weights as panels (see [`pack_panels`]).
    w: &'a [f32],
    bias: &'a [f32],
    /// y, when it is kept.
    y: Option<SendPtr>,
    then: Then<'a>,
}

/// [`forward_narrow`]'s blocks. With AVX-512 8 rows, not the general
/// block's 12: LLVM loads all of a step's A values before its FMAs when they
/// come through the table of offsets, and 12 of them beside 24 sums and 2 of
/// B spilled sums to the stack on every step (22 % of the peak). Eight also
/// divide conv1's 32-pixel rows, where 12 computed 4 rows in 36 to drop them.
/// (AVX2's 6 × 2 fit its 16 registers without a spill.)
const FORWARD_NARROW: Shapes = Shapes { avx512: (8, 2), ..FORWARD };

isa_dispatch! {
    fn forward_narrow_block(f: &ForwardNarrow, t: usize) => forward_narrow_block_with per FORWARD_NARROW
}

#[inline(always)]
unsafe fn forward_narrow_block_with<S: Simd, const MR: usize, const NV: usize>(f: &ForwardNarrow, t: usize) {
    let (g, kd, nr) = (f.g, f.g.kdim(), NV * S::LANES);
    let chunks = g.ow().div_ceil(MR);
    // Output row `line` (sample, oy), positions ox0.. of it.
    let (line, ox0) = (t / chunks, t % chunks * MR);
    let (s, oy) = (line / g.oh(), line % g.oh());
    let rows = MR.min(g.ow() - ox0);
    let (a, off) = (f.xp.as_ptr().add(s * f.per + (oy * f.wp + ox0) * g.cin), f.off.as_ptr());
    let first = (line * g.ow() + ox0) * g.cout;
    let y = match f.y {
        Some(y) => y.0.add(first),
        None => thread_scratch(MR * g.cout).as_mut_ptr(),
    };
    for q in 0..g.cout.div_ceil(nr) {
        let w = f.w.as_ptr().add(q * kd * nr);
        tile::<S, MR, NV>(
            kd,
            (|k| a.add(*off.add(k)), g.cin),
            |k| w.add(k * nr),
            g.cout - q * nr,
            |i| if i < rows { y.add(i * g.cout + q * nr) } else { std::ptr::null_mut() },
            Start::Row(f.bias.as_ptr().add(q * nr)),
        );
    }
    (f.then)(first, std::slice::from_raw_parts_mut(y, rows * g.cout));
}

struct InputGrad<'a> {
    g: Conv,
    /// `w` transposed per tap: tap t, panel q, then `[cout][nr]`.
    wt: &'a [f32],
    dy: &'a [f32],
    dx: SendPtr,
}

/// `dx = col2im(dy·wᵀ)` for `n` samples, without the `dy·wᵀ` matrix,
/// handing each sample's finished dx to `then`.
pub fn input_grad_then(g: Conv, n: usize, w: &[f32], dy: &[f32], dx: &mut [f32], then: Then) {
    input_grad_on(Isa::detected(), g, n, w, dy, dx, then)
}

fn input_grad_on(isa: Isa, g: Conv, n: usize, w: &[f32], dy: &[f32], dx: &mut [f32], then: Then) {
    let (kd, per) = (g.kdim(), g.positions());
    assert!(w.len() == kd * g.cout && dy.len() >= n * per * g.cout && dx.len() >= n * g.in_len());
    if sparse::input_grad_fits(isa, &g) && sparse::mostly_zero(dy, per * g.cout) && sparse::all_finite(w) {
        return sparse::input_grad(isa, g, n, w, &dy[..n * per * g.cout], dx, then);
    }
    let nr = INPUT_GRAD.columns(isa);
    let panels = g.cin.div_ceil(nr);
    profile::path(|| format!("{}, {}×{nr} blocks of pixels summed over the taps in registers (k = {} per tap)", isa.name(), INPUT_GRAD.rows(isa), g.cout));
    with_packed(g.k * g.k * panels * g.cout * nr, |wt| {
        // Tap t's block of w is `[cin][cout]`; its transpose, as panels over cin.
        for t in 0..g.k * g.k {
            for q in 0..panels {
                let dst = &mut wt[(t * panels + q) * g.cout * nr..][..g.cout * nr];
                for co in 0..g.cout {
                    for j in 0..nr {
                        let c = q * nr + j;
                        dst[co * nr + j] = if c < g.cin { w[(t * g.cin + c) * g.cout + co] } else { 0.0 };
                    }
                }
            }
        }
        let f = InputGrad { g, wt, dy: &dy[..n * per * g.cout], dx: SendPtr(dx.as_mut_ptr()) };
        // SAFETY: each sample writes only its own part of dx.
        (0..n).into_par_iter().for_each(|s| unsafe {
            input_grad_sample(isa, &f, s);
            (then)(s * g.in_len(), std::slice::from_raw_parts_mut(f.dx.0.add(s * g.in_len()), g.in_len()));
        });
    });
}

/// The input gradient's blocks, in pixels × vectors of channels: the
/// block's sums and one tap's products both stay in registers (2·MR·NV
/// vectors of the 32 or 16).
const INPUT_GRAD: Shapes = Shapes { avx512: (6, 2), avx2: (3, 2), scalar: (4, 4) };

isa_dispatch! {
    fn input_grad_sample(f: &InputGrad, s: usize) => input_grad_sample_with per INPUT_GRAD
}

/// One sample's dx, a block of `MR` consecutive pixels (in raster order,
/// across the ends of input rows) × one panel of channels at a time, summed
/// over the taps in registers.
///
/// The taps go in reverse: a pixel is reached through tap (ky, kx) by
/// output row (iy + pad − ky, ix + pad − kx), so its terms come in the
/// raster order of those rows, the order col2im adds them in. Each pixel's
/// terms and their order are its own, whatever block it is in.
///
/// The blocks used to lie within one input row, so a row's last block
/// computed pixels past its end (16 = 6 + 6 + 4 pixels cost 18): 11–17 %
/// more products for conv2–4 on AVX-512. Across row ends, on Zen 4 (`bench`,
/// one binary switching between the two, three rounds) conv4's input
/// gradient went from 5.2–5.4 to 4.4–4.5 ms, conv3's from 2.8–2.9 to
/// 2.4–2.5, conv2's from 6.0–6.1 to 5.6–5.8; with the new blocks alone in
/// the binary, conv2's did not gain (docs/performance.md). (Before that,
/// the block was 12 output rows added onto dx tap by tap: its 24 sums went
/// through the stack and dx after every 32-step chain, at half the FMA
/// peak on AVX-512.)
#[inline(always)]
unsafe fn input_grad_sample_with<S: Simd, const MR: usize, const NV: usize>(f: &InputGrad, s: usize) {
    let (g, nr) = (f.g, NV * S::LANES);
    let (taps, panels, ow, pixels) = (g.k * g.k, g.cin.div_ceil(nr), g.ow(), g.h * g.w);
    let dy = f.dy.as_ptr().add(s * g.positions() * g.cout);
    let dx = f.dx.0.add(s * g.in_len());
    let zeros = thread_scratch(g.cout);
    zeros.fill(0.0);
    for p0 in (0..pixels).step_by(MR) {
        let real = MR.min(pixels - p0);
        // Each pixel's (iy + pad, ix + pad); past the sample's end, a row
        // no tap reaches.
        let (mut iy, mut ix) = (p0 / g.w, p0 % g.w);
        let at: [(usize, usize); MR] = std::array::from_fn(|i| {
            let padded = if i < real { (iy + g.pad, ix + g.pad) } else { (usize::MAX, 0) };
            ix += 1;
            if ix == g.w {
                (iy, ix) = (iy + 1, 0);
            }
            padded
        });
        for q in 0..panels {
            tile_sum::<S, MR, NV>(
                taps,
                g.cout,
                |j| {
                    let (ky, kx) = ((taps - 1 - j) / g.k, (taps - 1 - j) % g.k);
                    at.map(|(y, x)| {
                        // Below 0 wraps to far above the output's size.
                        let (oy, ox) = (y.wrapping_sub(ky), x.wrapping_sub(kx));
                        (oy < g.oh() && ox < ow).then(|| dy.add((oy * ow + ox) * g.cout))
                    })
                },
                |j, k| f.wt.as_ptr().add((((taps - 1 - j) * panels + q) * g.cout + k) * nr),
                g.cin - q * nr,
                |i| if i < real { dx.add((p0 + i) * g.cin + q * nr) } else { std::ptr::null_mut() },
                zeros.as_ptr(),
            );
        }
    }
}

struct WeightGrad<'a> {
    g: Conv,
    n: usize,
    x: &'a [f32],
    dy: &'a [f32],
    /// The result transposed, `[cout][kd]` padded to whole panels.
    dwt: SendPtr,
    /// The bias gradient (`cout` sums), when wanted.
    db: Option<SendPtr>,
    ldt: usize,
    /// Output channels per task.
    group: usize,
    /// Panels per task.
    panel_run: usize,
}

/// Rows of a weight-gradient block.
const WG_BLOCK: usize = 256;

/// Zeros: B's row (a whole pixel) for a padding position.
static ZEROS: [f32; 256] = [0.0; 256];

/// `dw = im2col(x)ᵀ·dy` over the `n` samples' rows in order (from 0), and
/// when `db` is given, the bias gradient: each column of dy summed over the
/// rows in order, from 0 (as [`bias_grad`]). It is summed in the same pass,
/// a block of dy's rows at a time while the block is in cache (for inputs
/// narrower than a vector, row by row beside the FMAs that read it): a
/// separate pass streamed all of dy (8 MB for conv1 and conv2) once more.
pub fn weight_grad(g: Conv, n: usize, x: &[f32], dy: &[f32], dw: &mut [f32], db: Option<&mut [f32]>) {
    weight_grad_on(Isa::detected(), g, n, x, dy, dw, db)
}

fn weight_grad_on(isa: Isa, g: Conv, n: usize, x: &[f32], dy: &[f32], dw: &mut [f32], db: Option<&mut [f32]>) {
    let (kd, per) = (g.kdim(), g.positions());
    assert!(x.len() >= n * g.in_len() && dy.len() >= n * per * g.cout && dw.len() == kd * g.cout);
    assert!(db.as_ref().is_none_or(|db| db.len() == g.cout), "{g:?}: the bias gradient has cout values");
    assert!(n > 0, "{g:?}: a weight gradient over no samples");
    let db = db.map(|db| SendPtr(db.as_mut_ptr()));
    if sparse::weight_grad_fits(isa, &g, n) && sparse::mostly_zero(dy, per * g.cout) && sparse::all_finite(&x[..n * g.in_len()]) {
        return sparse::weight_grad(isa, g, n, x, dy, dw, db);
    }
    let nr = WEIGHT_GRAD.columns(isa);
    if !g.cin.is_multiple_of(nr) {
        // A tap narrower than a panel (conv1's 3 channels): B's rows cannot
        // be read from x in place.
        return weight_grad_narrow(isa, g, n, x, dy, dw, db);
    }
    assert!(g.cin <= ZEROS.len(), "{g:?}: more input channels than the zero pixel has");
    let mr = WEIGHT_GRAD.rows(isa);
    let panels = kd.div_ceil(nr);
    let ldt = panels * nr;
    // Tasks are (group of output channels, range of panels), all about the
    // same size. Each walks all rows a block at a time and does its panels on
    // a block while the block's x and dy are in cache, so a task should hold
    // as many panels as it can: the channels are split among the threads
    // first, and the panels only when there are more threads than that.
    let (cblocks, threads) = (g.cout.div_ceil(mr), rayon::current_num_threads());
    let group = cblocks.div_ceil(cblocks.min(threads)) * mr;
    let groups = g.cout.div_ceil(group);
    let panel_run = panels.div_ceil(threads.div_ceil(groups).min(panels));
    let dwt_len = g.cout.div_ceil(mr) * mr * ldt;
    profile::path(|| format!("{}, {mr}×{nr} blocks, x read in place (k = {})", isa.name(), n * per));
    with_packed(dwt_len, |dwt| {
        let f = WeightGrad { g, n, x, dy: &dy[..n * per * g.cout], dwt: SendPtr(dwt.as_mut_ptr()), db, ldt, group, panel_run };
        let tasks = groups * panels.div_ceil(panel_run);
        // SAFETY: each task writes its own (channels × panels) part of dwt,
        // and the first task of each group of channels those channels' sums.
        (0..tasks).into_par_iter().with_max_len(1).for_each(|t| unsafe { weight_grad_task(isa, &f, t) });
        for k in 0..kd {
            for co in 0..g.cout {
                dw[k * g.cout + co] = dwt[co * ldt + k];
            }
        }
    });
}

/// The weight gradient for inputs with taps narrower than a panel (conv1's
/// 3 channels). x is copied with its zero padding written out (as for
/// [`forward_narrow`]), so that for an output position the k·cin values a
/// kernel row ky reads are contiguous: one block is (kernel row, run of
/// MR of those values, NV vectors of output channels), with A read
/// in place from the copy through a table of each position's first pixel
/// and B = dy's rows. Each element's chain is the one [`weight_grad_task`]
/// runs (`fma(x, dy, ·)` rather than `fma(dy, x, ·)`: one exact product, one
/// rounding; a padding value is the same zero), so the bits are the same.
/// Each task owns some blocks and walks all rows, a block of rows at a time.
///
/// Tried before and slower: x's im2col matrix, whole (8 MB for conv1, 14 %
/// of the peak), shared a block at a time (two joins per block, 16 %), or
/// built by every task (20 %: building the rows cost more than the
/// products); blocks of one tap's 3 channels × 2 vectors read through a
/// table of pixels per tap (17 %: six chains per block wait on each other's
/// latency, and nine taps split 4 : 5 between two threads).
fn weight_grad_narrow(isa: Isa, g: Conv, n: usize, x: &[f32], dy: &[f32], dw: &mut [f32], db: Option<SendPtr>) {
    let (mr, nr) = (WEIGHT_GRAD_NARROW.rows(isa), WEIGHT_GRAD_NARROW.columns(isa));
    let ldy = g.cout.div_ceil(nr) * nr;
    let (per, wp) = padded_shape(&g);
    // A kernel row's last run reads up to mr − 1 values past it (its dropped rows).
    let xp_len = n * per + mr;
    let tiles = g.k * (g.k * g.cin).div_ceil(mr) * (ldy / nr);
    let tasks = rayon::current_num_threads().clamp(1, tiles);
    profile::path(|| format!("{}, {mr}×{nr} blocks, x read in place from a padded copy (k = {})", isa.name(), n * g.positions()));
    with_packed(xp_len, |xp| {
        padded_copy(&g, n, x, xp);
        let job = Narrow { g, n, xp, per, wp, dy: &dy[..n * g.positions() * g.cout], ldy, tiles, tasks, dw: SendPtr(dw.as_mut_ptr()), db };
        // SAFETY: each task writes the rows of dw that its blocks own, and
        // the bias gradient's columns of its blocks of kernel row 0 and run 0.
        (0..tasks).into_par_iter().with_max_len(1).for_each(|t| unsafe { narrow_task(isa, &job, t) });
    });
}

/// The work of [`weight_grad_narrow`].
struct Narrow<'a> {
    g: Conv,
    n: usize,
    /// x with its padding written out: `per` values per sample, `wp` pixels per row.
    xp: &'a [f32],
    per: usize,
    wp: usize,
    dy: &'a [f32],
    /// Values per row of B (cout padded to whole vectors).
    ldy: usize,
    /// (kernel row, run of rows, set of NV vectors) blocks, and the tasks that share them out.
    tiles: usize,
    tasks: usize,
    dw: SendPtr,
    /// The bias gradient, when wanted: summed by the blocks of kernel row 0
    /// and the first run of rows, one set of vectors of columns each.
    db: Option<SendPtr>,
}

/// How many rows of dy ahead [`weight_grad_narrow`] asks for.
const DY_AHEAD: usize = 32;

/// [`weight_grad_narrow`]'s blocks: MR values of a kernel row × NV vectors
/// of output channels.
///
/// AVX-512: 5 × 2, so a kernel row's 9 values (conv1's 3 taps × 3
/// channels) are two runs, the second with one row computed and dropped;
/// conv1's six blocks split 3 : 3 between two threads, each of which reads
/// whole rows of dy. Per row of dy a block loads 2 vectors and 5 broadcasts
/// for 10 FMAs, where 9 × 1 (a whole kernel row, one vector per thread)
/// loaded 1 and 9 for 9 FMAs, and each thread read every other 64-byte
/// line of dy. In a throwaway benchmark on an AVX-512 Xeon (five rounds
/// alternated), conv1's weight gradient took 1.65× the forward pass's time
/// with dy in cache and 1.42× from memory, against 9 × 1's 2.15× and 1.66×
/// (9 × 2 split 2 : 1, 1.80× and 1.38×). The bits are the same: a block's
/// shape never changes an element's chain. AVX2 keeps 9 × 1 (a whole
/// kernel row, one vector); 5 × 2 was not measured there.
const WEIGHT_GRAD_NARROW: Shapes = Shapes { avx512: (5, 2), avx2: (9, 1), scalar: (9, 4) };

isa_dispatch! {
    fn narrow_task(f: &Narrow, t: usize) => narrow_task_with per WEIGHT_GRAD_NARROW
}

#[inline(always)]
unsafe fn narrow_task_with<S: Simd, const MR: usize, const NV: usize>(f: &Narrow, t: usize) {
    let (g, nr, cout) = (f.g, NV * S::LANES, f.g.cout);
    let (line, runs, rows) = (g.k * g.cin, (g.k * g.cin).div_ceil(MR), f.n * g.positions());
    let dy_wide = thread_scratch(if f.ldy != cout { WG_BLOCK * f.ldy } else { 0 });
    // Each row's first pixel in the copy (kernel row 0, tap 0).
    let mut table = [std::ptr::null::<f32>(); WG_BLOCK];
    let mut at = Cursor::at(&g, 0);
    for r0 in (0..rows).step_by(WG_BLOCK) {
        let kc = WG_BLOCK.min(rows - r0);
        let b = block_rows_of(f.dy, cout, r0, kc, f.ldy, dy_wide);
        for p in table.iter_mut().take(kc) {
            *p = f.xp.as_ptr().add(at.s * f.per + (at.oy * f.wp + at.ox) * g.cin);
            at.next(&g);
        }
        let task_blocks = t * f.tiles / f.tasks..(t + 1) * f.tiles / f.tasks;
        for block in task_blocks.clone() {
            // Vector-major: a task's blocks are consecutive in that order,
            // so it reads one set of dy's columns, or two at a boundary.
            let (v, ky, run) = (block / (g.k * runs), block / runs % g.k, block % runs);
            let (i0, j0) = (ky * f.wp * g.cin + run * MR, v * nr);
            let first = ky * line + run * MR;
            let out = f.dw.0.add(first * cout + j0);
            let a = (|k: usize| table[k].add(i0), 1);
            let row = |i: usize| if run * MR + i < line { out.add(i * cout) } else { std::ptr::null_mut() };
            let start = if r0 == 0 { Start::Zero } else { Start::C };
            // One block per set of vectors sums its columns of dy for the
            // bias gradient. The task's first block of those vectors asks
            // for dy's row DY_AHEAD on (8 MB for conv1, from memory), where
            // its other blocks of them will find it.
            let sums_here = ky == 0 && run == 0;
            let fetch_here = block == task_blocks.start.max(v * g.k * runs);
            let b_row = |k: usize| {
                if fetch_here && r0 + k + DY_AHEAD < rows {
                    let ahead = f.dy.as_ptr().wrapping_add((r0 + k + DY_AHEAD) * cout + j0);
                    for vec in 0..NV {
                        prefetch(ahead.wrapping_add(vec * S::LANES));
                    }
                }
                b.add(k * f.ldy + j0)
            };
            match f.db {
                Some(db) if sums_here => tile_and_b_sums::<S, MR, NV, true>(kc, a, b_row, cout - j0, row, start, db.0.add(j0)),
                _ => tile::<S, MR, NV>(kc, a, b_row, cout - j0, row, start),
            }
        }
    }
}

/// Rows `r0..r0 + kc` of `dy` (`cols` values each) with `ld` values each:
/// in place when `ld == cols`, else copied into `wide`, zero-padded.
#[inline(always)]
fn block_rows_of(dy: &[f32], cols: usize, r0: usize, kc: usize, ld: usize, wide: &mut [f32]) -> *const f32 {
    if ld == cols {
        return dy[r0 * cols..].as_ptr();
    }
    for (dst, src) in wide.chunks_mut(ld).zip(dy[r0 * cols..].chunks(cols)).take(kc) {
        dst[..cols].copy_from_slice(src);
        dst[cols..].fill(0.0);
    }
    wide.as_ptr()
}

/// For `kc` rows from `first`: the pixel of x that tap `tap` reads at each
/// (its first channel), or [`ZEROS`] in the padding. Returns the row after.
/// Walked an output row at a time, so a pixel costs a compare and a store.
#[inline(always)]
unsafe fn pixel_table(g: &Conv, x: *const f32, first: Cursor, kc: usize, tap: usize, table: &mut [*const f32]) -> Cursor {
    let (ky, kx) = (tap / g.k, tap % g.k);
    let mut at = first;
    let mut k = 0;
    while k < kc {
        let run = (g.ow() - at.ox).min(kc - k);
        let out = &mut table[k..k + run];
        match (at.oy + ky).checked_sub(g.pad).filter(|&iy| iy < g.h) {
            None => out.fill(ZEROS.as_ptr()),
            Some(iy) => {
                let row = x.add((at.s * g.h + iy) * g.w * g.cin);
                for (j, p) in out.iter_mut().enumerate() {
                    // Left of the image this wraps to a large value: out of bounds too.
                    let ix = (at.ox + j + kx).wrapping_sub(g.pad);
                    *p = if ix < g.w { row.add(ix * g.cin) } else { ZEROS.as_ptr() };
                }
            }
        }
        k += run;
        at.skip(g, run);
    }
    at
}

/// The weight gradient's blocks: output channels (a divisor of 32 and 64)
/// × vectors of k.
const WEIGHT_GRAD: Shapes = Shapes { avx512: (8, 2), avx2: (4, 2), scalar: (4, 4) };

isa_dispatch! {
    fn weight_grad_task(f: &WeightGrad, t: usize) => weight_grad_task_with per WEIGHT_GRAD
}

#[inline(always)]
unsafe fn weight_grad_task_with<S: Simd, const MR: usize, const NV: usize>(f: &WeightGrad, t: usize) {
    let (g, nr) = (f.g, NV * S::LANES);
    let panels = g.kdim().div_ceil(nr);
    let runs = panels.div_ceil(f.panel_run);
    let (q0, c0) = (t % runs * f.panel_run, t / runs * f.group);
    let (q1, c1) = ((q0 + f.panel_run).min(panels), (c0 + f.group).min(g.cout));
    let rows = f.n * g.positions();
    // dy's rows, widened to whole blocks of MR channels when cout is not a multiple.
    let ld = g.cout.div_ceil(MR) * MR;
    let wide = thread_scratch(if ld == g.cout { 0 } else { WG_BLOCK * ld });
    let mut table = [std::ptr::null::<f32>(); WG_BLOCK];
    // The block's first row.
    let mut first = Cursor::at(&g, 0);
    let mut sums = f.db.filter(|_| q0 == 0).map(|db| column_sums(db, c0, c1));
    for r0 in (0..rows).step_by(WG_BLOCK) {
        let kc = WG_BLOCK.min(rows - r0);
        let a = block_rows_of(f.dy, g.cout, r0, kc, ld, wide);
        if let Some((c0, sums)) = &mut sums {
            add_rows(a.add(*c0), ld, kc, sums);
        }
        let (mut next, mut table_tap) = (first, usize::MAX);
        for q in q0..q1 {
            let (tap, c_off) = ((q * nr) / g.cin, (q * nr) % g.cin);
            // B's rows, read in place: the panel lies inside one tap, and the
            // tap's table of pixels serves all its panels (building it cost
            // as much as a panel's products).
            if tap != table_tap {
                next = pixel_table(&g, f.x.as_ptr(), first, kc, tap, &mut table);
                table_tap = tap;
            }
            for co in (c0..c1).step_by(MR) {
                let out = f.dwt.0.add(co * f.ldt + q * nr);
                tile::<S, MR, NV>(
                    kc,
                    strided(a.add(co), 1, ld),
                    |k| table[k].add(c_off),
                    nr,
                    |i| if co + i < c1 { out.add(i * f.ldt) } else { std::ptr::null_mut() },
                    if r0 == 0 { Start::Zero } else { Start::C },
                );
            }
        }
        first = next;
    }
}

/// Columns `c0..c1` of the bias gradient at `db`, zeroed: a task's running
/// sums. The task's first column comes with them.
///
/// # Safety
/// `db` holds `c1` values, and no other task touches these.
#[inline(always)]
unsafe fn column_sums<'a>(db: SendPtr, c0: usize, c1: usize) -> (usize, &'a mut [f32]) {
    let sums = std::slice::from_raw_parts_mut(db.0.add(c0), c1 - c0);
    sums.fill(0.0);
    (c0, sums)
}

/// `sums[c] += row[c]` for rows `0..kc` of `rows` (`ld` values apart), in
/// order: the bias gradient's chain continued over a block of dy.
///
/// Runs of 32, 16 or 8 columns are held in a local array over all the rows,
/// which the compiler keeps in vector registers: summed in `sums` itself,
/// each row's adds waited on the previous row's stores (conv1's bias
/// gradient, summed here then, cost two thirds as much as its weight
/// gradient).
#[inline(always)]
unsafe fn add_rows(rows: *const f32, ld: usize, kc: usize, sums: &mut [f32]) {
    let mut c = 0;
    while c < sums.len() {
        let (first, part) = (rows.add(c), &mut sums[c..]);
        c += match part.len() {
            32.. => add_run::<32>(first, ld, kc, part),
            16.. => add_run::<16>(first, ld, kc, part),
            8.. => add_run::<8>(first, ld, kc, part),
            _ => add_run::<1>(first, ld, kc, part),
        };
    }
}

/// [`add_rows`] for the first `N` columns of `sums`; returns `N`.
#[inline(always)]
unsafe fn add_run<const N: usize>(first: *const f32, ld: usize, kc: usize, sums: &mut [f32]) -> usize {
    let mut acc: [f32; N] = sums[..N].try_into().unwrap();
    for k in 0..kc {
        let row = &*(first.add(k * ld) as *const [f32; N]);
        for (a, v) in acc.iter_mut().zip(row) {
            *a += v;
        }
    }
    sums[..N].copy_from_slice(&acc);
    N
}

/// `db = Σ over rows of dy` (`[rows, cols]`), rows in order, from 0.
/// One thread: splitting the columns among threads measured slower here
/// (the pass is bound by reading `dy`, not by its adds).
pub fn bias_grad(dy: &[f32], cols: usize, db: &mut [f32]) {
    db.fill(0.0);
    for r in dy.chunks(cols) {
        for (d, v) in db.iter_mut().zip(r) {
            *d += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu::gemm::{gemm_reference, MatRef};
    use crate::engine::cpu::test_values as fill;

    /// The im2col formulation, written plainly: the definition of the bits.
    fn reference(g: Conv, n: usize, x: &[f32], w: &[f32], b: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (kd, per) = (g.kdim(), g.positions());
        let rows = n * per;
        let mut col = vec![0.0; rows * kd];
        for r in 0..rows {
            let p = r % per;
            unsafe { g.im2col::<crate::engine::cpu::simd::Scalar>(&x[r / per * g.in_len()..][..g.in_len()], (p / g.ow(), p % g.ow()), &mut col[r * kd..(r + 1) * kd]) };
        }
        let mut y: Vec<f32> = (0..rows).flat_map(|_| b.iter().copied()).collect();
        gemm_reference(rows, g.cout, kd, MatRef::rows(&col, kd), MatRef::rows(w, g.cout), &mut y, g.cout, true);
        let mut dw = vec![0.0; kd * g.cout];
        gemm_reference(kd, g.cout, rows, MatRef::transposed(&col, kd), MatRef::rows(dy, g.cout), &mut dw, g.cout, false);
        let mut dcol = vec![0.0; rows * kd];
        gemm_reference(rows, kd, g.cout, MatRef::rows(dy, g.cout), MatRef::transposed(w, g.cout), &mut dcol, kd, false);
        let mut dx = vec![0.0; n * g.in_len()];
        for r in 0..rows {
            let (s, p) = (r / per, r % per);
            for t in 0..g.k * g.k {
                if let Some(px) = g.source((p / g.ow(), p % g.ow()), t / g.k, t % g.k) {
                    for c in 0..g.cin {
                        dx[s * g.in_len() + px * g.cin + c] += dcol[r * kd + t * g.cin + c];
                    }
                }
            }
        }
        (y, dw, dx)
    }

    /// The same bits, NaN for NaN (a NaN's payload is not part of the arithmetic).
    fn same_values(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()))
    }

    /// dy as a convolution before 2×2 max pooling sees it: in each window
    /// of each channel one pixel at most carries a value, the rest +0 (and
    /// −0 where dropout cleared a negative one).
    fn pooled_dy(g: Conv, n: usize, seed: u32) -> Vec<f32> {
        let values = fill(n * g.positions() * g.cout, seed);
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let (p, c) = (i / g.cout % g.positions(), i % g.cout);
                let (oy, ox) = (p / g.ow(), p % g.ow());
                let winner = (oy % 2 * 2 + ox % 2) == (c + oy / 2 + ox / 2) % 4;
                match (winner, v) {
                    (true, v) if v > 0.6 => -0.0,
                    (true, v) => v,
                    (false, _) => 0.0,
                }
            })
            .collect()
    }

    /// With dy mostly 0 the sparse kernels run, and give the dense bits:
    /// for shapes they fit and shapes they do not; with values so small that
    /// products round to ±0 (a weight-gradient chain at −0 that a left-out
    /// zero term would have made +0); and with a non-finite x or w, where
    /// the dense kernels' `0·∞` must stay NaN.
    #[test]
    fn mostly_zero_gradients_give_the_dense_bits() {
        let shapes = [
            // conv2 and conv4 of the article's network, smaller.
            Conv { h: 10, w: 9, cin: 32, cout: 32, k: 3, pad: 0 },
            Conv { h: 7, w: 8, cin: 64, cout: 64, k: 3, pad: 0 },
            // Padded: the input gradient's sparse kernel, the weight gradient's dense one.
            Conv { h: 6, w: 7, cin: 32, cout: 24, k: 3, pad: 1 },
            // Channels not a whole panel: a masked last vector of dx.
            Conv { h: 6, w: 6, cin: 17, cout: 40, k: 3, pad: 0 },
        ];
        for (i, &g) in shapes.iter().enumerate() {
            // More rows than one block of WG_BLOCK: chains continued across blocks.
            let n = 3 + WG_BLOCK / g.positions();
            let x = fill(n * g.in_len(), 11 + i as u32);
            let mut w = fill(g.kdim() * g.cout, 12 + i as u32);
            let b = fill(g.cout, 13 + i as u32);
            let dy = pooled_dy(g, n, 14 + i as u32);
            assert!(sparse::mostly_zero(&dy, g.positions() * g.cout), "{g:?}: the test's dy must take the sparse path");
            for isa in Isa::available() {
                assert!(sparse::input_grad_fits(isa, &g), "{g:?} {isa:?}: the sparse input gradient");
                assert_eq!(sparse::weight_grad_fits(isa, &g, n), g.pad == 0 && g.cin % 32 == 0, "{g:?} {isa:?}: the sparse weight gradient");
            }
            // Tiny values, whose products round to ±0: chains that reach −0
            // and then meet a zero term (the dense chain's +0).
            let tiny = |v: &[f32], scale: f32| v.iter().map(|a| a * scale).collect::<Vec<f32>>();
            for (case, non_finite) in [(0, None), (1, None), (2, Some(f32::INFINITY)), (3, Some(f32::NAN))] {
                let dy = if case == 1 { tiny(&dy, 1e-20) } else { dy.clone() };
                let mut x = if case == 1 { tiny(&x, 1e-30) } else { x.clone() };
                assert!(sparse::all_finite(&x) && sparse::all_finite(&w) || non_finite.is_some());
                if let Some(v) = non_finite {
                    x[g.in_len() + 5] = v;
                    w[7] = v;
                }
                let (_, dw0, dx0) = reference(g, n, &x, &w, &b, &dy);
                let mut db0 = vec![0.0f32; g.cout];
                for (r, v) in dy.iter().enumerate() {
                    db0[r % g.cout] += v;
                }
                for (isa, threads) in Isa::available().into_iter().flat_map(|isa| [1, 2, 3].map(|t| (isa, t))) {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    let what = format!("{g:?} {isa:?} {threads} threads, case {case} (non-finite {non_finite:?})");
                    pool.install(|| {
                        let (mut dw, mut db) = (vec![f32::NAN; dw0.len()], vec![f32::NAN; g.cout]);
                        weight_grad_on(isa, g, n, &x, &dy, &mut dw, Some(&mut db));
                        assert!(same_values(&dw, &dw0), "{what}: weight gradient");
                        assert!(same_values(&db, &db0), "{what}: bias gradient");
                        let mut dx = vec![f32::NAN; dx0.len()];
                        input_grad_on(isa, g, n, &w, &dy, &mut dx, &|_, _| {});
                        assert!(same_values(&dx, &dx0), "{what}: input gradient");
                    });
                }
            }
        }
        // A dense dy takes the dense kernels.
        let g = shapes[0];
        assert!(!sparse::mostly_zero(&fill(g.positions() * g.cout, 3), g.positions() * g.cout));
    }

    #[test]
    fn convolutions_equal_the_im2col_formulation_bit_for_bit() {
        let shapes = [
            Conv { h: 7, w: 6, cin: 3, cout: 5, k: 3, pad: 1 },
            Conv { h: 9, w: 8, cin: 32, cout: 32, k: 3, pad: 0 },
            Conv { h: 6, w: 7, cin: 64, cout: 64, k: 3, pad: 1 },
            Conv { h: 5, w: 5, cin: 17, cout: 40, k: 3, pad: 0 },
            // One block of channels: the weight gradient splits its panels among the threads.
            Conv { h: 6, w: 5, cin: 32, cout: 8, k: 3, pad: 1 },
            // Narrow taps whose kernel row is not a whole number of the weight
            // gradient's runs (AVX-512's 5 values, AVX2's 9): 3 values (one
            // channel), and 15 (three runs of 5; one run of 9 and part of one).
            // conv1's own 9 are 5 and part of one on AVX-512.
            Conv { h: 5, w: 6, cin: 1, cout: 12, k: 3, pad: 0 },
            Conv { h: 6, w: 5, cin: 5, cout: 20, k: 3, pad: 1 },
            // conv1's channels: 3 samples of 12×12 are 432 rows, more than one
            // block of the weight gradients (their chains continue across blocks,
            // and a block's tables of pixels cross a sample's end).
            Conv { h: 12, w: 12, cin: 3, cout: 32, k: 3, pad: 1 },
            // The same with two sets of vectors, the second partial: chains and
            // bias sums continued across blocks of rows from masked loads, dy's
            // rows widened per block, and (3 threads, AVX-512) a task that
            // straddles the two sets.
            Conv { h: 12, w: 12, cin: 3, cout: 40, k: 3, pad: 1 },
        ];
        const { assert!(3 * 12 * 12 > WG_BLOCK && 12 * 12 % WG_BLOCK != 0, "the last shape must span more than one block") };
        for (i, &g) in shapes.iter().enumerate() {
            let n = 3;
            let x = fill(n * g.in_len(), 1 + i as u32);
            let w = fill(g.kdim() * g.cout, 2 + i as u32);
            let b = fill(g.cout, 3 + i as u32);
            let mut dy = fill(n * g.positions() * g.cout, 4 + i as u32);
            dy[0] = -0.0; // sums of signed zeros must keep their sign rules
            let (y0, dw0, dx0) = reference(g, n, &x, &w, &b, &dy);
            // The bias gradient: each column's sum over the rows in order, at any thread count.
            let mut db0 = vec![0.0f32; g.cout];
            for (r, v) in dy.iter().enumerate() {
                db0[r % g.cout] += v;
            }
            let mut db = vec![f32::NAN; g.cout];
            bias_grad(&dy, g.cout, &mut db);
            assert!(db.iter().zip(&db0).all(|(p, q)| p.to_bits() == q.to_bits()), "{g:?}: bias gradient alone");
            // The work is cut by the thread count: every cut gives the same bits.
            for (isa, threads) in Isa::available().into_iter().flat_map(|isa| [1, 2, 3].map(|t| (isa, t))) {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let (y, dw, db, dx) = pool.install(|| {
                    let mut y = vec![0.0; y0.len()];
                    // What each pass hands on: each element once, with its final value.
                    let handed_once = |want: &[f32], what: &str, pass: &mut dyn FnMut(Then)| {
                        let handed = std::sync::Mutex::new(vec![(0u32, f32::NAN); want.len()]);
                        pass(&|first: usize, run: &mut [f32]| {
                            for (h, &v) in handed.lock().unwrap()[first..first + run.len()].iter_mut().zip(&*run) {
                                *h = (h.0 + 1, v);
                            }
                        });
                        let handed = handed.into_inner().unwrap();
                        assert!(handed.iter().zip(want).all(|(&(times, v), w)| times == 1 && v.to_bits() == w.to_bits()), "{g:?} {isa:?} {threads} threads: the {what}'s runs handed on");
                    };
                    handed_once(&y0, "forward pass", &mut |then| forward_on(isa, g, n, &x, &w, &b, Some(&mut y), then));
                    // Without y, the same runs handed on (computed in the thread's buffer).
                    handed_once(&y0, "forward pass without y", &mut |then| forward_on(isa, g, n, &x, &w, &b, None, then));
                    // NaN where nothing is written, so an element left out fails.
                    let (mut dw, mut db) = (vec![f32::NAN; dw0.len()], vec![f32::NAN; g.cout]);
                    weight_grad_on(isa, g, n, &x, &dy, &mut dw, Some(&mut db));
                    // Without the bias gradient, the same weight gradient.
                    let mut dw_alone = vec![f32::NAN; dw0.len()];
                    weight_grad_on(isa, g, n, &x, &dy, &mut dw_alone, None);
                    assert_eq!(dw.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), dw_alone.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
                    let mut dx = vec![f32::NAN; dx0.len()];
                    handed_once(&dx0, "input gradient", &mut |then| input_grad_on(isa, g, n, &w, &dy, &mut dx, then));
                    (y, dw, db, dx)
                });
                let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
                assert!(same(&y, &y0), "{g:?} {isa:?} {threads} threads: forward");
                assert!(same(&dw, &dw0), "{g:?} {isa:?} {threads} threads: weight gradient");
                assert!(same(&db, &db0), "{g:?} {isa:?} {threads} threads: bias gradient with the weight gradient");
                assert!(same(&dx, &dx0), "{g:?} {isa:?} {threads} threads: input gradient");
            }
        }
    }
}
