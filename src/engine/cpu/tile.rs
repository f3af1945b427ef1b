//! The micro-kernel every CPU matrix product runs: a block of `MR` rows ×
//! `NV` vectors of C held in registers while one FMA chain per element runs
//! over k in ascending order.
//!
//! ```text
//! acc[i][j] = start[i][j];  for k in 0..kc: acc[i][j] = fma(A[i,k], B[k,j], acc[i][j])
//! A[i,k] = a(k)[i·a_rs]         (one broadcast per row and k; `strided`: a(k) = a + k·a_ks)
//! B[k,j] = b(k)[j]             (NV vectors per k, from B's row k)
//! ```
//!
//! A caller splits a long chain over several calls by starting each from the
//! previous partial sums ([`Start::C`]): the chain, and so every bit, is the
//! same. Which thread runs a block, and how the blocks are cut, never matter.
//! [`tile_sum`] is the same block for a sum of such chains, each rounded on
//! its own and then added (a convolution's input gradient, tap by tap).

#![allow(unsafe_op_in_unsafe_fn)]

use super::simd::Simd;

/// What the accumulators hold before the first step.
#[derive(Clone, Copy)]
pub enum Start {
    /// +0.
    Zero,
    /// C's current values (a chain continued, or `C += A·B`).
    C,
    /// The same row for every row of the block (a bias), `cols` values from here.
    Row(*const f32),
}

// SAFETY: `Row` points at read-only data (a bias) that outlives the product.
unsafe impl Send for Start {}
unsafe impl Sync for Start {}

/// A's columns at a constant stride, for [`tile`]: `A[i,k] = a[i·rs + k·ks]`.
#[inline(always)]
pub fn strided(a: *const f32, rs: usize, ks: usize) -> (impl Fn(usize) -> *const f32, usize) {
    (move |k| a.wrapping_add(k * ks), rs)
}

/// One block. A's column `k` starts at `a(k)`, its rows `a_rs` apart (a
/// table of pointers serves a convolution's pixels read in place); C's row
/// `i` is at `row(i)` (null: the row is computed and dropped), `cols` of
/// its columns are real; B's row `k` is at `b(k)`.
///
/// # Safety
/// The caller guarantees `S`'s instruction set, `a` readable for all `MR`
/// rows and `kc` steps, `b(k)` readable for `NV·LANES` columns, and each
/// non-null row of C covering `cols` values.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub unsafe fn tile<S: Simd, const MR: usize, const NV: usize>(
    kc: usize,
    a: (impl Fn(usize) -> *const f32, usize),
    b: impl Fn(usize) -> *const f32,
    cols: usize,
    row: impl Fn(usize) -> *mut f32,
    start: Start,
) {
    tile_and_b_sums::<S, MR, NV, false>(kc, a, b, cols, row, start, std::ptr::null_mut())
}

/// [`tile`], and with `SUM` also summing B's rows: `sums[j] = sums[j] +
/// B[k, j]` for each k in order, for B's `cols` real columns, from +0 when
/// `start` is [`Start::Zero`] and from `sums`' values otherwise. A
/// convolution's bias gradient, summed while each row of dy is in a
/// register for the block's FMAs (a pass of its own read all of dy's rows
/// once more, and took the wait for them from memory).
///
/// # Safety
/// As [`tile`]; with `SUM`, `sums` valid for `cols` values and `start` not a row.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub unsafe fn tile_and_b_sums<S: Simd, const MR: usize, const NV: usize, const SUM: bool>(
    kc: usize,
    (a, a_rs): (impl Fn(usize) -> *const f32, usize),
    b: impl Fn(usize) -> *const f32,
    cols: usize,
    row: impl Fn(usize) -> *mut f32,
    start: Start,
    sums: *mut f32,
) {
    debug_assert!(!SUM || !matches!(start, Start::Row(_)), "B's sums continue a chain or start one");
    let l = S::LANES;
    // Columns of vector v that are real: 0, some, or all `l`.
    let width = |v: usize| cols.saturating_sub(v * l).min(l);
    let rows: [*mut f32; MR] = std::array::from_fn(&row);
    let mut acc = [[S::zero(); NV]; MR];
    match start {
        Start::Zero => {}
        Start::C => {
            for (r, &p) in acc.iter_mut().zip(&rows) {
                if !p.is_null() {
                    for (v, x) in r.iter_mut().enumerate() {
                        *x = load::<S>(p.add(v * l), width(v));
                    }
                }
            }
        }
        Start::Row(p) => {
            for v in 0..NV {
                let x = load::<S>(p.add(v * l), width(v));
                for row in acc.iter_mut() {
                    row[v] = x;
                }
            }
        }
    }
    let mut b_sums = [S::zero(); NV];
    if SUM && matches!(start, Start::C) {
        for (v, x) in b_sums.iter_mut().enumerate() {
            *x = load::<S>(sums.add(v * l), width(v));
        }
    }
    for k in 0..kc {
        let ap = a(k);
        let bp = b(k);
        let mut bv = [S::zero(); NV];
        for (v, x) in bv.iter_mut().enumerate() {
            *x = S::load(bp.add(v * l));
        }
        if SUM {
            for (x, &y) in b_sums.iter_mut().zip(&bv) {
                *x = S::add(*x, y);
            }
        }
        for (i, r) in acc.iter_mut().enumerate() {
            let av = S::splat(ap.add(i * a_rs));
            for (x, &bvv) in r.iter_mut().zip(&bv) {
                *x = S::fma(av, bvv, *x);
            }
        }
    }
    for (r, &p) in acc.iter().zip(&rows) {
        store_row::<S, NV>(p, r, cols);
    }
    if SUM {
        store_row::<S, NV>(sums, &b_sums, cols);
    }

    #[inline(always)]
    unsafe fn load<S: Simd>(p: *const f32, n: usize) -> S::V {
        if n == S::LANES {
            S::load(p)
        } else if n > 0 {
            S::load_first(p, n)
        } else {
            S::zero()
        }
    }
}

