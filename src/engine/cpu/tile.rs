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

/// What happens to the finished sums.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// `C = acc`.
    Store,
    /// `C = C + acc` (one rounded add per element: col2im's scatter-add).
    Add,
}

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
    (a, a_rs): (impl Fn(usize) -> *const f32, usize),
    b: impl Fn(usize) -> *const f32,
    cols: usize,
    row: impl Fn(usize) -> *mut f32,
    start: Start,
    finish: Finish,
) {
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
    for k in 0..kc {
        let ap = a(k);
        let bp = b(k);
        let mut bv = [S::zero(); NV];
        for (v, x) in bv.iter_mut().enumerate() {
            *x = S::load(bp.add(v * l));
        }
        for (i, r) in acc.iter_mut().enumerate() {
            let av = S::splat(ap.add(i * a_rs));
            for (x, &bvv) in r.iter_mut().zip(&bv) {
                *x = S::fma(av, bvv, *x);
            }
        }
    }
    for (r, &p) in acc.iter().zip(&rows) {
        if p.is_null() {
            continue;
        }
        for (v, &x) in r.iter().enumerate() {
            let (p, n) = (p.add(v * l), width(v));
            let x = if finish == Finish::Add { S::add(load::<S>(p, n), x) } else { x };
            if n == l {
                S::store(p, x);
            } else if n > 0 {
                S::store_first(p, x, n);
            }
        }
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
