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
    #[inline(always)]
    fn select(op: Cmp, lhs: Self, rhs: Self, then: Self, otherwise: Self) -> Self {
        if op.holds(lhs, rhs) { then } else { otherwise }
    }
}

/// A value with its derivative with respect to one chosen input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dual {
    pub v: f32,
    pub d: f32,
}

impl Dual {
    /// The input variable itself: derivative 1.
    pub fn var(v: f32) -> Self {
        Dual { v, d: 1.0 }
    }
    pub fn constant(v: f32) -> Self {
        Dual { v, d: 0.0 }
    }
}

impl Add for Dual {
    type Output = Dual;
    #[inline(always)]
    fn add(self, o: Dual) -> Dual {
        Dual { v: self.v + o.v, d: self.d + o.d }
    }
}
impl Sub for Dual {
    type Output = Dual;
    #[inline(always)]
    fn sub(self, o: Dual) -> Dual {
        Dual { v: self.v - o.v, d: self.d - o.d }
    }
}
impl Mul for Dual {
    type Output = Dual;
    #[inline(always)]
    fn mul(self, o: Dual) -> Dual {
        Dual { v: self.v * o.v, d: self.d * o.v + self.v * o.d }
    }
}
impl Div for Dual {
    type Output = Dual;
    #[inline(always)]
    fn div(self, o: Dual) -> Dual {
        Dual { v: self.v / o.v, d: (self.d * o.v - self.v * o.d) / (o.v * o.v) }
    }
}
impl Neg for Dual {
    type Output = Dual;
    #[inline(always)]
    fn neg(self) -> Dual {
        Dual { v: -self.v, d: -self.d }
    }
}

impl Dual {
    /// Chain rule: value `v` whose derivative with respect to the input is `dv_dself`.
    #[inline(always)]
    fn chain(self, v: f32, dv_dself: f32) -> Dual {
        // A constant argument has no derivative, even where f' is infinite.
        Dual { v, d: if self.d == 0.0 { 0.0 } else { self.d * dv_dself } }
    }
}

impl Real for Dual {
    #[inline(always)]
    fn lit(v: f64) -> Self {
        Dual::constant(v as f32)
    }
    fn exp(self) -> Self {
        let e = math::exp(self.v);
        self.chain(e, e)
    }
    fn ln(self) -> Self {
        self.chain(math::ln(self.v), 1.0 / self.v)
    }
    fn sqrt(self) -> Self {
        let s = self.v.sqrt();
        self.chain(s, 0.5 / s)
    }
    fn tanh(self) -> Self {
        let t = math::tanh(self.v);
        self.chain(t, 1.0 - t * t)
    }
    fn sigmoid(self) -> Self {
        let s = math::sigmoid(self.v);
        self.chain(s, s * (1.0 - s))
    }
    fn softplus(self) -> Self {
        let (sp, sg) = math::softplus_and_sigmoid(self.v);
        self.chain(sp, sg)
    }
    #[inline(always)]
    fn select(op: Cmp, lhs: Self, rhs: Self, then: Self, otherwise: Self) -> Self {
        if op.holds(lhs.v, rhs.v) { then } else { otherwise }
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
