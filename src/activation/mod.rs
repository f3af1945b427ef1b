//! Activation functions: one definition each, differentiated automatically.
//!
//! Every function is written once as `f(x, m)` over any [`Real`] number type.
//! `m` is the minimum of the layer group the element belongs to (per sample
//! and channel over H×W after a conv, per sample over units after a dense
//! layer); only the layer-wise zero_fit family reads it. The forward pass
//! evaluates `f` with [`Dual`] numbers, which yields `∂f/∂x` for free; for a
//! layer-wise function a second dual pass yields `∂f/∂m`, and the backward
//! pass routes `Σ dy·∂f/∂m` to the group's minimum, split evenly among ties
//! like TensorFlow's `reduce_min` gradient.

pub mod kernels;

use crate::engine::real::{Cmp, Real};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The built-in activation functions (names as in the fixtures and the article).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[clap(rename_all = "snake_case")]
pub enum Activation {
    /// max(x, 0)
    Relu,
    /// tanh(x)
    Tanh,
    /// sign(x)·sqrt(|x|), the earlier article's point-symmetric square root
    SignedSqrt,
    /// 2·softplus(x) for x ≤ 0, x + 2·ln 2 for x > 0
    SoftplusLinear,
    /// −x for x ≤ 0, x for x > 0 (|x|)
    ReflectionLinear,
    /// x minus the layer group's minimum
    ZeroFitLinear,
}

impl Activation {
    pub const ALL: [Activation; 6] = [
        Activation::Relu,
        Activation::Tanh,
        Activation::SignedSqrt,
        Activation::SoftplusLinear,
        Activation::ReflectionLinear,
        Activation::ZeroFitLinear,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::SignedSqrt => "signed_sqrt",
            Activation::SoftplusLinear => "softplus_linear",
            Activation::ReflectionLinear => "reflection_linear",
            Activation::ZeroFitLinear => "zero_fit_linear",
        }
    }

    pub fn from_name(s: &str) -> Option<Activation> {
        // "refraction_linear" is the article's other spelling of reflection_linear.
        let s = if s == "refraction_linear" { "reflection_linear" } else { s };
        Activation::ALL.into_iter().find(|a| a.name() == s)
    }

    pub fn names() -> Vec<&'static str> {
        Activation::ALL.iter().map(|a| a.name()).collect()
    }

    /// Whether the function reads the layer group's minimum `m`.
    pub fn uses_min(self) -> bool {
        matches!(self, Activation::ZeroFitLinear)
    }

    /// The definition, evaluated over any number type.
    #[inline(always)]
    pub fn eval<T: Real>(self, x: T, m: T) -> T {
        match self {
            Activation::Relu => relu(x),
            Activation::Tanh => x.tanh(),
            Activation::SignedSqrt => signed_sqrt(x),
            Activation::SoftplusLinear => softplus_linear(x),
            Activation::ReflectionLinear => reflection_linear(x),
            Activation::ZeroFitLinear => x - m,
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[inline(always)]
fn zero<T: Real>() -> T {
    T::lit(0.0)
}

/// Keras' relu: 0 for x ≤ 0, so the derivative at 0 is 0.
#[inline(always)]
pub fn relu<T: Real>(x: T) -> T {
    T::select(Cmp::Le, x, zero(), zero(), x)
}

/// sign(x)·sqrt(|x|). Its slope 1/(2·sqrt|x|) grows without bound near 0;
/// at exactly 0 the value and the derivative are defined as 0 (the third
/// branch is a constant), so training can never see ∞·0 = NaN there.
#[inline(always)]
pub fn signed_sqrt<T: Real>(x: T) -> T {
    T::select(Cmp::Gt, x, zero(), x.sqrt(), T::select(Cmp::Lt, x, zero(), -(-x).sqrt(), zero()))
}

/// `2·softplus(0)` = 2·ln 2 in f32, the article's `g_softplus_2`.
pub const SOFTPLUS_LINEAR_OFFSET: f32 = 2.0 * std::f32::consts::LN_2;

/// The article's `tf.where(x <= 0, 2*softplus(x), x + 2*softplus(0))`.
#[inline(always)]
pub fn softplus_linear<T: Real>(x: T) -> T {
    T::select(Cmp::Le, x, zero(), T::lit(2.0) * x.softplus(), x + T::lit(SOFTPLUS_LINEAR_OFFSET as f64))
}

/// The article's `tf.where(x <= 0, -x, x)`.
#[inline(always)]
pub fn reflection_linear<T: Real>(x: T) -> T {
    T::select(Cmp::Le, x, zero(), -x, x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::real::Dual;

    /// Central difference in f64 of the f32 definition, away from kinks.
    #[test]
    fn derivatives_match_finite_differences() {
        for act in Activation::ALL {
            for &x in &[-3.1f32, -0.7, -0.05, 0.03, 0.6, 2.4] {
                let m = -4.0f32;
                let dual = act.eval(Dual::var(x), Dual::constant(m));
                let h = 1e-3f32;
                let fd = (act.eval(x + h, m) as f64 - act.eval(x - h, m) as f64) / (2.0 * h as f64);
                let tol = 2e-3 * fd.abs().max(1.0);
                assert!((dual.d as f64 - fd).abs() < tol, "{act} at {x}: dual {} vs fd {fd}", dual.d);
                assert_eq!(dual.v.to_bits(), act.eval(x, m).to_bits());
                if act.uses_min() {
                    let dm = act.eval(Dual::constant(x), Dual::var(m)).d as f64;
                    let fdm = (act.eval(x, m + h) as f64 - act.eval(x, m - h) as f64) / (2.0 * h as f64);
                    assert!((dm - fdm).abs() < tol, "{act} d/dm");
                }
            }
        }
    }

    #[test]
    fn definitions_match_the_article() {
        let ln2 = std::f32::consts::LN_2;
        assert_eq!(SOFTPLUS_LINEAR_OFFSET, 2.0 * crate::engine::math::softplus(0.0));
        assert_eq!(Activation::Relu.eval(-1.0f32, 0.0), 0.0);
        assert_eq!(Activation::Relu.eval(Dual::var(0.0), Dual::constant(0.0)).d, 0.0);
        assert!((Activation::SoftplusLinear.eval(1.0f32, 0.0) - (1.0 + 2.0 * ln2)).abs() < 1e-6);
        assert!((Activation::SoftplusLinear.eval(0.0f32, 0.0) - 2.0 * ln2).abs() < 1e-6);
        assert_eq!(Activation::SoftplusLinear.eval(Dual::var(0.0), Dual::constant(0.0)).d, 1.0);
        assert_eq!(Activation::ReflectionLinear.eval(-2.0f32, 0.0), 2.0);
        assert_eq!(Activation::ZeroFitLinear.eval(1.0f32, -2.0), 3.0);
        let s = Activation::SignedSqrt.eval(Dual::var(0.0), Dual::constant(0.0));
        assert_eq!((s.v, s.d), (0.0, 0.0));
        assert_eq!(Activation::SignedSqrt.eval(-4.0f32, 0.0), -2.0);
        assert_eq!(Activation::from_name("refraction_linear"), Some(Activation::ReflectionLinear));
    }
}
