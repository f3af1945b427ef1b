//! Counter-based random numbers (Philox4x32-10, Salmon et al. 2011).
//!
//! A random number is a pure function of (run seed, purpose, step, index):
//! no generator state is carried or shared between threads, so the thread
//! count, the device and a resume from a checkpoint cannot change a draw.

/// What a random stream is used for; part of every counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Purpose {
    /// Initial weights; `step` is the parameter tensor's index.
    Init = 1,
    /// The epoch's shuffle; `step` is the epoch.
    Shuffle = 2,
    /// Dropout masks; `step` is the global training step, shifted by layer.
    Dropout = 3,
    /// Synthetic data for tests and benchmarks.
    Synthetic = 4,
}

use crate::engine::cpu::simd::Isa;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rng {
    key: [u32; 2],
}

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// The Philox4x32 bijection with 10 rounds.
#[inline]
fn philox4x32_10(mut ctr: [u32; 4], mut key: [u32; 2]) -> [u32; 4] {
    for _ in 0..10 {
        let (hi0, lo0) = mulhilo(M0, ctr[0]);
        let (hi1, lo1) = mulhilo(M1, ctr[2]);
        ctr = [hi1 ^ ctr[1] ^ key[0], lo1, hi0 ^ ctr[3] ^ key[1], lo0];
        key = [key[0].wrapping_add(W0), key[1].wrapping_add(W1)];
    }
    ctr
}

/// [`philox4x32_10`] of `N` counters that differ only in their first word,
/// lane by lane (the same integer operations; how well they vectorise is
/// up to the compiler, see [`Rng::blocks16`]).
#[inline(always)]
fn philox4x32_10_lanes<const N: usize>(first: [u32; N], rest: [u32; 3], key: [u32; 2]) -> [[u32; N]; 4] {
    use crate::engine::math::lanes;
    let mut c = [first, [rest[0]; N], [rest[1]; N], [rest[2]; N]];
    let mut key = key;
    for _ in 0..10 {
        let p0: [u64; N] = lanes(|i| M0 as u64 * c[0][i] as u64);
        let p1: [u64; N] = lanes(|i| M1 as u64 * c[2][i] as u64);
        c = [
            lanes(|i| (p1[i] >> 32) as u32 ^ c[1][i] ^ key[0]),
            lanes(|i| p1[i] as u32),
            lanes(|i| (p0[i] >> 32) as u32 ^ c[3][i] ^ key[1]),
            lanes(|i| p0[i] as u32),
        ];
        key = [key[0].wrapping_add(W0), key[1].wrapping_add(W1)];
    }
    c
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { key: [seed as u32, (seed >> 32) as u32] }
    }

    /// Four independent 32-bit words for (purpose, step, block).
    #[inline]
    pub fn block(&self, purpose: Purpose, step: u64, block: u32) -> [u32; 4] {
        philox4x32_10([block, step as u32, (step >> 32) as u32, purpose as u32], self.key)
    }

    /// The words of 16 consecutive blocks from `first`: `[word][block]`,
    /// computed with `isa`. With AVX-512 or AVX2 the rounds are written with
    /// that set's 32 × 32 → 64-bit vector multiplies (the `x86` module):
    /// from the lane form LLVM made scalar multiplies and lane inserts, 17
    /// cycles a block, and dropout's masks were 3 % of a step.
    ///
    /// # Safety
    /// This CPU has `isa` (one of [`Isa::available`]).
    #[inline(always)]
    pub(crate) unsafe fn blocks16(&self, isa: Isa, purpose: Purpose, step: u64, first: u32) -> [[u32; 16]; 4] {
        let rest = [step as u32, (step >> 32) as u32, purpose as u32];
        match isa {
            // SAFETY (both): the caller's `isa` is one this CPU has.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { x86::philox16_avx512(first, rest, self.key) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { x86::philox16_avx2(first, rest, self.key) },
            _ => philox4x32_10_lanes(crate::engine::math::lanes(|i| first.wrapping_add(i as u32)), rest, self.key),
        }
    }

    /// A uniform f32 in [0, 1) for element `index` of a stream: 24 random bits.
    #[inline]
    pub fn uniform(&self, purpose: Purpose, step: u64, index: u64) -> f32 {
        Rng::unit(self.block(purpose, step, (index / 4) as u32)[(index % 4) as usize])
    }

    /// A 32-bit word as a uniform f32 in [0, 1): its top 24 bits.
    #[inline(always)]
    pub fn unit(w: u32) -> f32 {
        (w >> 8) as f32 * (1.0 / 16_777_216.0)
    }

    /// Fill `out` with uniform [0, 1) values of one stream.
    pub fn fill_uniform(&self, purpose: Purpose, step: u64, out: &mut [f32]) {
        for (b, chunk) in out.chunks_mut(4).enumerate() {
            let w = self.block(purpose, step, b as u32);
            for (o, &wi) in chunk.iter_mut().zip(&w) {
                *o = Rng::unit(wi);
            }
        }
    }

    /// A uniform integer in [0, n) (Lemire's multiply-shift; n < 2^32).
    #[inline]
    pub fn below(&self, purpose: Purpose, step: u64, index: u64, n: u32) -> u32 {
        let w = self.block(purpose, step, (index / 4) as u32)[(index % 4) as usize];
        ((w as u64 * n as u64) >> 32) as u32
    }

    /// The permutation of 0..n for `step` (Fisher–Yates, draws by position).
    pub fn permutation(&self, purpose: Purpose, step: u64, n: usize) -> Vec<u32> {
        let mut p: Vec<u32> = (0..n as u32).collect();
        for i in (1..n).rev() {
            let j = self.below(purpose, step, i as u64, i as u32 + 1) as usize;
            p.swap(i, j);
        }
        p
    }
}

