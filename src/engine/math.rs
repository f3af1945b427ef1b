//! Transcendental functions the project controls.
//!
//! The platform's libm differs between systems (and the GPU's between driver
//! versions), so a run that calls it cannot promise the same bits everywhere.
//! These take an f32, compute in f64 with +, −, ×, ÷ only (each correctly
//! rounded by IEEE 754) and round once to f32. The f64 error is far below
//! half an f32 ulp, so results are faithful, and identical on every machine.

const LN2: f64 = std::f64::consts::LN_2;
const LOG2E: f64 = std::f64::consts::LOG2_E;

/// e^x in f64 for the range the f32 functions need.
pub(crate) fn exp64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.0 {
        return f64::INFINITY;
    }
    if x < -745.0 {
        return 0.0;
    }
    // x = k·ln2 + r, |r| ≤ ln2/2; ln2 split in two so k·LN2_HI is exact.
    const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-01;
    const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
    let k = (x * LOG2E).round();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // Taylor to degree 10: the remainder is below 3e-13 relative for
    // |r| ≤ 0.35, far under half an f32 ulp (3e-8).
    let mut p = 1.0 / 3_628_800.0;
    for d in [362_880.0, 40_320.0, 5_040.0, 720.0, 120.0, 24.0, 6.0, 2.0, 1.0, 1.0] {
        p = p * r + 1.0 / d;
    }
    scale2(p, k as i32)
}

/// p · 2^k without libm's ldexp, in two steps so subnormal results work.
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

/// Natural log in f64 for positive finite x.
pub(crate) fn ln64(x: f64) -> f64 {
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
    let mut m = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1023u64 << 52)); // [1, 2)
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln m = 2·atanh(s), s = (m−1)/(m+1), |s| ≤ 0.172: the series to s^13
    // leaves a relative remainder below 1e-12.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut p = 1.0 / 13.0;
    for d in [11.0, 9.0, 7.0, 5.0, 3.0, 1.0] {
        p = p * s2 + 1.0 / d;
    }
    e as f64 * LN2 + 2.0 * s * p
}

/// ln(1 + y) for y ≥ 0, accurate for tiny y.
fn ln1p64(y: f64) -> f64 {
    if y < 1e-5 {
        y - y * y / 2.0 + y * y * y / 3.0
    } else {
        ln64(1.0 + y)
    }
}

/// e^z − 1, accurate near 0.
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

pub fn exp(x: f32) -> f32 {
    exp64(x as f64) as f32
}

pub fn ln(x: f32) -> f32 {
    ln64(x as f64) as f32
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
    sigmoid64(x as f64) as f32
}

fn sigmoid64(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + exp64(-x))
    } else {
        let e = exp64(x);
        e / (1.0 + e)
    }
}

/// ln(1 + e^x), without overflow: max(x, 0) + ln(1 + e^−|x|).
pub fn softplus(x: f32) -> f32 {
    softplus_and_sigmoid(x).0
}

/// softplus(x) and its slope sigmoid(x) from one exponential; each equals
/// what [`softplus`] and [`sigmoid`] return.
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

/// ln Σ e^(z_i) over a row of logits, stably (in f64).
pub fn log_sum_exp(z: &[f32]) -> f64 {
    let m = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let s: f64 = z.iter().map(|&v| exp64(v as f64 - m)).sum();
    m + ln64(s)
}

/// e^(z − shift) in f64 (softmax probabilities from a log-sum-exp).
pub fn exp64_f32_shifted(z: f32, shift: f64) -> f64 {
    exp64(z as f64 - shift)
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
}
