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

pub mod cuda;
pub mod expr;
pub mod kernels;

use crate::engine::real::{Cmp, Dual, Lanes, Real};
use expr::Expr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::{Arc, RwLock};

/// An activation function: one of the built-ins (names as in the fixtures
/// and the article) or one defined by an expression ([`define`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    /// Defined by an expression (a study file or `--define`).
    Custom(CustomId),
}

/// Index of an expression-defined function in the process's registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CustomId(u32);

/// An expression-defined function.
#[derive(Debug)]
pub struct Custom {
    pub name: &'static str,
    pub forward: Expr,
    /// Replaces ∂f/∂x when given (straight-through variants).
    pub grad: Option<Expr>,
    pub definition: Definition,
}

/// The source text of an expression-defined function (recorded in run.json).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub expr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad: Option<String>,
}

static REGISTRY: RwLock<Vec<Arc<Custom>>> = RwLock::new(Vec::new());

fn custom(id: CustomId) -> Arc<Custom> {
    REGISTRY.read().unwrap()[id.0 as usize].clone()
}

/// Define (or look up, if defined identically before) a function by expression.
/// It is rejected if it does not parse, clashes with a built-in, or produces
/// NaN/∞ (value or slope) anywhere on a probe grid of inputs.
pub fn define(name: &str, def: &Definition) -> Result<Activation, String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
        return Err(format!("`{name}` is not a usable name (letters, digits, '_' and '.')"));
    }
    if Activation::ALL.iter().any(|a| a.name() == name) || name == "refraction_linear" {
        return Err(format!("`{name}` is a built-in function; give the expression another name"));
    }
    let forward = expr::parse(&def.expr).map_err(|e| format!("expr of `{name}`: {}", e.pointed(&def.expr)))?;
    let grad = match &def.grad {
        Some(g) => Some(expr::parse(g).map_err(|e| format!("grad of `{name}`: {}", e.pointed(g)))?),
        None => None,
    };
    let mut reg = REGISTRY.write().unwrap();
    if let Some(i) = reg.iter().position(|c| c.name == name) {
        return if reg[i].definition == *def { Ok(Activation::Custom(CustomId(i as u32))) } else { Err(format!("`{name}` is already defined differently")) };
    }
    let c = Custom { name: Box::leak(name.to_string().into_boxed_str()), forward, grad, definition: def.clone() };
    for i in -1000..=1000 {
        let x = i as f32 * 0.01;
        for m in [-10.0f32, 0.0] {
            let (v, d) = c.value_and_slope(x, m.min(x));
            if !(v.is_finite() && d.is_finite()) {
                return Err(format!("`{name}` produces {} at x = {x}{}; define it everywhere", if v.is_finite() { "a non-finite slope" } else { "NaN or ∞" }, if c.forward.uses_min() { format!(" (group minimum {})", m.min(x)) } else { String::new() }));
            }
        }
    }
    reg.push(Arc::new(c));
    Ok(Activation::Custom(CustomId(reg.len() as u32 - 1)))
}

