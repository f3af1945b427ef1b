//! CUDA C from the same definitions the CPU runs.
//!
//! [`Sym`] is a [`Real`] whose arithmetic writes code instead of computing:
//! evaluating an activation's generic definition with `Sym` (or with
//! `DualOf<Sym>` for its derivative) records one single-assignment `float`
//! statement per operation, in the order the CPU performs them. Each
//! statement is one IEEE operation, or a call into [`PRELUDE`], a line-for-line
//! CUDA C copy of `engine::math` (f64 with + − × ÷ only). Compiled without
//! contraction into FMAs (NVRTC `--fmad=false`), the GPU then computes the
//! same bits as the CPU. `tests/codegen.rs` compiles the output with the
//! host C compiler and checks that, bit for bit, on every built-in and on
//! expression-defined functions.

use super::real::{Cmp, Real};
use std::cell::RefCell;
use std::fmt::Write as _;
use std::ops::{Add, Div, Mul, Neg, Sub};

thread_local! {
    /// The statements of the function being generated (one per `Sym`).
    static CODE: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// A generated `float` variable: `v<index>`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sym(u32);

impl Sym {
    fn emit(rhs: String) -> Sym {
        CODE.with(|c| {
            let mut c = c.borrow_mut();
            let code = c.as_mut().expect("Sym arithmetic outside codegen::record");
            let s = Sym(code.len() as u32);
            code.push(format!("float {s} = {rhs};"));
            s
        })
    }
}

impl Sym {
    /// `f(self)` for a one-argument function of the prelude or CUDA.
    fn call(self, f: &str) -> Sym {
        Sym::emit(format!("{f}({self})"))
    }
}

impl std::fmt::Display for Sym {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// Runs `body` with a fresh statement list and returns the statements and
/// what `body` returned. The inputs are bound to the given C expressions.
pub fn record<R>(inputs: &[&str], body: impl FnOnce(&[Sym]) -> R) -> (Vec<String>, R) {
    CODE.with(|c| {
        let previous = c.borrow_mut().replace(Vec::new());
        assert!(previous.is_none(), "codegen::record does not nest");
    });
    let syms: Vec<Sym> = inputs.iter().map(|e| Sym::emit(e.to_string())).collect();
    let r = body(&syms);
    let code = CODE.with(|c| c.borrow_mut().take().unwrap());
    (code, r)
}

macro_rules! binary {
    ($tr:ident, $f:ident, $op:literal) => {
        impl $tr for Sym {
            type Output = Sym;
            fn $f(self, o: Sym) -> Sym {
                Sym::emit(format!(concat!("{} ", $op, " {}"), self, o))
            }
        }
    };
}
binary!(Add, add, "+");
binary!(Sub, sub, "-");
binary!(Mul, mul, "*");
binary!(Div, div, "/");

impl Neg for Sym {
    type Output = Sym;
    fn neg(self) -> Sym {
        Sym::emit(format!("-{self}"))
    }
}

impl Real for Sym {
    fn lit(v: f64) -> Self {
        // The exact f32 the CPU uses (`v as f32`), by its bits.
        Sym::emit(format!("actlab_f32(0x{:08x}u)", (v as f32).to_bits()))
    }
    fn exp(self) -> Self {
        self.call("actlab_exp")
    }
    fn ln(self) -> Self {
        self.call("actlab_ln")
    }
    fn sqrt(self) -> Self {
        self.call("sqrtf")
    }
    fn tanh(self) -> Self {
        self.call("actlab_tanh")
    }
    fn sigmoid(self) -> Self {
        self.call("actlab_sigmoid")
    }
    fn softplus(self) -> Self {
        self.call("actlab_softplus")
    }
    fn softplus_and_slope(self) -> (Self, Self) {
        (self.softplus(), self.call("actlab_softplus_slope"))
    }
    fn select(op: Cmp, lhs: Self, rhs: Self, then: Self, otherwise: Self) -> Self {
        Sym::emit(format!("({lhs} {} {rhs}) ? {then} : {otherwise}", op.symbol()))
    }
}

/// A `__device__` function from recorded statements: `inputs` are its
/// `float` parameters, `outputs` its `float*` results.
pub fn device_function(name: &str, inputs: &[&str], outputs: &[(&str, Sym)], code: &[String]) -> String {
    let params: Vec<String> = inputs.iter().map(|i| format!("float {i}")).chain(outputs.iter().map(|(o, _)| format!("float* {o}"))).collect();
    let mut f = format!("ACTLAB_DEVICE void {name}({}) {{\n", params.join(", "));
    for line in code {
        let _ = writeln!(f, "    {line}");
    }
    for (o, s) in outputs {
        let _ = writeln!(f, "    *{o} = {s};");
    }
    f.push_str("}\n");
    f
}

/// `engine::math`, line for line, in C that both NVRTC and a host C
/// compiler accept. Keep the two in step: `tests/codegen.rs` fails otherwise.
pub const PRELUDE: &str = r#"
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define ACTLAB_DEVICE __device__ static
static __device__ float actlab_f32(unsigned int b) { return __uint_as_float(b); }
static __device__ unsigned long long actlab_bits64(double x) { return (unsigned long long)__double_as_longlong(x); }
static __device__ double actlab_from_bits64(unsigned long long b) { return __longlong_as_double((long long)b); }
#else
#include <math.h>
#include <string.h>
#define ACTLAB_DEVICE static
static float actlab_f32(unsigned int b) { float f; memcpy(&f, &b, 4); return f; }
static unsigned long long actlab_bits64(double x) { unsigned long long b; memcpy(&b, &x, 8); return b; }
static double actlab_from_bits64(unsigned long long b) { double x; memcpy(&x, &b, 8); return x; }
#endif

#define ACTLAB_INF actlab_from_bits64(0x7ff0000000000000ULL)
#define ACTLAB_NAN actlab_from_bits64(0x7ff8000000000000ULL)
#define ACTLAB_INF_F actlab_f32(0x7f800000u)

ACTLAB_DEVICE double actlab_pow2(int e) { return actlab_from_bits64((unsigned long long)(e + 1023) << 52); }

ACTLAB_DEVICE double actlab_scale2(double p, int k) {
    if (k > 1000) return p * actlab_pow2(1000) * actlab_pow2(k - 1000);
    if (k < -1000) return p * actlab_pow2(-1000) * actlab_pow2(k + 1000);
    return p * actlab_pow2(k);
}

ACTLAB_DEVICE double actlab_exp64(double x) {
    if (x != x) return x;
    if (x > 709.0) return ACTLAB_INF;
    if (x < -745.0) return 0.0;
    const double LN2_HI = 6.93147180369123816490e-01;
    const double LN2_LO = 1.90821492927058770002e-10;
    double k = round(x * 1.4426950408889634);
    double r = (x - k * LN2_HI) - k * LN2_LO;
    double p = 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 1.0 / 2.0;
    p = p * r + 1.0 / 1.0;
    p = p * r + 1.0 / 1.0;
    return actlab_scale2(p, (int)k);
}

ACTLAB_DEVICE double actlab_ln64(double x) {
    if (x != x || x < 0.0) return ACTLAB_NAN;
    if (x == 0.0) return -ACTLAB_INF;
    if (x == ACTLAB_INF) return x;
    int e = 0;
    if (x < 2.2250738585072014e-308) { x *= 18446744073709551616.0; e -= 64; }
    unsigned long long bits = actlab_bits64(x);
    e += (int)((bits >> 52) & 0x7ff) - 1023;
    double m = actlab_from_bits64((bits & ~(0x7ffULL << 52)) | (1023ULL << 52));
    if (m > 1.4142135623730951) { m *= 0.5; e += 1; }
    double s = (m - 1.0) / (m + 1.0);
    double s2 = s * s;
    double p = 1.0 / 13.0;
    p = p * s2 + 1.0 / 11.0;
    p = p * s2 + 1.0 / 9.0;
    p = p * s2 + 1.0 / 7.0;
    p = p * s2 + 1.0 / 5.0;
    p = p * s2 + 1.0 / 3.0;
    p = p * s2 + 1.0 / 1.0;
    return (double)e * 0.6931471805599453 + 2.0 * s * p;
}

ACTLAB_DEVICE double actlab_ln1p64(double y) {
    if (y < 1e-5) return y - y * y / 2.0 + y * y * y / 3.0;
    return actlab_ln64(1.0 + y);
}

ACTLAB_DEVICE double actlab_expm1_64(double z) {
    if (fabs(z) < 0.5) {
        double p = 1.0 / 6227020800.0;
        p = p * z + 1.0 / 479001600.0;
        p = p * z + 1.0 / 39916800.0;
        p = p * z + 1.0 / 3628800.0;
        p = p * z + 1.0 / 362880.0;
        p = p * z + 1.0 / 40320.0;
        p = p * z + 1.0 / 5040.0;
        p = p * z + 1.0 / 720.0;
        p = p * z + 1.0 / 120.0;
        p = p * z + 1.0 / 24.0;
        p = p * z + 1.0 / 6.0;
        p = p * z + 1.0 / 2.0;
        p = p * z + 1.0 / 1.0;
        return p * z;
    }
    return actlab_exp64(z) - 1.0;
}

ACTLAB_DEVICE float actlab_exp(float x) { return (float)actlab_exp64((double)x); }
ACTLAB_DEVICE float actlab_ln(float x) { return (float)actlab_ln64((double)x); }

ACTLAB_DEVICE float actlab_tanh(float x) {
    if (x != x) return x;
    double a = fabs((double)x);
    double t;
    if (a > 20.0) t = 1.0;
    else { double e = actlab_expm1_64(2.0 * a); t = e / (e + 2.0); }
    return copysignf((float)t, x);
}

ACTLAB_DEVICE double actlab_sigmoid64(double x) {
    if (x >= 0.0) return 1.0 / (1.0 + actlab_exp64(-x));
    double e = actlab_exp64(x);
    return e / (1.0 + e);
}

ACTLAB_DEVICE float actlab_sigmoid(float x) { return (float)actlab_sigmoid64((double)x); }

ACTLAB_DEVICE float actlab_softplus(float x) {
    if (x != x) return x;
    double xd = (double)x;
    double e = actlab_exp64(-fabs(xd));
    return (float)((xd > 0.0 ? xd : 0.0) + actlab_ln1p64(e));
}

ACTLAB_DEVICE float actlab_softplus_slope(float x) {
    if (x != x) return x;
    double xd = (double)x;
    double e = actlab_exp64(-fabs(xd));
    return (float)(xd >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e));
}
"#;