/// [`philox4x32_10`] of 16 counters that differ in their first word by
/// 0..16, in x86 vector registers. A 32 × 32 → 64-bit multiply
/// (`mul_epu32`) takes the low word of each 64-bit lane, so the even
/// words' products come from the counters as they are and the odd words'
/// from the counters shifted down; each product's high and low halves are
/// then blended back into word order.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{M0, M1, W0, W1};
    use std::arch::x86_64::*;

    /// Odd 32-bit words of a vector: take them from the second operand.
    const ODD_16: u16 = 0xAAAA;
    const ODD_8: i32 = 0xAA;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn philox16_avx512(first: u32, rest: [u32; 3], mut key: [u32; 2]) -> [[u32; 16]; 4] {
        let splat = |v: u32| _mm512_set1_epi32(v as i32);
        // (high, low) words of m·c per word.
        let mulhilo = |m: u32, c: __m512i| {
            let even = _mm512_mul_epu32(splat(m), c);
            let odd = _mm512_mul_epu32(splat(m), _mm512_srli_epi64::<32>(c));
            (_mm512_mask_blend_epi32(ODD_16, _mm512_srli_epi64::<32>(even), odd), _mm512_mask_blend_epi32(ODD_16, even, _mm512_slli_epi64::<32>(odd)))
        };
        let step = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let mut c = [_mm512_add_epi32(splat(first), step), splat(rest[0]), splat(rest[1]), splat(rest[2])];
        for _ in 0..10 {
            let (hi0, lo0) = mulhilo(M0, c[0]);
            let (hi1, lo1) = mulhilo(M1, c[2]);
            c = [_mm512_xor_si512(_mm512_xor_si512(hi1, c[1]), splat(key[0])), lo1, _mm512_xor_si512(_mm512_xor_si512(hi0, c[3]), splat(key[1])), lo0];
            key = [key[0].wrapping_add(W0), key[1].wrapping_add(W1)];
        }
        let mut out = [[0u32; 16]; 4];
        for (o, v) in out.iter_mut().zip(c) {
            // SAFETY: 16 words to 16 words.
            unsafe { _mm512_storeu_si512(o.as_mut_ptr().cast(), v) };
        }
        out
    }

    #[target_feature(enable = "avx,avx2,fma")]
    pub(super) unsafe fn philox16_avx2(first: u32, rest: [u32; 3], key: [u32; 2]) -> [[u32; 16]; 4] {
        let splat = |v: u32| _mm256_set1_epi32(v as i32);
        let mulhilo = |m: u32, c: __m256i| {
            let even = _mm256_mul_epu32(splat(m), c);
            let odd = _mm256_mul_epu32(splat(m), _mm256_srli_epi64::<32>(c));
            (_mm256_blend_epi32::<ODD_8>(_mm256_srli_epi64::<32>(even), odd), _mm256_blend_epi32::<ODD_8>(even, _mm256_slli_epi64::<32>(odd)))
        };
        let mut out = [[0u32; 16]; 4];
        for half in 0..2 {
            let mut key = key;
            let step = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let mut c = [_mm256_add_epi32(splat(first.wrapping_add(8 * half as u32)), step), splat(rest[0]), splat(rest[1]), splat(rest[2])];
            for _ in 0..10 {
                let (hi0, lo0) = mulhilo(M0, c[0]);
                let (hi1, lo1) = mulhilo(M1, c[2]);
                c = [_mm256_xor_si256(_mm256_xor_si256(hi1, c[1]), splat(key[0])), lo1, _mm256_xor_si256(_mm256_xor_si256(hi0, c[3]), splat(key[1])), lo0];
                key = [key[0].wrapping_add(W0), key[1].wrapping_add(W1)];
            }
            for (o, v) in out.iter_mut().zip(c) {
                // SAFETY: 8 words into the half's 8.
                unsafe { _mm256_storeu_si256(o[8 * half..].as_mut_ptr().cast(), v) };
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)] // index loops mirror the formulas they check
mod tests {
    use super::*;

    #[test]
    fn philox_known_answer() {
        // Known-answer vectors from the Random123 distribution (kat_vectors).
        assert_eq!(philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
        assert_eq!(
            philox4x32_10([0xffffffff; 4], [0xffffffff; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    /// On every instruction set this CPU has, across the counter's wrap
    /// and with a step that fills all of the counter's words.
    #[test]
    fn lanes_equal_single_blocks() {
        let r = Rng::new(0x1234_5678_9abc);
        for isa in Isa::available() {
            for (step, first) in [(77, u32::MAX - 5), (0xdead_beef_0123_4567, 9)] {
                // SAFETY: one of the available instruction sets.
                let w = unsafe { r.blocks16(isa, Purpose::Dropout, step, first) };
                for b in 0..16 {
                    let one = r.block(Purpose::Dropout, step, first.wrapping_add(b as u32));
                    assert_eq!([w[0][b], w[1][b], w[2][b], w[3][b]], one, "{isa:?}, step {step}, block {b}");
                }
            }
        }
    }

    #[test]
    fn uniform_is_in_range_and_roughly_uniform() {
        let r = Rng::new(7);
        let mut v = vec![0.0; 40_000];
        r.fill_uniform(Purpose::Synthetic, 3, &mut v);
        assert!(v.iter().all(|&x| (0.0..1.0).contains(&x)));
        let mean: f32 = v.iter().sum::<f32>() / v.len() as f32;
        assert!((mean - 0.5).abs() < 0.01);
        assert_eq!(v[5], r.uniform(Purpose::Synthetic, 3, 5));
        let p = r.permutation(Purpose::Shuffle, 1, 1000);
        let mut s = p.clone();
        s.sort();
        assert_eq!(s, (0..1000).collect::<Vec<_>>());
        assert_ne!(p, r.permutation(Purpose::Shuffle, 2, 1000));
    }
}
