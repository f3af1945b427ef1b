//! Matrix multiply for the CPU: `C = A·B` or `C += A·B`, f32, row-major `C`.
//!
//! Why our own and not the `gemm` crate: its summation order depends on its
//! blocking. Here every output element is **one FMA chain over k in
//! ascending order**, started from 0 (or from the old `C` when accumulating).
//! Blocking over k reloads the partial sum and continues the same chain, so
//! tiling, thread count and vector width never change a bit.
//!
//! The structure is BLIS's, without most of the packing (the layers' operands
//! are already laid out well): A is read in place (a partial last row block
//! is copied, zero-padded); B is read in place when it is row-major in whole
//! panels, else packed once per block of KC steps of k into zero-padded
//! panels; when packing B would cost more than the product's transpose, the
//! transpose is computed instead. Every (row block, panel) pair is one call
//! of the micro-kernel, spread over rayon's threads.

#![allow(unsafe_op_in_unsafe_fn)]

use super::simd::{prefetch, Isa, Simd};
use super::tile::{strided, tile, Start};
use super::alloc::LINE;
use super::{isa_dispatch, with_packed, SendPtr, Shapes};
use crate::engine::profile;
use rayon::prelude::*;

/// A read-only strided matrix view: element (i, j) is `data[i*rs + j*cs]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// Row-major matrix with `cols` columns.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        MatRef { data, rs: cols, cs: 1 }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        MatRef { data, rs: 1, cs: cols }
    }
    fn check(&self, r: usize, c: usize, what: &str) {
        if r > 0 && c > 0 {
            let last = (r - 1) * self.rs + (c - 1) * self.cs;
            assert!(last < self.data.len(), "gemm: {what} view out of bounds");
        }
    }
}

/// How many rows of an in-place B [`block_with`] asks for ahead of their
/// use. dense1's forward product, in the training step (B = its 4.7 MB of
/// weights, cold): 1.29–1.65 ms without, 1.03–1.09 ms with 48 rows (three
/// alternations of `actlab bench`); 32 to 128 did about as well alone.
const B_AHEAD: usize = 48;

/// Depth of one k block: a row block's packed A and a panel of B stay in L1/L2.
const KC: usize = 256;

/// The general product's blocks.
const BLOCK: Shapes = Shapes { avx512: (12, 2), avx2: (6, 2), scalar: (4, 4) };

/// `C[m×n] (+)= A[m×k] · B[k×n]`; `C` is row-major with row stride `ldc`.
/// With `accumulate == false` the old contents of `C` are ignored.
#[allow(clippy::too_many_arguments)]
pub fn gemm(m: usize, n: usize, k: usize, a: MatRef, b: MatRef, c: &mut [f32], ldc: usize, accumulate: bool) {
    gemm_on(Isa::detected(), m, n, k, a, b, c, ldc, accumulate)
}

#[allow(clippy::too_many_arguments)]
fn gemm_on(isa: Isa, m: usize, n: usize, k: usize, a: MatRef, b: MatRef, c: &mut [f32], ldc: usize, accumulate: bool) {
    if m == 0 || n == 0 {
        return;
    }
    a.check(m, k, "A");
    b.check(k, n, "B");
    assert!(ldc >= n && (m - 1) * ldc + n <= c.len(), "gemm: C out of bounds");
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[i * ldc..i * ldc + n].fill(0.0);
            }
        }
        return;
    }
    let (mr, nr) = (BLOCK.rows(isa), BLOCK.columns(isa));
    let (row_blocks, panels) = (m.div_ceil(mr), n.div_ceil(nr));
    // A row-major B of whole panels is read in place; any other is packed.
    let b_in_place = b.cs == 1 && n.is_multiple_of(nr);
    if !b_in_place && m * k + m * n < k * n {
        // Packing B would cost more than computing Cᵀ = Bᵀ·Aᵀ (whose B is
        // the small Aᵀ) and transposing it: the same products, the same chains.
        profile::path(|| "computed as Cᵀ = Bᵀ·Aᵀ".to_string());
        return via_transpose(isa, m, n, k, a, b, c, ldc, accumulate);
    }
    // A is read in place, but for a last, partial row block, copied with zero rows.
    let partial = !m.is_multiple_of(mr);
    // k in blocks of KC, B in place or not: a block's panel of B stays in L1
    // while the row blocks pass over it (dense1's whole 2304-deep panel did
    // not, and ran at a third of the peak).
    let kc_max = KC.min(k);
    // Tasks walk down A's row blocks with B's panel fixed, unless A's block
    // is the larger operand (dense1's weight gradient: 2304 rows of A, 64
    // deep): then across the panels with A's row block fixed, so neither
    // is streamed again from memory once per block of the other.
    let rows_inner = m <= n;
    profile::path(|| {
        let b = if b_in_place { "B read in place" } else { "B packed" };
        let order = if rows_inner { "row blocks within a panel" } else { "panels within a row block" };
        format!("{}, {mr}×{nr} blocks, {b}, k in blocks of {kc_max}, {order}", isa.name())
    });
    let (a_len, b_len) = (if partial { kc_max * mr } else { 0 }, if b_in_place { 0 } else { panels * kc_max * nr });
    let cp = SendPtr(c.as_mut_ptr());
    with_packed(a_len + b_len, |packed| {
        let (pa, pb) = packed.split_at_mut(a_len);
        for k0 in (0..k).step_by(kc_max) {
            let kc = kc_max.min(k - k0);
            if partial {
                pack(a, (row_blocks - 1) * mr, m, k0, kc, mr, pa);
            }
            let (b_rows, b_ks) = if b_in_place {
                (&b.data[k0 * b.rs..], b.rs)
            } else {
                // B's panels are A's with the roles of rows and columns exchanged.
                let bt = MatRef { data: b.data, rs: b.cs, cs: b.rs };
                pb[..panels * kc * nr].par_chunks_mut(kc * nr).enumerate().for_each(|(q, dst)| pack(bt, q * nr, n, k0, kc, nr, dst));
                (&pb[..], nr)
            };
            let job = Job { a, pa, k0, b: b_rows, b_ks, b_in_place, kc, mr, nr, m, n, c: cp, ldc, rows_inner, start: if k0 == 0 && !accumulate { Start::Zero } else { Start::C }, b_rows_left: k - k0 };
            // SAFETY: each (row block, panel) pair writes its own part of C, checked above.
            (0..row_blocks * panels).into_par_iter().with_min_len(4).for_each(|t| unsafe { block(isa, &job, t) });
        }
    });
}

