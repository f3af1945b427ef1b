//! The vector instructions the CPU kernels use, behind one small trait, and
//! which of them this CPU has.
//!
//! Every kernel computes each output as the same chain of IEEE operations
//! whatever the vector width: a lane of `_mm512_fmadd_ps` is the same
//! correctly rounded fused multiply-add as `_mm256_fmadd_ps` and as
//! `f32::mul_add`, and a lane of a vector add is a scalar add. So the choice
//! of instruction set changes the speed, never a bit.

#![allow(unsafe_op_in_unsafe_fn)]

use std::sync::OnceLock;

/// The widest vector instructions available.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F: 16 f32 lanes, 32 registers.
    Avx512,
    /// AVX2 with FMA: 8 f32 lanes, 16 registers. AVX2's integer vectors
    /// matter to the f64 math of the activations (exponent bits, masks) and
    /// to building masks for partial vectors: compiled for AVX alone, a
    /// mask's comparison was a function call on every masked copy.
    Avx2,
    /// Neither: plain scalar loops (`f32::mul_add`).
    Scalar,
}

impl Isa {
    /// Detected once per process.
    pub fn detected() -> Isa {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                if is_x86_feature_detected!("avx512f") {
                    return Isa::Avx512;
                }
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                    return Isa::Avx2;
                }
            }
            Isa::Scalar
        })
    }

    /// Every instruction set this CPU can run, widest first (tests run them all).
    pub fn available() -> Vec<Isa> {
        match Isa::detected() {
            Isa::Avx512 => vec![Isa::Avx512, Isa::Avx2, Isa::Scalar],
            Isa::Avx2 => vec![Isa::Avx2, Isa::Scalar],
            Isa::Scalar => vec![Isa::Scalar],
        }
    }

    /// f32 lanes per vector: its [`Simd`] implementation's `LANES`.
    pub fn lanes(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => <Avx512 as Simd>::LANES,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => <Avx2 as Simd>::LANES,
            _ => <Scalar as Simd>::LANES,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "AVX-512",
            Isa::Avx2 => "AVX2 + FMA",
            Isa::Scalar => "scalar",
        }
    }
}

/// f32 vectors of `LANES` lanes. Every method is `unsafe`: the caller
/// guarantees the instruction set (a `#[target_feature]` function of
/// [`Isa`]'s kind) and that pointers cover the lanes they touch.
#[allow(clippy::missing_safety_doc)] // the contract above holds for every method
pub trait Simd: Copy {
    type V: Copy;
    const LANES: usize;
    unsafe fn zero() -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// The first `n` lanes from `p`, the rest 0.
    unsafe fn load_first(p: *const f32, n: usize) -> Self::V;
    /// Store the first `n` lanes at `p`.
    unsafe fn store_first(p: *mut f32, v: Self::V, n: usize);
    /// Every lane = `*p`.
    unsafe fn splat(p: *const f32) -> Self::V;
    /// `a·b + c`, rounded once.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
}

#[cfg(target_arch = "x86_64")]
pub use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Simd;
    use std::arch::x86_64::*;

    #[derive(Clone, Copy)]
    pub struct Avx512;

    impl Simd for Avx512 {
        type V = __m512;
        const LANES: usize = 16;
        #[inline(always)]
        unsafe fn zero() -> __m512 {
            _mm512_setzero_ps()
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            _mm512_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            _mm512_storeu_ps(p, v)
        }
        #[inline(always)]
        unsafe fn load_first(p: *const f32, n: usize) -> __m512 {
            _mm512_maskz_loadu_ps(mask16(n), p)
        }
        #[inline(always)]
        unsafe fn store_first(p: *mut f32, v: __m512, n: usize) {
            _mm512_mask_storeu_ps(p, mask16(n), v)
        }
        #[inline(always)]
        unsafe fn splat(p: *const f32) -> __m512 {
            _mm512_set1_ps(*p)
        }
        #[inline(always)]
        unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            _mm512_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn add(a: __m512, b: __m512) -> __m512 {
            _mm512_add_ps(a, b)
        }
    }

    #[inline(always)]
    fn mask16(n: usize) -> __mmask16 {
        if n >= 16 { 0xffff } else { ((1u32 << n) - 1) as __mmask16 }
    }

    #[derive(Clone, Copy)]
    pub struct Avx2;

    impl Simd for Avx2 {
        type V = __m256;
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn zero() -> __m256 {
            _mm256_setzero_ps()
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            _mm256_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256) {
            _mm256_storeu_ps(p, v)
        }
        #[inline(always)]
        unsafe fn load_first(p: *const f32, n: usize) -> __m256 {
            _mm256_maskload_ps(p, mask8(n))
        }
        #[inline(always)]
        unsafe fn store_first(p: *mut f32, v: __m256, n: usize) {
            _mm256_maskstore_ps(p, mask8(n), v)
        }
        #[inline(always)]
        unsafe fn splat(p: *const f32) -> __m256 {
            _mm256_broadcast_ss(&*p)
        }
        #[inline(always)]
        unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            _mm256_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn add(a: __m256, b: __m256) -> __m256 {
            _mm256_add_ps(a, b)
        }
    }

    /// Lanes below `n` set (their sign bit), for maskload/maskstore.
    #[inline(always)]
    unsafe fn mask8(n: usize) -> __m256i {
        let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n.min(8) as i32), idx)
    }
}

/// One lane: the portable fallback and the reference the others equal.
#[derive(Clone, Copy)]
pub struct Scalar;

impl Simd for Scalar {
    type V = f32;
    const LANES: usize = 1;
    #[inline(always)]
    unsafe fn zero() -> f32 {
        0.0
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> f32 {
        *p
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: f32) {
        *p = v
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> f32 {
        if n > 0 { *p } else { 0.0 }
    }
    #[inline(always)]
    unsafe fn store_first(p: *mut f32, v: f32, n: usize) {
        if n > 0 {
            *p = v
        }
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> f32 {
        *p
    }
    #[inline(always)]
    unsafe fn fma(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    unsafe fn add(a: f32, b: f32) -> f32 {
        a + b
    }
}

/// Ask for the cache line holding `p` to be brought into L1 ahead of its
/// use. A hint only: it never faults, whatever the address, and changes no
/// value.
#[inline(always)]
pub fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing architecturally and never faults.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
