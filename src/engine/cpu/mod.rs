//! The CPU engine's matrix products: one micro-kernel ([`tile`], with
//! [`tile::tile_sum`] for a sum of its chains) over the vector instructions
//! this CPU has ([`simd`]), driven for general matrices ([`gemm`]) and for
//! convolutions without an im2col matrix ([`conv`]). Large buffers start on
//! a cache line ([`alloc`]).
//!
//! The arithmetic is fixed: every output element is one FMA chain over k in
//! ascending order, from a stated start; col2im's scatter-adds happen in
//! its order. Blocking, threads and vector width only decide who computes
//! what, so the results are the same bits on every machine.

pub mod alloc;
pub mod conv;
pub mod gemm;
pub mod simd;
pub mod tile;

use std::cell::RefCell;

/// A kernel's block shape per instruction set: (rows, vectors). The one
/// statement of it: [`isa_dispatch!`] compiles the kernel with it, and the
/// callers that cut the work into blocks read it through [`Shapes::rows`].
#[derive(Clone, Copy)]
pub(crate) struct Shapes {
    pub avx512: (usize, usize),
    pub avx2: (usize, usize),
    pub scalar: (usize, usize),
}

impl Shapes {
    fn of(&self, isa: simd::Isa) -> (usize, usize) {
        match isa {
            simd::Isa::Avx512 => self.avx512,
            simd::Isa::Avx2 => self.avx2,
            simd::Isa::Scalar => self.scalar,
        }
    }

    /// Rows per block on `isa`.
    pub fn rows(&self, isa: simd::Isa) -> usize {
        self.of(isa).0
    }

    /// Columns per block on `isa`: its vectors × the lanes of one.
    pub fn columns(&self, isa: simd::Isa) -> usize {
        self.of(isa).1 * isa.lanes()
    }
}

/// Define `$name(isa, args…)`, which runs `$generic::<S, MR, NV>(args…)`
/// compiled for `isa`, with the block shape (`MR` rows × `NV` vectors) that
/// the [`Shapes`] constant `$shapes` gives for that instruction set.
macro_rules! isa_dispatch {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $generic:ident per $shapes:path) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis unsafe fn $name(isa: $crate::engine::cpu::simd::Isa, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx512($($arg: $ty),*) {
                $generic::<$crate::engine::cpu::simd::Avx512, { $shapes.avx512.0 }, { $shapes.avx512.1 }>($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx,avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx2($($arg: $ty),*) {
                $generic::<$crate::engine::cpu::simd::Avx2, { $shapes.avx2.0 }, { $shapes.avx2.1 }>($($arg),*)
            }
            match isa {
                #[cfg(target_arch = "x86_64")]
                $crate::engine::cpu::simd::Isa::Avx512 => avx512($($arg),*),
                #[cfg(target_arch = "x86_64")]
                $crate::engine::cpu::simd::Isa::Avx2 => avx2($($arg),*),
                _ => $generic::<$crate::engine::cpu::simd::Scalar, { $shapes.scalar.0 }, { $shapes.scalar.1 }>($($arg),*),
            }
        }
    };
}
pub(crate) use isa_dispatch;

/// Define `$name(isa, args…)`, which runs `$body(args…)` compiled for
/// `isa`: the same code, with the vector instructions of that set (for
/// kernels written over [`crate::engine::real::Lanes`]). Unsafe: `isa`
/// must be one this CPU has ([`simd::Isa::available`]).
macro_rules! isa_compiled {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $body:path) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis unsafe fn $name(isa: $crate::engine::cpu::simd::Isa, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx512($($arg: $ty),*) {
                $body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx,avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx2($($arg: $ty),*) {
                $body($($arg),*)
            }
            // SAFETY: the caller vouches for `isa`.
            match isa {
                #[cfg(target_arch = "x86_64")]
                $crate::engine::cpu::simd::Isa::Avx512 => unsafe { avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                $crate::engine::cpu::simd::Isa::Avx2 => unsafe { avx2($($arg),*) },
                _ => $body($($arg),*),
            }
        }
    };
}
pub(crate) use isa_compiled;

/// `dst = src` for short runs (an im2col segment, 16 lanes), as inline
/// vector moves: `copy_from_slice` of a run-time length calls `memcpy`,
/// whose call costs more than these copies.
#[inline(always)]
pub(crate) fn copy_short(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    let mut d = dst.chunks_exact_mut(16);
    let mut s = src.chunks_exact(16);
    for (d, s) in (&mut d).zip(&mut s) {
        let s: &[f32; 16] = s.try_into().unwrap();
        *<&mut [f32; 16]>::try_from(d).unwrap() = *s;
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = std::hint::black_box(*s);
    }
}

/// A raw pointer that rayon tasks may share: each task writes a disjoint
/// part (the callers say which).
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub *mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

thread_local! {
    /// Per-thread scratch (a tile's im2col rows, a block of packed panels).
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// The calling thread's packed operands, shared read-only with its tasks.
    static PACKED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// This thread's scratch, at least `len` long (zero-filled when grown).
///
/// A plain slice rather than a closure over the thread-local: the kernels
/// that use it are `#[target_feature]` functions, and a closure would not
/// inherit their instruction set (its vector code would become calls).
///
/// # Safety
/// One user per thread at a time: the slice is invalidated by the next call
/// on the same thread.
pub(crate) unsafe fn thread_scratch<'a>(len: usize) -> &'a mut [f32] {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < len {
            s.resize(len, 0.0);
        }
        // SAFETY: the buffer lives as long as the thread; see above for aliasing.
        unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr(), len) }
    })
}

/// Run `f` with the calling thread's packing buffer, at least `len` long.
pub(crate) fn with_packed<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    PACKED.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < len {
            s.resize(len, 0.0);
        }
        f(&mut s[..len])
    })
}

/// Pseudo-random values in [−1, 1) for the kernels' tests (xorshift32).
#[cfg(test)]
pub(crate) fn test_values(n: usize, seed: u32) -> Vec<f32> {
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
