//! The number types an activation is written over.
//!
//! An activation is one generic function `f<T: Real>(x, m) -> T`. Evaluated
//! with `f32` it is the forward pass; with [`Dual`] it is the forward pass and
//! the exact derivative at once (forward-mode automatic differentiation), so
//! no derivative is ever written by hand. Other implementations of `Real`
//! (code generation for the GPU) interpret the same definition.

use super::math;
use std::ops::{Add, Div, Mul, Neg, Sub};

/// A comparison used by [`Real::select`] (`where(lhs OP rhs, then, else)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Cmp {
    #[inline(always)]
    pub fn holds(self, a: f32, b: f32) -> bool {
        match self {
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
        }
    }
    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
            Cmp::Eq => "==",
            Cmp::Ne => "!=",
        }
    }
}

pub trait Real: Copy + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Div<Output = Self> + Neg<Output = Self> {
    /// A constant (no derivative).
    fn lit(v: f64) -> Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn tanh(self) -> Self;
    fn sigmoid(self) -> Self;
    fn softplus(self) -> Self;
    /// softplus and its slope (sigmoid); a scalar may share their exponential.
    fn softplus_and_slope(self) -> (Self, Self) {
        (self.softplus(), self.sigmoid())
    }
    /// `where(lhs OP rhs, then, otherwise)`: like `tf.where`, both branches
    /// are values; only the chosen one (and its derivative) comes through.
    fn select(op: Cmp, lhs: Self, rhs: Self, then: Self, otherwise: Self) -> Self;

    fn abs(self) -> Self {
        Self::select(Cmp::Lt, self, Self::lit(0.0), -self, self)
    }
    fn max(self, o: Self) -> Self {
        Self::select(Cmp::Ge, self, o, self, o)
    }
    fn min(self, o: Self) -> Self {
        Self::select(Cmp::Le, self, o, self, o)
    }
    fn powf(self, p: Self) -> Self {
        (p * self.ln()).exp()
    }
}

impl Real for f32 {
    #[inline(always)]
    fn lit(v: f64) -> Self {
        v as f32
    }
    fn exp(self) -> Self {
        math::exp(self)
    }
    fn ln(self) -> Self {
        math::ln(self)
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self) // IEEE 754 correctly rounded: the same everywhere
    }
    fn tanh(self) -> Self {
        math::tanh(self)
    }
    fn sigmoid(self) -> Self {
        math::sigmoid(self)
    }
    fn softplus(self) -> Self {
        math::softplus(self)
    }
    fn softplus_and_slope(self) -> (Self, Self) {
        math::softplus_and_sigmoid(self)
    }
    #[inline(always)]
    fn select(op: Cmp, lhs: Self, rhs: Self, then: Self, otherwise: Self) -> Self {
        if op.holds(lhs, rhs) { then } else { otherwise }
    }
}

/// `N` f32 values evaluated side by side: an activation evaluated over
/// `Lanes` computes, lane by lane, exactly what it computes over `f32` (the
/// same IEEE operations; the transcendentals are [`math`]'s lane functions,
/// written once for any width). Kernels use 16 lanes, which the compiler
/// maps to vector registers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lanes<const N: usize>(pub [f32; N]);

macro_rules! lanes_op {
    ($tr:ident, $f:ident, $op:tt) => {
        impl<const N: usize> $tr for Lanes<N> {
            type Output = Self;
            #[inline(always)]
            fn $f(self, o: Self) -> Self {
                Lanes(math::lanes(|i| self.0[i] $op o.0[i]))
            }
        }
    };
}
lanes_op!(Add, add, +);
lanes_op!(Sub, sub, -);
lanes_op!(Mul, mul, *);
lanes_op!(Div, div, /);

impl<const N: usize> Neg for Lanes<N> {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        Lanes(math::lanes(|i| -self.0[i]))
    }
}

impl<const N: usize> Real for Lanes<N> {
    #[inline(always)]
    fn lit(v: f64) -> Self {
        Lanes([v as f32; N])
    }
    #[inline(always)]
    fn exp(self) -> Self {
        Lanes(math::exp_lanes(self.0))
    }
    #[inline(always)]
    fn ln(self) -> Self {
        Lanes(math::ln_lanes(self.0))
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        Lanes(math::lanes(|i| self.0[i].sqrt()))
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        Lanes(math::tanh_lanes(self.0))
    }
    #[inline(always)]
    fn sigmoid(self) -> Self {
        Lanes(math::sigmoid_lanes(self.0))
    }
    #[inline(always)]
    fn softplus(self) -> Self {
        Lanes(math::softplus_and_sigmoid_lanes(self.0).0)
    }
    #[inline(always)]
    fn softplus_and_slope(self) -> (Self, Self) {
        let (sp, sg) = math::softplus_and_sigmoid_lanes(self.0);
        (Lanes(sp), Lanes(sg))
    }
    #[inline(always)]
    fn select(op: Cmp, lhs: Self, rhs: Self, then: Self, otherwise: Self) -> Self {
        Lanes(math::pick32(&math::lanes(|i| op.holds(lhs.0[i], rhs.0[i])), then.0, otherwise.0))
    }
}

