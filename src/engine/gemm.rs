#![allow(unsafe_op_in_unsafe_fn)]
//! Matrix multiply for the CPU: `C = A·B` or `C += A·B`, f32, row-major `C`.
//!
//! Why our own and not the `gemm` crate: the crate's fast x86 kernel needs
//! AVX2, which the project's reference machine lacks, and its summation order
//! depends on its blocking. Here every output element is **one FMA chain over
//! k in ascending order**, started from 0 (or from the old `C` when
//! accumulating). Blocking over k reloads the partial sum and continues the
//! same chain, so tiling, thread count and the SIMD/scalar choice never change
//! a bit: the scalar path uses `f32::mul_add`, which is the same correctly
//! rounded fused multiply-add as the AVX `vfmadd` instruction.
//!
//! Work is split into output tiles (never over k), scheduled by rayon.

use rayon::prelude::*;
use std::cell::RefCell;

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

const MR: usize = 6;
const NR: usize = 16;
/// Rows of C per task (a multiple of MR).
const MB: usize = 48;
/// Columns of C per task (a multiple of NR).
const NB: usize = 256;
/// Depth of one k block: keeps the A and B blocks of a task in L2.
const KC: usize = 256;

thread_local! {
    static PACK: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// `C[m×n] (+)= A[m×k] · B[k×n]`; `C` is row-major with row stride `ldc`.
/// With `accumulate == false` the old contents of `C` are ignored.
pub fn gemm(m: usize, n: usize, k: usize, a: MatRef, b: MatRef, c: &mut [f32], ldc: usize, accumulate: bool) {
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
    let tiles_m = m.div_ceil(MB);
    let tiles_n = n.div_ceil(NB);
    let cp = SendPtr(c.as_mut_ptr());
    let simd = simd_available();
    let run = |t: usize| {
        let cp = cp;
        let (ti, tj) = (t / tiles_n, t % tiles_n);
        let (i0, j0) = (ti * MB, tj * NB);
        let (mt, nt) = (MB.min(m - i0), NB.min(n - j0));
        // SAFETY: tiles are disjoint rectangles of C, bounds checked above.
        unsafe { tile(i0, j0, mt, nt, k, a, b, cp.0, ldc, accumulate, simd) };
    };
    let tiles = tiles_m * tiles_n;
    if tiles == 1 {
        run(0);
    } else {
        (0..tiles).into_par_iter().for_each(run);
    }
}

fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::env::var_os("ACTLAB_NO_SIMD").is_none()
            && is_x86_feature_detected!("avx")
            && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One output tile: for each k block, pack the B block into 16-wide panels
/// (zero-padded at the right edge), then run the micro-kernel over it.
#[allow(clippy::too_many_arguments)]
unsafe fn tile(i0: usize, j0: usize, mt: usize, nt: usize, k: usize, a: MatRef, b: MatRef, c: *mut f32, ldc: usize, accumulate: bool, simd: bool) {
    PACK.with(|pack| {
        let mut pack = pack.borrow_mut();
        let panels = nt.div_ceil(NR);
        let need = panels * NR * KC.min(k);
        if pack.len() < need {
            pack.resize(need, 0.0);
        }
        let mut k0 = 0;
        while k0 < k {
            let kc = KC.min(k - k0);
            // Pack B[k0..k0+kc, j0..j0+nt] as panels of kc×NR.
            for p in 0..panels {
                let dst = &mut pack[p * NR * kc..(p + 1) * NR * kc];
                let jw = NR.min(nt - p * NR);
                for kk in 0..kc {
                    let row = &mut dst[kk * NR..kk * NR + NR];
                    let base = (k0 + kk) * b.rs + (j0 + p * NR) * b.cs;
                    for (jj, v) in row.iter_mut().enumerate().take(jw) {
                        *v = *b.data.get_unchecked(base + jj * b.cs);
                    }
                    row[jw..].fill(0.0);
                }
            }
            let init_from_c = accumulate || k0 > 0;
            for p in 0..panels {
                let bp = pack.as_ptr().add(p * NR * kc);
                let jw = NR.min(nt - p * NR);
                let mut i = 0;
                while i < mt {
                    let rows = MR.min(mt - i);
                    let ap = a.data.as_ptr().add((i0 + i) * a.rs + k0 * a.cs);
                    let cp = c.add((i0 + i) * ldc + j0 + p * NR);
                    micro(kc, ap, a.rs, a.cs, rows, bp, cp, ldc, jw, init_from_c, simd);
                    i += MR;
                }
            }
            k0 += kc;
        }
    });
}

/// A `rows×cols` (≤ 6×16) block of C: FMA chains over `kc` steps.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn micro(kc: usize, a: *const f32, a_rs: usize, a_cs: usize, rows: usize, b: *const f32, c: *mut f32, ldc: usize, cols: usize, init_from_c: bool, simd: bool) {
    let mut acc = [[0f32; NR]; MR];
    if init_from_c {
        for r in 0..rows {
            for j in 0..cols {
                acc[r][j] = *c.add(r * ldc + j);
            }
        }
    }
    // Rows past the edge repeat the last valid row of A; their results are dropped.
    let mut arow = [a; MR];
    for (r, p) in arow.iter_mut().enumerate() {
        *p = a.add(r.min(rows - 1) * a_rs);
    }
    #[cfg(target_arch = "x86_64")]
    if simd {
        kernel_avx(kc, &arow, a_cs, b, &mut acc);
    } else {
        kernel_scalar(kc, &arow, a_cs, b, &mut acc);
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = simd;
        kernel_scalar(kc, &arow, a_cs, b, &mut acc);
    }
    for r in 0..rows {
        for j in 0..cols {
            *c.add(r * ldc + j) = acc[r][j];
        }
    }
}

