//! Transcendental functions the project controls.
//!
//! The platform's libm differs between systems (and the GPU's between driver
//! versions), so a run that calls it cannot promise the same bits everywhere.
//! These take an f32, compute in f64 with +, −, ×, ÷ only (each correctly
//! rounded by IEEE 754) and round once to f32. The f64 error is far below
//! half an f32 ulp, so results are faithful, and identical on every machine.
//!
//! Each function is written once over `N` lanes ([`F64x`]), without
//! branches: every lane runs the same operations and a lane's result is
//! chosen by comparisons, so a lane computes exactly what a lone value
//! (`N = 1`, the scalar functions below) computes, and the activation kernels
//! can evaluate 16 values per call in vector registers. The one branch,
//! `choose!`, skips a side that no lane takes: it saves the work, and no
//! lane's value depends on it.

use std::ops::{Add, Div, Mul, Neg, Sub};

/// `F64x::select(mask, then, otherwise)`, computing only the sides some
/// lane takes (a function's expensive alternatives: a series that few inputs
/// need, or the reverse). A macro, not a function of closures: a closure's
/// body is compiled without the caller's vector instructions.
macro_rules! choose {
    ($mask:expr, $then:expr, $otherwise:expr) => {{
        let mask = $mask;
        let then = if mask.contains(&true) { $then } else { F64x::splat(0.0) };
        let otherwise = if mask.contains(&false) { $otherwise } else { F64x::splat(0.0) };
        F64x::select(mask, then, otherwise)
    }};
}

const LN2: f64 = std::f64::consts::LN_2;
const LOG2E: f64 = std::f64::consts::LOG2_E;

/// `N` f64 values computed side by side, lane by lane.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct F64x<const N: usize>(pub [f64; N]);

/// Per-lane truth values of a comparison.
pub type Mask<const N: usize> = [bool; N];

/// `[f(0), …, f(N−1)]`. A plain loop: unlike `std::array::from_fn` and
/// `map`, it is always inlined, so lane code stays in vector registers of
/// the kernel that calls it.
#[inline(always)]
pub fn lanes<T: Copy + Default, const N: usize>(f: impl Fn(usize) -> T) -> [T; N] {
    let mut out = [T::default(); N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = f(i);
    }
    out
}

/// Lane i of `then` where `m[i]`, else of `otherwise`, chosen with bit
/// masks. A lane-wise `if` does the same, but for f32 lanes compiled for
/// AVX-512 LLVM made it scalar compares and moves (relu's pass ran 7×
/// slower than with AVX2); and/or of the bits vectorises on every
/// instruction set. The choice, and so every bit, is the same. (For f64
/// lanes the `if` is the faster: [`F64x::select`] keeps it.)
#[inline(always)]
pub fn pick32<const N: usize>(m: &Mask<N>, then: [f32; N], otherwise: [f32; N]) -> [f32; N] {
    lanes(|i| f32::from_bits(or_zero(then[i], m[i]).to_bits() | or_zero(otherwise[i], !m[i]).to_bits()))
}

/// `v` where `keep`, else +0, chosen by `v`'s bits and a mask of all ones
/// or all zeros: the form that vectorises on every instruction set (see
/// [`pick32`]). Dropout's mask and the pooling's winning element use it too.
#[inline(always)]
pub fn or_zero(v: f32, keep: bool) -> f32 {
    f32::from_bits(v.to_bits() & (keep as u32).wrapping_neg())
}

macro_rules! lanewise {
    ($tr:ident, $f:ident, $op:tt) => {
        impl<const N: usize> $tr for F64x<N> {
            type Output = Self;
            #[inline(always)]
            fn $f(self, o: Self) -> Self {
                F64x(lanes(|i| self.0[i] $op o.0[i]))
            }
        }
    };
}
lanewise!(Add, add, +);
lanewise!(Sub, sub, -);
lanewise!(Mul, mul, *);
lanewise!(Div, div, /);