/// `C (+)= A·B` as `Cᵀ (+)= Bᵀ·Aᵀ` in a scratch buffer, then transposed into C.
#[allow(clippy::too_many_arguments)]
fn via_transpose(isa: Isa, m: usize, n: usize, k: usize, a: MatRef, b: MatRef, c: &mut [f32], ldc: usize, accumulate: bool) {
    fn t(x: MatRef<'_>) -> MatRef<'_> {
        MatRef { data: x.data, rs: x.cs, cs: x.rs }
    }
    TRANSPOSED.with(|ct| {
        let mut ct = ct.borrow_mut();
        ct.resize(n * m, 0.0);
        if accumulate {
            for i in 0..m {
                for j in 0..n {
                    ct[j * m + i] = c[i * ldc + j];
                }
            }
        }
        gemm_on(isa, n, m, k, t(b), t(a), &mut ct, m, accumulate);
        let ct: &[f32] = &ct;
        c.par_chunks_mut(ldc).take(m).enumerate().for_each(|(i, row)| {
            for (j, v) in row[..n].iter_mut().enumerate() {
                *v = ct[j * m + i];
            }
        });
    });
}

thread_local! {
    /// [`via_transpose`]'s Cᵀ.
    static TRANSPOSED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Rows `i0..i0+h` (zero past `m`) of `A[·, k0..k0+kc]`, as `[k][h]`.
fn pack(a: MatRef, i0: usize, m: usize, k0: usize, kc: usize, h: usize, dst: &mut [f32]) {
    let rows = h.min(m - i0);
    if a.cs == 1 {
        // Rows are contiguous in k: read along them.
        for i in 0..h {
            for kk in 0..kc {
                dst[kk * h + i] = if i < rows { a.data[(i0 + i) * a.rs + k0 + kk] } else { 0.0 };
            }
        }
    } else {
        for kk in 0..kc {
            for i in 0..h {
                dst[kk * h + i] = if i < rows { a.data[(i0 + i) * a.rs + (k0 + kk) * a.cs] } else { 0.0 };
            }
        }
    }
}

/// One k block's operands and where its results go.
struct Job<'a> {
    /// A, read in place from column `k0`, but for the last row block when
    /// partial: that one is `pa` (`[k][mr]`).
    a: MatRef<'a>,
    pa: &'a [f32],
    k0: usize,
    /// B's rows from this block's first k: in place (row stride `b_ks`) or
    /// packed panels (`[panel][k][nr]`).
    b: &'a [f32],
    b_ks: usize,
    b_in_place: bool,
    kc: usize,
    mr: usize,
    nr: usize,
    m: usize,
    n: usize,
    c: SendPtr,
    ldc: usize,
    /// Task order: row blocks within a panel (else panels within a row block).
    rows_inner: bool,
    start: Start,
    /// Rows of B from this block's first k to B's end (the rows a prefetch may ask for).
    b_rows_left: usize,
}

isa_dispatch! {
    fn block(job: &Job, t: usize) => block_with per BLOCK
}

#[inline(always)]
unsafe fn block_with<S: Simd, const MR: usize, const NV: usize>(job: &Job, t: usize) {
    debug_assert!(job.mr == MR && job.nr == NV * S::LANES);
    // Consecutive tasks share a panel of B and differ in A's row block, or
    // the reverse (see `Job::rows_inner`).
    let (row_blocks, panels) = (job.m.div_ceil(MR), job.n.div_ceil(job.nr));
    let (q, rb) = if job.rows_inner { (t / row_blocks, t % row_blocks) } else { (t % panels, t / panels) };
    let (i0, j0) = (rb * MR, q * job.nr);
    let rows = MR.min(job.m - i0);
    let a = if rows == MR { strided(job.a.data.as_ptr().add(i0 * job.a.rs + job.k0 * job.a.cs), job.a.rs, job.a.cs) } else { strided(job.pa.as_ptr(), 1, MR) };
    let c = job.c.0.add(i0 * job.ldc + j0);
    let b = if job.b_in_place { job.b.as_ptr().add(j0) } else { job.b.as_ptr().add(q * job.kc * job.nr) };
    // Rows of B read in place may start a new page each (dense1's are 2 KiB
    // apart), where the hardware's prefetchers do not follow: ask for the row
    // B_AHEAD steps on, a cache line at a time.
    let ahead = if job.b_in_place { job.b_rows_left } else { 0 };
    tile::<S, MR, NV>(
        job.kc,
        a,
        |k| {
            if k + B_AHEAD < ahead {
                for v in (0..NV * S::LANES).step_by(LINE / size_of::<f32>()) {
                    prefetch(b.add((k + B_AHEAD) * job.b_ks + v));
                }
            }
            b.add(k * job.b_ks)
        },
        job.n - j0,
        |i| if i < rows { c.add(i * job.ldc) } else { std::ptr::null_mut() },
        job.start,
    );
}

/// Reference used by tests: the same chain written plainly.
#[allow(clippy::too_many_arguments)] // gemm's own parameters
pub fn gemm_reference(m: usize, n: usize, k: usize, a: MatRef, b: MatRef, c: &mut [f32], ldc: usize, accumulate: bool) {
    for i in 0..m {
        for j in 0..n {
            let mut s = if accumulate { c[i * ldc + j] } else { 0.0 };
            for kk in 0..k {
                s = a.data[i * a.rs + kk * a.cs].mul_add(b.data[kk * b.rs + j * b.cs], s);
            }
            c[i * ldc + j] = s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu::test_values as fill;

    #[test]
    fn matches_reference_bit_for_bit_on_odd_shapes() {
        for &(m, n, k) in &[(1, 1, 1), (7, 10, 3), (64, 33, 300), (50, 17, 513), (13, 300, 9), (25, 64, 40), (64, 512, 300)] {
            let a = fill(m * k, 1);
            let bt = fill(n * k, 2); // B stored transposed, to exercise strides
            let b = MatRef::transposed(&bt, k);
            let b_rows: Vec<f32> = (0..k * n).map(|i| bt[(i % n) * k + i / n]).collect();
            // A also as its transpose's view (A[i, k] = at[k·m + i]).
            let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
            for (a, a_layout) in [(MatRef::rows(&a, k), "row-major"), (MatRef::transposed(&at, m), "transposed")] {
                for (b, layout) in [(b, "transposed"), (MatRef::rows(&b_rows, n), "row-major")] {
                    for &acc in &[false, true] {
                        let mut c0 = fill(m * n, 3);
                        c0[0] = -0.0;
                        let mut want = c0.clone();
                        gemm_reference(m, n, k, a, b, &mut want, n, acc);
                        for isa in Isa::available() {
                            let mut c1 = c0.clone();
                            gemm_on(isa, m, n, k, a, b, &mut c1, n, acc);
                            let same = c1.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits());
                            assert!(same, "{m}x{n}x{k} acc={acc} {a_layout} A, {layout} B, {isa:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn agrees_with_f64_product() {
        let (m, n, k) = (20, 19, 77);
        let a = fill(m * k, 4);
        let b = fill(k * n, 5);
        let mut c = vec![0.0; m * n];
        gemm(m, n, k, MatRef::rows(&a, k), MatRef::rows(&b, n), &mut c, n, false);
        for i in 0..m {
            for j in 0..n {
                let s: f64 = (0..k).map(|kk| a[i * k + kk] as f64 * b[kk * n + j] as f64).sum();
                assert!((c[i * n + j] as f64 - s).abs() < 1e-4, "({i},{j})");
            }
        }
    }
}