/// The reference kernel: the same chains, one element at a time.
unsafe fn kernel_scalar(kc: usize, arow: &[*const f32; MR], a_cs: usize, b: *const f32, acc: &mut [[f32; NR]; MR]) {
    for kk in 0..kc {
        let brow = b.add(kk * NR);
        for r in 0..MR {
            let av = *arow[r].add(kk * a_cs);
            for j in 0..NR {
                acc[r][j] = av.mul_add(*brow.add(j), acc[r][j]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,fma")]
unsafe fn kernel_avx(kc: usize, arow: &[*const f32; MR], a_cs: usize, b: *const f32, acc: &mut [[f32; NR]; MR]) {
    use std::arch::x86_64::*;
    let mut c: [[__m256; 2]; MR] = [[_mm256_setzero_ps(); 2]; MR];
    for r in 0..MR {
        c[r][0] = _mm256_loadu_ps(acc[r].as_ptr());
        c[r][1] = _mm256_loadu_ps(acc[r].as_ptr().add(8));
    }
    let [a0, a1, a2, a3, a4, a5] = *arow;
    for kk in 0..kc {
        let b0 = _mm256_loadu_ps(b.add(kk * NR));
        let b1 = _mm256_loadu_ps(b.add(kk * NR + 8));
        let o = kk * a_cs;
        macro_rules! row {
            ($r:expr, $p:expr) => {
                let av = _mm256_broadcast_ss(&*$p.add(o));
                c[$r][0] = _mm256_fmadd_ps(av, b0, c[$r][0]);
                c[$r][1] = _mm256_fmadd_ps(av, b1, c[$r][1]);
            };
        }
        row!(0, a0);
        row!(1, a1);
        row!(2, a2);
        row!(3, a3);
        row!(4, a4);
        row!(5, a5);
    }
    for r in 0..MR {
        _mm256_storeu_ps(acc[r].as_mut_ptr(), c[r][0]);
        _mm256_storeu_ps(acc[r].as_mut_ptr().add(8), c[r][1]);
    }
}

/// Reference used by tests: the same chain written plainly.
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

    fn fill(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn matches_reference_bit_for_bit_on_odd_shapes() {
        for &(m, n, k) in &[(1, 1, 1), (7, 10, 3), (64, 33, 300), (50, 17, 513), (13, 300, 9)] {
            let a = fill(m * k, 1);
            let bt = fill(n * k, 2); // B stored transposed, to exercise strides
            let b = MatRef::transposed(&bt, k);
            for &acc in &[false, true] {
                let mut c1 = fill(m * n, 3);
                let mut c2 = c1.clone();
                gemm(m, n, k, MatRef::rows(&a, k), b, &mut c1, n, acc);
                gemm_reference(m, n, k, MatRef::rows(&a, k), b, &mut c2, n, acc);
                assert!(c1.iter().zip(&c2).all(|(x, y)| x.to_bits() == y.to_bits()), "{m}x{n}x{k} acc={acc}");
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