/// A block of C that is a sum of `terms` products, each rounded on its own
/// before it is added: `acc = +0`, then for each term `t` in order
///
/// ```text
/// part[i][j] = +0;  for k in 0..kc: part[i][j] = fma(A_t[i,k], B_t[k,j], part[i][j])
/// acc[i][j] = acc[i][j] + part[i][j]      (rows i that term t reaches)
/// ```
///
/// and `C = acc`. The sums stay in registers from the first term to the
/// last (a convolution's input gradient: one term per kernel tap, each the
/// chain over the output channels that col2im would add onto the pixel).
/// Row `i` of `A_t` is `a(t)[i]`, contiguous over k, or `None` where term
/// `t` does not reach it; B_t's row `k` is at `b(t, k)`; C's row `i` is at
/// `row(i)` (null: dropped), `cols` of its columns real.
///
/// # Safety
/// As [`tile`], with `zeros` readable for `kc` values of 0 (the rows a term
/// does not reach read them, and their products are never added).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub unsafe fn tile_sum<S: Simd, const MR: usize, const NV: usize>(
    terms: usize,
    kc: usize,
    a: impl Fn(usize) -> [Option<*const f32>; MR],
    b: impl Fn(usize, usize) -> *const f32,
    cols: usize,
    row: impl Fn(usize) -> *mut f32,
    zeros: *const f32,
) {
    let l = S::LANES;
    let mut acc = [[S::zero(); NV]; MR];
    for t in 0..terms {
        let rows = a(t);
        if rows.iter().all(Option::is_none) {
            continue;
        }
        let ap: [*const f32; MR] = std::array::from_fn(|i| rows[i].unwrap_or(zeros));
        let mut part = [[S::zero(); NV]; MR];
        for k in 0..kc {
            let bp = b(t, k);
            let mut bv = [S::zero(); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = S::load(bp.add(v * l));
            }
            for (i, r) in part.iter_mut().enumerate() {
                let av = S::splat(ap[i].add(k));
                for (x, &bvv) in r.iter_mut().zip(&bv) {
                    *x = S::fma(av, bvv, *x);
                }
            }
        }
        for ((sum, p), reached) in acc.iter_mut().zip(&part).zip(&rows) {
            if reached.is_some() {
                for (x, &y) in sum.iter_mut().zip(p) {
                    *x = S::add(*x, y);
                }
            }
        }
    }
    for (i, r) in acc.iter().enumerate() {
        store_row::<S, NV>(row(i), r, cols);
    }
}

/// A block's row of sums into C's row at `p` (null: dropped), `cols` of its
/// columns real: whole vectors stored, a partial one masked, the rest not.
///
/// # Safety
/// `S`'s instruction set, and `p` null or writable for `cols` values.
#[inline(always)]
pub unsafe fn store_row<S: Simd, const NV: usize>(p: *mut f32, r: &[S::V; NV], cols: usize) {
    if p.is_null() {
        return;
    }
    let l = S::LANES;
    for (v, &x) in r.iter().enumerate() {
        let (p, n) = (p.add(v * l), cols.saturating_sub(v * l).min(l));
        if n == l {
            S::store(p, x);
        } else if n > 0 {
            S::store_first(p, x, n);
        }
    }
}