impl<const N: usize> Neg for F64x<N> {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        self.map(|v| -v)
    }
}

impl<const N: usize> F64x<N> {
    #[inline(always)]
    pub fn splat(v: f64) -> Self {
        F64x([v; N])
    }
    #[inline(always)]
    pub fn map(self, f: impl Fn(f64) -> f64) -> Self {
        F64x(lanes(|i| f(self.0[i])))
    }
    #[inline(always)]
    pub fn test(self, f: impl Fn(f64) -> bool) -> Mask<N> {
        lanes(|i| f(self.0[i]))
    }
    /// Lane i from `then` where `m[i]`, else from `otherwise`.
    #[inline(always)]
    pub fn select(m: Mask<N>, then: Self, otherwise: Self) -> Self {
        F64x(lanes(|i| if m[i] { then.0[i] } else { otherwise.0[i] }))
    }
    /// f32 lanes widened (exactly).
    #[inline(always)]
    fn from_f32(x: [f32; N]) -> Self {
        F64x(lanes(|i| f64::from(x[i])))
    }
    /// Each lane rounded once to f32.
    #[inline(always)]
    fn to_f32(self) -> [f32; N] {
        lanes(|i| self.0[i] as f32)
    }
}

/// 2^52: adding it to an integer-valued f64 below 2^52 puts the integer in
/// the low bits of the mantissa (exactly), without a float-to-int conversion.
const TWO52: f64 = 4_503_599_627_370_496.0;

/// 2^e for integer-valued `e` in [−1022, 1023], built from its bits: the
/// biased exponent e + 1023 is read off the mantissa of e + 1023 + 2^52.
#[inline(always)]
fn pow2<const N: usize>(e: F64x<N>) -> F64x<N> {
    e.map(|e| f64::from_bits((e + (1023.0 + TWO52)).to_bits() << 52))
}

/// Round half away from zero (what `f64::round` does), from a truncation:
/// `x − trunc(x)` is exact.
#[inline(always)]
fn round<const N: usize>(x: F64x<N>) -> F64x<N> {
    let t = x.map(f64::trunc);
    let up = (x - t).test(|d| d.abs() >= 0.5);
    F64x::select(up, t + x.map(|v| 1f64.copysign(v)), t)
}

/// Each lane limited to [lo, hi] (NaN stays NaN).
#[inline(always)]
fn clamp<const N: usize>(x: F64x<N>, lo: f64, hi: f64) -> F64x<N> {
    let x = F64x::select(x.test(|v| v > hi), F64x::splat(hi), x);
    F64x::select(x.test(|v| v < lo), F64x::splat(lo), x)
}

/// e^x in f64 for the range the f32 functions need.
#[inline(always)]
pub(crate) fn exp64<const N: usize>(x: F64x<N>) -> F64x<N> {
    let (k, p) = exp64_reduced(x);
    // p·2^k without libm's ldexp, in two steps so subnormal results work:
    // the first power is clamped to ±1000, the second is the rest (2^0 = 1
    // multiplies exactly when there is no rest).
    let k1 = clamp(k, -1000.0, 1000.0);
    let y = p * pow2(k1) * pow2(k - k1);
    let y = F64x::select(x.test(|v| v < -745.0), F64x::splat(0.0), y);
    let y = F64x::select(x.test(|v| v > 709.0), F64x::splat(f64::INFINITY), y);
    F64x::select(x.test(f64::is_nan), x, y)
}