/// A value with its derivative with respect to one chosen input, over any
/// [`Real`] scalar: `f32` when training, generated code
/// ([`crate::engine::codegen::Sym`]) when writing GPU kernels, so both take
/// the derivative by the very same rules.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DualOf<S> {
    pub v: S,
    pub d: S,
}

/// The dual number the CPU engine computes with.
pub type Dual = DualOf<f32>;

impl<S: Real> DualOf<S> {
    /// The input variable itself: derivative 1.
    pub fn var(v: S) -> Self {
        DualOf { v, d: S::lit(1.0) }
    }
    pub fn constant(v: S) -> Self {
        DualOf { v, d: S::lit(0.0) }
    }

    /// Chain rule: value `v` whose derivative with respect to the input is `dv_dself`.
    #[inline(always)]
    fn chain(self, v: S, dv_dself: S) -> Self {
        // A constant argument has no derivative, even where f' is infinite.
        let zero = S::lit(0.0);
        DualOf { v, d: S::select(Cmp::Eq, self.d, zero, zero, self.d * dv_dself) }
    }
}

impl<S: Real> Add for DualOf<S> {
    type Output = Self;
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        DualOf { v: self.v + o.v, d: self.d + o.d }
    }
}
impl<S: Real> Sub for DualOf<S> {
    type Output = Self;
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        DualOf { v: self.v - o.v, d: self.d - o.d }
    }
}
impl<S: Real> Mul for DualOf<S> {
    type Output = Self;
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        DualOf { v: self.v * o.v, d: self.d * o.v + self.v * o.d }
    }
}
impl<S: Real> Div for DualOf<S> {
    type Output = Self;
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        DualOf { v: self.v / o.v, d: (self.d * o.v - self.v * o.d) / (o.v * o.v) }
    }
}
impl<S: Real> Neg for DualOf<S> {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        DualOf { v: -self.v, d: -self.d }
    }
}

impl<S: Real> Real for DualOf<S> {
    #[inline(always)]
    fn lit(v: f64) -> Self {
        DualOf::constant(S::lit(v))
    }
    #[inline(always)]
    fn exp(self) -> Self {
        let e = self.v.exp();
        self.chain(e, e)
    }
    #[inline(always)]
    fn ln(self) -> Self {
        self.chain(self.v.ln(), S::lit(1.0) / self.v)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        let s = self.v.sqrt();
        self.chain(s, S::lit(0.5) / s)
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        let t = self.v.tanh();
        self.chain(t, S::lit(1.0) - t * t)
    }
    #[inline(always)]
    fn sigmoid(self) -> Self {
        let s = self.v.sigmoid();
        self.chain(s, s * (S::lit(1.0) - s))
    }
    #[inline(always)]
    fn softplus(self) -> Self {
        let (sp, sg) = self.v.softplus_and_slope();
        self.chain(sp, sg)
    }
    #[inline(always)]
    fn select(op: Cmp, lhs: Self, rhs: Self, then: Self, otherwise: Self) -> Self {
        DualOf { v: S::select(op, lhs.v, rhs.v, then.v, otherwise.v), d: S::select(op, lhs.v, rhs.v, then.d, otherwise.d) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f<T: Real>(x: T) -> T {
        x * x.exp() / (T::lit(1.0) + x.tanh().abs()) + x.softplus().sqrt()
    }

    #[test]
    fn dual_derivative_matches_finite_difference() {
        for &x in &[-2.0f32, -0.3, 0.4, 1.7] {
            let d = f(Dual::var(x)).d as f64;
            let h = 1e-3f64;
            let g = |x: f64| {
                let t = x.tanh().abs();
                x * x.exp() / (1.0 + t) + (x.exp().ln_1p()).sqrt()
            };
            let fd = (g(x as f64 + h) - g(x as f64 - h)) / (2.0 * h);
            assert!((d - fd).abs() < 1e-4 * fd.abs().max(1.0), "x={x}: dual {d} vs fd {fd}");
            assert_eq!(f(Dual::var(x)).v.to_bits(), f(x).to_bits(), "value part must equal the f32 forward");
        }
    }
}
