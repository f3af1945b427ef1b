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
/// lane by lane (the same integer operations, in vector registers).
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

    /// The words of `N` consecutive blocks from `first`: `[word][block]`.
    #[inline(always)]
    pub fn blocks<const N: usize>(&self, purpose: Purpose, step: u64, first: u32) -> [[u32; N]; 4] {
        philox4x32_10_lanes(crate::engine::math::lanes(|i| first.wrapping_add(i as u32)), [step as u32, (step >> 32) as u32, purpose as u32], self.key)
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

    #[test]
    fn lanes_equal_single_blocks() {
        let r = Rng::new(0x1234_5678_9abc);
        let w: [[u32; 16]; 4] = r.blocks(Purpose::Dropout, 77, u32::MAX - 5);
        for b in 0..16 {
            let one = r.block(Purpose::Dropout, 77, (u32::MAX - 5).wrapping_add(b as u32));
            assert_eq!([w[0][b], w[1][b], w[2][b], w[3][b]], one);
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