/// [`exp64`] of x ≤ 0 (−∞ included), with its every operation on such
/// lanes and without the steps that cannot change them: the clamp of k to
/// +1000 (here k ≤ 0), overflow (x > 709) and NaN. A NaN lane gives some
/// NaN, not `x`'s. softplus's exponential of −|x| is always one of these:
/// with [`ln1p64`]'s shortcut, leaving them out took softplus from 2.8 to
/// 2.5 ns a value (Zen 4, 32 lanes, every bit the same; the generated C,
/// written from the full functions, checks it across the f32 range).
#[inline(always)]
fn exp64_at_most_zero<const N: usize>(x: F64x<N>) -> F64x<N> {
    let (k, p) = exp64_reduced(x);
    let k1 = F64x::select(k.test(|v| v < -1000.0), F64x::splat(-1000.0), k);
    let y = p * pow2(k1) * pow2(k - k1);
    F64x::select(x.test(|v| v < -745.0), F64x::splat(0.0), y)
}

/// x = k·ln2 + r: the integer k, and e^r as a polynomial.
#[inline(always)]
fn exp64_reduced<const N: usize>(x: F64x<N>) -> (F64x<N>, F64x<N>) {
    // |r| ≤ ln2/2; ln2 split in two so k·LN2_HI is exact.
    // fdlibm's constants, quoted with all its digits.
    #[allow(clippy::excessive_precision)]
    const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-01;
    #[allow(clippy::excessive_precision)]
    const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
    let s = F64x::splat;
    let k = round(x * s(LOG2E));
    let r = (x - k * s(LN2_HI)) - k * s(LN2_LO);
    // Taylor to degree 10: the remainder is below 3e-13 relative for
    // |r| ≤ 0.35, far under half an f32 ulp (3e-8).
    let mut p = s(1.0 / 3_628_800.0);
    for d in [362_880.0, 40_320.0, 5_040.0, 720.0, 120.0, 24.0, 6.0, 2.0, 1.0, 1.0] {
        p = p * r + s(1.0 / d);
    }
    (k, p)
}

/// Natural log in f64 for positive finite x (NaN below 0, −∞ at 0, ∞ at ∞).
#[inline(always)]
pub(crate) fn ln64<const N: usize>(x: F64x<N>) -> F64x<N> {
    let s = F64x::splat;
    // Subnormals are scaled into the normal range first.
    let tiny = x.test(|v| v < f64::MIN_POSITIVE);
    let x1 = F64x::select(tiny, x * s(2f64.powi(64)), x);
    let e0 = F64x::select(tiny, s(-64.0), s(0.0));
    let y = ln64_scaled(x1, e0);
    let y = F64x::select(x.test(f64::is_infinite), x, y);
    let y = F64x::select(x.test(|v| v == 0.0), s(f64::NEG_INFINITY), y);
    F64x::select(x.test(|v| v.is_nan() || v < 0.0), s(f64::NAN), y)
}

/// ln(x1) + e0·ln 2 for a normal, finite x1 > 0 and an integer-valued e0
/// (the power of 2 [`ln64`] scaled a subnormal by).
#[inline(always)]
fn ln64_scaled<const N: usize>(x1: F64x<N>, e0: F64x<N>) -> F64x<N> {
    let s = F64x::splat;
    // The biased exponent, as an f64 integer (from the mantissa of 2^52 + it).
    let e1 = x1.map(|v| f64::from_bits(TWO52.to_bits() | ((v.to_bits() >> 52) & 0x7ff)) - TWO52) - s(1023.0);
    let m = x1.map(|v| f64::from_bits((v.to_bits() & !(0x7ffu64 << 52)) | (1023u64 << 52))); // [1, 2)
    let big = m.test(|v| v > std::f64::consts::SQRT_2);
    let m = F64x::select(big, m * s(0.5), m);
    let e = F64x::select(big, e0 + e1 + s(1.0), e0 + e1);
    // ln m = 2·atanh(q), q = (m−1)/(m+1), |q| ≤ 0.172: the series to q^13
    // leaves a relative remainder below 1e-12.
    let q = (m - s(1.0)) / (m + s(1.0));
    let q2 = q * q;
    let mut p = s(1.0 / 13.0);
    for d in [11.0, 9.0, 7.0, 5.0, 3.0, 1.0] {
        p = p * q2 + s(1.0 / d);
    }
    e * s(LN2) + s(2.0) * q * p
}