impl Custom {
    /// f(x, m) and the slope the backward pass uses (the override if any).
    pub fn value_and_slope(&self, x: f32, m: f32) -> (f32, f32) {
        let r = self.forward.eval(Dual::var(x), Dual::constant(m));
        (r.v, self.grad.as_ref().map_or(r.d, |g| g.eval(x, m)))
    }
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
            Activation::Custom(id) => custom(id).name,
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
        Activation::ALL.into_iter().find(|a| a.name() == s).or_else(|| {
            let reg = REGISTRY.read().unwrap();
            reg.iter().position(|c| c.name == s).map(|i| Activation::Custom(CustomId(i as u32)))
        })
    }

    /// Every name known now: the built-ins and the defined expressions.
    pub fn names() -> Vec<&'static str> {
        let mut n: Vec<&'static str> = Activation::ALL.iter().map(|a| a.name()).collect();
        n.extend(REGISTRY.read().unwrap().iter().map(|c| c.name));
        n
    }

    /// For clap: a known name, or an error listing them.
    pub fn parse_arg(s: &str) -> Result<Activation, String> {
        Activation::from_name(s).ok_or_else(|| format!("unknown activation `{s}`; choose one of: {} (or define one with --define NAME=EXPR)", Activation::names().join(", ")))
    }

    /// Whether the function reads the layer group's minimum `m`.
    pub fn uses_min(self) -> bool {
        match self {
            Activation::ZeroFitLinear => true,
            Activation::Custom(id) => custom(id).forward.uses_min(),
            _ => false,
        }
    }

    /// The expression of an expression-defined function.
    pub fn definition(self) -> Option<Definition> {
        match self {
            Activation::Custom(id) => Some(custom(id).definition.clone()),
            _ => None,
        }
    }

    /// The registry entry of an expression-defined function.
    pub fn custom(self) -> Option<Arc<Custom>> {
        match self {
            Activation::Custom(id) => Some(custom(id)),
            _ => None,
        }
    }

    /// `Some(c)` when, wherever `x <= 0` is false (x > 0, or NaN), the
    /// function is `x + c` with slope exactly 1: the CPU kernels then
    /// evaluate the definition only for the other elements (for
    /// softplus_linear, half the exponentials and logarithms of a learning
    /// run). A test checks the claim against the definition, bit for bit.
    pub fn linear_above_zero(self) -> Option<f32> {
        match self {
            Activation::SoftplusLinear => Some(SOFTPLUS_LINEAR_OFFSET),
            _ => None,
        }
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
            Activation::Custom(id) => custom(id).forward.eval(x, m),
        }
    }
}

impl Serialize for Activation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Activation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Activation::from_name(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown activation `{name}`; choose one of: {}", Activation::names().join(", "))))
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
const SOFTPLUS_LINEAR_OFFSET: f32 = 2.0 * std::f32::consts::LN_2;

/// The article's `tf.where(x <= 0, 2*softplus(x), x + 2*softplus(0))`.
#[inline(always)]
pub fn softplus_linear<T: Real>(x: T) -> T {
    T::select(Cmp::Le, x, zero(), T::lit(2.0) * x.softplus(), x + T::lit(SOFTPLUS_LINEAR_OFFSET as f64))
}

/// [`softplus_linear`]'s value and slope where x ≤ 0 (not NaN), as its
/// definition gives them through [`Dual`]: 2·softplus(x) and 2·sigmoid(x)
/// (the dual adds 0·softplus(x) = +0 to the slope). The kernels evaluate
/// only these lanes so; tests hold every bit to the definition.
#[inline(always)]
pub fn softplus_linear_at_most_zero<const N: usize>(x: Lanes<N>) -> (Lanes<N>, Lanes<N>) {
    let (sp, sg) = crate::engine::math::softplus_and_sigmoid_at_most_zero_lanes(x.0);
    use crate::engine::math::lanes;
    (Lanes(lanes(|i| 2.0 * sp[i])), Lanes(lanes(|i| 2.0 * sg[i])))
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

    /// Where a built-in says it is `x + c` with slope 1, its definition
    /// gives exactly those bits: positive values of every size, ∞ and NaN.
    #[test]
    fn linear_above_zero_is_the_definition() {
        let mut xs = vec![f32::MIN_POSITIVE / 4.0, 1e-30, 1e-7, 0.5, 1.0, 3.0, 1e4, 1e30, f32::MAX, f32::INFINITY, f32::NAN];
        xs.extend((1..2000).map(|i| i as f32 * 0.0137));
        let mut claimed = 0;
        for act in Activation::ALL {
            let Some(c) = act.linear_above_zero() else { continue };
            claimed += 1;
            for &x in &xs {
                let r = act.eval(Dual::var(x), Dual::constant(0.0));
                assert_eq!((r.v.to_bits(), r.d.to_bits()), ((x + c).to_bits(), 1f32.to_bits()), "{act} at {x}");
            }
        }
        assert!(claimed > 0, "softplus_linear makes the claim");
    }

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