/// ln(1 + y) for y in [0, 1], accurate for tiny y. 1 + y is then normal,
/// finite and positive, so [`ln64`]'s other cases are left out (a NaN y
/// gives some NaN).
#[inline(always)]
fn ln1p64<const N: usize>(y: F64x<N>) -> F64x<N> {
    let s = F64x::splat;
    choose!(y.test(|v| v < 1e-5), y - y * y / s(2.0) + y * y * y / s(3.0), ln64_scaled(s(1.0) + y, s(0.0)))
}

/// e^z − 1, accurate near 0.
#[inline(always)]
fn expm1_64<const N: usize>(z: F64x<N>) -> F64x<N> {
    let s = F64x::splat;
    choose!(
        z.test(|v| v.abs() < 0.5),
        {
            let mut p = s(1.0 / 6_227_020_800.0);
            for d in [479_001_600.0, 39_916_800.0, 3_628_800.0, 362_880.0, 40_320.0, 5_040.0, 720.0, 120.0, 24.0, 6.0, 2.0, 1.0] {
                p = p * z + s(1.0 / d);
            }
            p * z
        },
        exp64(z) - s(1.0)
    )
}

#[inline(always)]
pub fn exp_lanes<const N: usize>(x: [f32; N]) -> [f32; N] {
    exp64(F64x::from_f32(x)).to_f32()
}

#[inline(always)]
pub fn ln_lanes<const N: usize>(x: [f32; N]) -> [f32; N] {
    ln64(F64x::from_f32(x)).to_f32()
}

#[inline(always)]
pub fn tanh_lanes<const N: usize>(x: [f32; N]) -> [f32; N] {
    let a = F64x::from_f32(x).map(f64::abs);
    let e = expm1_64(a * F64x::splat(2.0));
    let t = F64x::select(a.test(|v| v > 20.0), F64x::splat(1.0), e / (e + F64x::splat(2.0))).to_f32();
    pick32(&lanes(|i| x[i].is_nan()), x, lanes(|i| t[i].copysign(x[i])))
}

#[inline(always)]
fn sigmoid64<const N: usize>(x: F64x<N>) -> F64x<N> {
    let s = F64x::splat;
    let pos = x.test(|v| v >= 0.0);
    // e^−x for x ≥ 0, e^x below: one exponential of −|x|; then 1/(1 + e)
    // or e/(1 + e), one division with the numerator chosen.
    let e = exp64(F64x::select(pos, -x, x));
    F64x::select(pos, s(1.0), e) / (s(1.0) + e)
}

#[inline(always)]
pub fn sigmoid_lanes<const N: usize>(x: [f32; N]) -> [f32; N] {
    sigmoid64(F64x::from_f32(x)).to_f32()
}

/// softplus(x) = ln(1 + e^x) without overflow, max(x, 0) + ln(1 + e^−|x|),
/// and its slope sigmoid(x), from one exponential; each equals what
/// [`softplus`] and [`sigmoid`] return.
#[inline(always)]
pub fn softplus_and_sigmoid_lanes<const N: usize>(x: [f32; N]) -> ([f32; N], [f32; N]) {
    let s = F64x::splat;
    let xd = F64x::from_f32(x);
    // e^−|x| is in [0, 1]; a NaN x's lanes are x's own, below.
    let e = exp64_at_most_zero(-xd.map(f64::abs));
    let sp = (xd.map(|v| v.max(0.0)) + ln1p64(e)).to_f32();
    let sg = (F64x::select(xd.test(|v| v >= 0.0), s(1.0), e) / (s(1.0) + e)).to_f32();
    let nan = lanes(|i| x[i].is_nan());
    (pick32(&nan, x, sp), pick32(&nan, x, sg))
}

/// [`softplus_and_sigmoid_lanes`] for x ≤ 0 (not NaN), bit for bit: there
/// max(x, 0) adds nothing to ln(1 + e^x) > 0, e^−|x| is 1 at ±0 so the
/// slope's numerator is e, and no lane is NaN. Dropping the three steps
/// took the pair from 2.5 to 2.3 ns a value (Zen 4, 32 lanes).
#[inline(always)]
pub fn softplus_and_sigmoid_at_most_zero_lanes<const N: usize>(x: [f32; N]) -> ([f32; N], [f32; N]) {
    let s = F64x::splat;
    let e = exp64_at_most_zero(-F64x::from_f32(x).map(f64::abs));
    (ln1p64(e).to_f32(), (e / (s(1.0) + e)).to_f32())
}

pub fn exp(x: f32) -> f32 {
    exp_lanes([x])[0]
}

pub fn ln(x: f32) -> f32 {
    ln_lanes([x])[0]
}

pub fn tanh(x: f32) -> f32 {
    tanh_lanes([x])[0]
}

pub fn sigmoid(x: f32) -> f32 {
    sigmoid_lanes([x])[0]
}

/// ln(1 + e^x), without overflow: max(x, 0) + ln(1 + e^−|x|).
pub fn softplus(x: f32) -> f32 {
    softplus_and_sigmoid(x).0
}

/// softplus(x) and its slope sigmoid(x) from one exponential; each equals
/// what [`softplus`] and [`sigmoid`] return.
pub fn softplus_and_sigmoid(x: f32) -> (f32, f32) {
    let (sp, sg) = softplus_and_sigmoid_lanes([x]);
    (sp[0], sg[0])
}

/// ln Σ e^(z_i) over a row of logits, stably (in f64).
pub fn log_sum_exp(z: &[f32]) -> f64 {
    let m = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let s: f64 = z.iter().map(|&v| exp64(F64x([v as f64 - m])).0[0]).sum();
    m + ln64(F64x([s])).0[0]
}

/// e^(z − shift) in f64 (softmax probabilities from a log-sum-exp).
pub fn exp64_f32_shifted(z: f32, shift: f64) -> f64 {
    exp64(F64x([z as f64 - shift])).0[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f64, what: &str, x: f32) {
        let tol = 2.0 * f32::EPSILON as f64 * b.abs().max(f32::MIN_POSITIVE as f64);
        assert!(((a as f64) - b).abs() <= tol, "{what}({x}) = {a}, libm says {b}");
    }

    #[test]
    fn agree_with_libm_within_an_ulp() {
        let mut x = -90.0f32;
        while x < 90.0 {
            // e^x overflows f32 above ln(f32::MAX) ≈ 88.72: both sides give ∞ there.
            if (x as f64).exp() < f32::MAX as f64 {
                close(exp(x), (x as f64).exp(), "exp", x);
            } else {
                assert_eq!(exp(x), f32::INFINITY);
            }
            close(tanh(x), (x as f64).tanh(), "tanh", x);
            close(softplus(x), (x as f64).exp().ln_1p().max(x as f64), "softplus", x);
            close(sigmoid(x), 1.0 / (1.0 + (-(x as f64)).exp()), "sigmoid", x);
            if x > 0.0 {
                close(ln(x), (x as f64).ln(), "ln", x);
            }
            x += 0.0137;
        }
        for &x in &[1e-30f32, 1e-8, 3e-5, 0.999, 1.0, 1.001, 7e20, f32::MAX, 1e-40] {
            close(ln(x), (x as f64).ln(), "ln", x);
        }
        for &x in &[1e-7f32, -3e-6, 1e-4] {
            close(tanh(x), (x as f64).tanh(), "tanh", x);
        }
    }

    #[test]
    fn edge_values() {
        assert_eq!(exp(-200.0), 0.0);
        assert_eq!(exp(200.0), f32::INFINITY);
        assert_eq!(ln(0.0), f32::NEG_INFINITY);
        assert!(ln(-1.0).is_nan());
        assert_eq!(tanh(50.0), 1.0);
        assert_eq!(tanh(-50.0), -1.0);
        assert_eq!(softplus(-200.0), 0.0);
        assert_eq!(softplus(200.0), 200.0);
        assert_eq!(sigmoid(-200.0), 0.0);
        for x in [-30.0f32, -1.5, -0.0, 0.0, 0.7, 25.0] {
            assert_eq!(softplus_and_sigmoid(x), (softplus(x), sigmoid(x)));
        }
        assert!((log_sum_exp(&[1000.0, 1000.0]) - (1000.0 + 2f64.ln())).abs() < 1e-9);
    }

    /// Inputs that reach every branch: signed zeros, subnormals, the edges
    /// of each range, huge values, infinities and NaN, and a dense sweep.
    fn probe_inputs() -> Vec<f32> {
        let mut v = vec![
            0.0, -0.0, 1e-45, -1e-45, 1e-40, -1e-38, 1.17e-38, 1e-5, 9.99e-6, 1.0e-5, 0.5, -0.5, 0.49999997, 20.0, 20.000002, -20.0,
            88.7, 88.73, 103.0, -87.0, -103.0, -104.0, 709.0, -745.0, 1e30, -1e30, f32::MAX, f32::MIN, f32::INFINITY, f32::NEG_INFINITY, f32::NAN,
        ];
        let mut x = -120.0f32;
        while x < 120.0 {
            v.push(x);
            x += 0.00731;
        }
        for e in -149..128 {
            v.push(2f32.powi(e));
            v.push(-(2f32.powi(e)) * 1.37);
        }
        v
    }

    /// The lanes of a 16-wide call equal the lone (N = 1) call for every input.
    #[test]
    fn lanes_equal_lone_values_bit_for_bit() {
        let xs = probe_inputs();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for chunk in xs.chunks(16).filter(|c| c.len() == 16) {
            let x: [f32; 16] = chunk.try_into().unwrap();
            let (sp, sg) = softplus_and_sigmoid_lanes(x);
            assert_eq!(bits(&exp_lanes(x)), bits(&x.map(exp)), "exp {x:?}");
            assert_eq!(bits(&ln_lanes(x)), bits(&x.map(ln)), "ln {x:?}");
            assert_eq!(bits(&tanh_lanes(x)), bits(&x.map(tanh)), "tanh {x:?}");
            assert_eq!(bits(&sigmoid_lanes(x)), bits(&x.map(sigmoid)), "sigmoid {x:?}");
            assert_eq!(bits(&sp), bits(&x.map(softplus)), "softplus {x:?}");
            assert_eq!(bits(&sg), bits(&x.map(sigmoid)), "softplus' slope {x:?}");
        }
    }

    /// The functions as they were first written, with branches (the CUDA
    /// prelude mirrors these): the branch-free lanes must give their bits.
    mod branchy {
        const LN2: f64 = std::f64::consts::LN_2;
        const LOG2E: f64 = std::f64::consts::LOG2_E;
        pub fn exp64(x: f64) -> f64 {
            if x.is_nan() {
                return x;
            }
            if x > 709.0 {
                return f64::INFINITY;
            }
            if x < -745.0 {
                return 0.0;
            }
            #[allow(clippy::excessive_precision)]
            const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-01;
            #[allow(clippy::excessive_precision)]
            const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
            let k = (x * LOG2E).round();
            let r = (x - k * LN2_HI) - k * LN2_LO;
            let mut p = 1.0 / 3_628_800.0;
            for d in [362_880.0, 40_320.0, 5_040.0, 720.0, 120.0, 24.0, 6.0, 2.0, 1.0, 1.0] {
                p = p * r + 1.0 / d;
            }
            scale2(p, k as i32)
        }
        fn scale2(p: f64, k: i32) -> f64 {
            let pow2 = |e: i32| f64::from_bits(((e + 1023) as u64) << 52);
            if k > 1000 {
                p * pow2(1000) * pow2(k - 1000)
            } else if k < -1000 {
                p * pow2(-1000) * pow2(k + 1000)
            } else {
                p * pow2(k)
            }
        }
        pub fn ln64(x: f64) -> f64 {
            if x.is_nan() || x < 0.0 {
                return f64::NAN;
            }
            if x == 0.0 {
                return f64::NEG_INFINITY;
            }
            if x.is_infinite() {
                return x;
            }
            let (mut x, mut e) = (x, 0i32);
            if x < f64::MIN_POSITIVE {
                x *= 2f64.powi(64);
                e -= 64;
            }
            let bits = x.to_bits();
            e += ((bits >> 52) & 0x7ff) as i32 - 1023;
            let mut m = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1023u64 << 52));
            if m > std::f64::consts::SQRT_2 {
                m *= 0.5;
                e += 1;
            }
            let s = (m - 1.0) / (m + 1.0);
            let s2 = s * s;
            let mut p = 1.0 / 13.0;
            for d in [11.0, 9.0, 7.0, 5.0, 3.0, 1.0] {
                p = p * s2 + 1.0 / d;
            }
            e as f64 * LN2 + 2.0 * s * p
        }
        fn ln1p64(y: f64) -> f64 {
            if y < 1e-5 { y - y * y / 2.0 + y * y * y / 3.0 } else { ln64(1.0 + y) }
        }
        fn expm1_64(z: f64) -> f64 {
            if z.abs() < 0.5 {
                let mut p = 1.0 / 6_227_020_800.0;
                for d in [479_001_600.0, 39_916_800.0, 3_628_800.0, 362_880.0, 40_320.0, 5_040.0, 720.0, 120.0, 24.0, 6.0, 2.0, 1.0] {
                    p = p * z + 1.0 / d;
                }
                p * z
            } else {
                exp64(z) - 1.0
            }
        }
        pub fn tanh(x: f32) -> f32 {
            if x.is_nan() {
                return x;
            }
            let a = (x as f64).abs();
            let t = if a > 20.0 {
                1.0
            } else {
                let e = expm1_64(2.0 * a);
                e / (e + 2.0)
            };
            (t as f32).copysign(x)
        }
        pub fn sigmoid(x: f32) -> f32 {
            let x = x as f64;
            (if x >= 0.0 {
                1.0 / (1.0 + exp64(-x))
            } else {
                let e = exp64(x);
                e / (1.0 + e)
            }) as f32
        }
        pub fn softplus_and_sigmoid(x: f32) -> (f32, f32) {
            if x.is_nan() {
                return (x, x);
            }
            let x = x as f64;
            let e = exp64(-x.abs());
            let sp = (x.max(0.0) + ln1p64(e)) as f32;
            let sg = if x >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) };
            (sp, sg as f32)
        }
    }

    #[test]
    fn branch_free_functions_equal_the_branchy_originals() {
        for x in probe_inputs() {
            let same = |a: f32, b: f32, what: &str| assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{what}({x:e}): {a:e} vs {b:e}");
            same(exp(x), branchy::exp64(x as f64) as f32, "exp");
            same(ln(x), branchy::ln64(x as f64) as f32, "ln");
            same(tanh(x), branchy::tanh(x), "tanh");
            same(sigmoid(x), branchy::sigmoid(x), "sigmoid");
            let (sp, sg) = softplus_and_sigmoid(x);
            let (sp0, sg0) = branchy::softplus_and_sigmoid(x);
            same(sp, sp0, "softplus");
            same(sg, sg0, "softplus slope");
            let d = x as f64 * 3.1;
            assert_eq!(exp64(F64x([d])).0[0].to_bits(), branchy::exp64(d).to_bits(), "exp64({d:e})");
            assert_eq!(ln64(F64x([d.abs()])).0[0].to_bits(), branchy::ln64(d.abs()).to_bits(), "ln64({d:e})");
        }
    }
}
