//! Activation functions written as expressions, e.g.
//! `where(x <= 0, 2*softplus(x), x + 2*softplus(0))` or `x - min_spatial(x)`.
//!
//! The parsed tree is evaluated over any [`Real`], so its derivative comes
//! from the same dual numbers as the built-ins'. Grammar (usual precedence,
//! `^` right-associative): numbers, `x`, `+ - * / ^`, unary `-`, comparisons
//! inside `where(a OP b, then, else)`, functions `abs exp log sqrt tanh
//! sigmoid softplus` (one argument) and `min max` (two), constants `ln2 pi e`,
//! and `min_spatial(x)`: the layer group's minimum (per sample and channel
//! after a conv, per sample after the dense layer).

use crate::engine::cpu::simd::Isa;
use crate::engine::real::{Cmp, Real};

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Num(f64),
    X,
    /// The layer group's minimum, `min_spatial(x)`.
    Min,
    Neg(Box<Expr>),
    Bin(char, Box<Expr>, Box<Expr>),
    Call(Func, Vec<Expr>),
    Where(Cmp, Box<Expr>, Box<Expr>, Box<Expr>, Box<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    Abs,
    Exp,
    Log,
    Sqrt,
    Tanh,
    Sigmoid,
    Softplus,
    Min2,
    Max2,
}

/// Every function: its name in expressions, and its name in the normalised
/// form (part of run identities and folder names, so it never changes).
const FUNCS: [(&str, Func, &str); 9] = [
    ("abs", Func::Abs, "Abs"),
    ("exp", Func::Exp, "Exp"),
    ("log", Func::Log, "Log"),
    ("sqrt", Func::Sqrt, "Sqrt"),
    ("tanh", Func::Tanh, "Tanh"),
    ("sigmoid", Func::Sigmoid, "Sigmoid"),
    ("softplus", Func::Softplus, "Softplus"),
    ("min", Func::Min2, "Min2"),
    ("max", Func::Max2, "Max2"),
];

impl Func {
    fn normalised(self) -> &'static str {
        FUNCS.iter().find(|f| f.1 == self).expect("every function is in FUNCS").2
    }
}

/// A number in the normalised form: its shortest decimal digits that read
/// back as the same f64, laid out as `0.044715`, `2.0` or `-0.5` for
/// magnitudes in [1e-4, 1e16) and zero, and as `1e-5` or `1.5e16` outside it.
/// (The digits are a fact about the value; this layout is the project's and
/// fixed, because run folders are named after it.)
pub fn canonical_number(v: f64) -> String {
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').expect("LowerExp writes an exponent");
    let exp: i32 = exp.parse().expect("LowerExp's exponent is an integer");
    let a = v.abs();
    if !v.is_finite() || (a != 0.0 && a < 1e-4) || a >= 1e16 {
        return sci;
    }
    let (sign, mantissa) = mantissa.strip_prefix('-').map_or(("", mantissa), |m| ("-", m));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    // The value is 0.d1d2… × 10^(exp + 1): the point goes after `point` digits.
    let point = exp + 1;
    let (int, frac) = if point <= 0 {
        ("0".to_string(), format!("{}{digits}", "0".repeat((-point) as usize)))
    } else if point as usize >= digits.len() {
        (format!("{digits}{}", "0".repeat(point as usize - digits.len())), String::new())
    } else {
        (digits[..point as usize].to_string(), digits[point as usize..].to_string())
    };
    let frac = if frac.is_empty() { "0".to_string() } else { frac };
    format!("{sign}{int}.{frac}")
}

/// A parse error at a 1-based column.
#[derive(Clone, Debug, PartialEq)]
pub struct ParseError {
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

impl ParseError {
    /// The message with the source line and a caret under the column.
    pub fn pointed(&self, src: &str) -> String {
        format!("{self}\n    {src}\n    {}^", " ".repeat(self.column.saturating_sub(1)))
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err<T>(&self, at: usize, m: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError { column: at + 1, message: m.into() })
    }
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, tok: &str) -> bool {
        self.ws();
        if self.s[self.i..].starts_with(tok.as_bytes()) {
            self.i += tok.len();
            true
        } else {
            false
        }
    }
    fn expect(&mut self, tok: &str) -> Result<(), ParseError> {
        if self.eat(tok) { Ok(()) } else { self.err(self.i, format!("expected `{tok}`")) }
    }
    fn add(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.mul()?;
        loop {
            if self.eat("+") {
                e = Expr::Bin('+', Box::new(e), Box::new(self.mul()?));
            } else if self.eat("-") {
                e = Expr::Bin('-', Box::new(e), Box::new(self.mul()?));
            } else {
                return Ok(e);
            }
        }
    }
    fn mul(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.unary()?;
        loop {
            if self.eat("*") {
                e = Expr::Bin('*', Box::new(e), Box::new(self.unary()?));
            } else if self.eat("/") {
                e = Expr::Bin('/', Box::new(e), Box::new(self.unary()?));
            } else {
                return Ok(e);
            }
        }
    }
    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.eat("-") {
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        let base = self.atom()?;
        if self.eat("^") {
            return Ok(Expr::Bin('^', Box::new(base), Box::new(self.unary()?)));
        }
        Ok(base)
    }
    fn cmp(&mut self) -> Result<Cmp, ParseError> {
        for (tok, c) in [("<=", Cmp::Le), (">=", Cmp::Ge), ("==", Cmp::Eq), ("!=", Cmp::Ne), ("<", Cmp::Lt), (">", Cmp::Gt)] {
            if self.eat(tok) {
                return Ok(c);
            }
        }
        self.err(self.i, "expected a comparison (<, <=, >, >=, ==, !=)")
    }
    fn atom(&mut self) -> Result<Expr, ParseError> {
        self.ws();
        let start = self.i;
        if self.eat("(") {
            let e = self.add()?;
            self.expect(")")?;
            return Ok(e);
        }
        let c = *self.s.get(self.i).ok_or(ParseError { column: start + 1, message: "unexpected end of expression".into() })?;
        if c.is_ascii_digit() || c == b'.' {
            while self.i < self.s.len() && (self.s[self.i].is_ascii_digit() || self.s[self.i] == b'.' || self.s[self.i] == b'e' && self.i + 1 < self.s.len() && (self.s[self.i + 1].is_ascii_digit() || self.s[self.i + 1] == b'-')) {
                self.i += if self.s[self.i] == b'e' { 2 } else { 1 };
            }
            let text = std::str::from_utf8(&self.s[start..self.i]).unwrap();
            return text.parse().map(Expr::Num).or_else(|_| self.err(start, format!("`{text}` is not a number")));
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while self.i < self.s.len() && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_') {
                self.i += 1;
            }
            let name = std::str::from_utf8(&self.s[start..self.i]).unwrap();
            let func = match name {
                "x" => return Ok(Expr::X),
                "ln2" => return Ok(Expr::Num(std::f64::consts::LN_2)),
                "pi" => return Ok(Expr::Num(std::f64::consts::PI)),
                "e" => return Ok(Expr::Num(std::f64::consts::E)),
                "where" => {
                    self.expect("(")?;
                    let a = self.add()?;
                    let op = self.cmp()?;
                    let b = self.add()?;
                    self.expect(",")?;
                    let t = self.add()?;
                    self.expect(",")?;
                    let f = self.add()?;
                    self.expect(")")?;
                    return Ok(Expr::Where(op, Box::new(a), Box::new(b), Box::new(t), Box::new(f)));
                }
                "min_spatial" => {
                    self.expect("(")?;
                    let arg_at = self.i;
                    if self.add()? != Expr::X {
                        return self.err(arg_at, "min_spatial takes x itself: min_spatial(x)");
                    }
                    self.expect(")")?;
                    return Ok(Expr::Min);
                }
                _ => match FUNCS.iter().find(|f| f.0 == name) {
                    Some(f) => f.1,
                    None => return self.err(start, format!("unknown name `{name}` (use x, numbers, ln2, pi, e, where, abs, exp, log, sqrt, tanh, sigmoid, softplus, min, max, min_spatial)")),
                },
            };
            self.expect("(")?;
            let mut args = vec![self.add()?];
            while self.eat(",") {
                args.push(self.add()?);
            }
            self.expect(")")?;
            let want = if matches!(func, Func::Min2 | Func::Max2) { 2 } else { 1 };
            if args.len() != want {
                return self.err(start, format!("`{name}` takes {want} argument(s), got {}", args.len()));
            }
            return Ok(Expr::Call(func, args));
        }
        self.err(start, format!("unexpected `{}`", c as char))
    }
}

pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let mut p = Parser { s: src.as_bytes(), i: 0 };
    let e = p.add()?;
    p.ws();
    if p.i < p.s.len() {
        return p.err(p.i, format!("unexpected `{}` after the expression", p.s[p.i] as char));
    }
    Ok(e)
}

/// `e.$walk(x, m)`: a child's value, by the same walk. A leaf's value (x,
/// m or a number, the same value the walk returns for it) is made in place:
/// a call per leaf returned its 32 lanes of dual numbers through memory, and
/// gelu's 17 nodes (8 of them leaves) cost more than its tanh.
macro_rules! child {
    ($e:expr, $walk:ident, $x:ident, $m:ident) => {{
        let e: &Expr = &$e;
        match e {
            Expr::Num(v) => T::lit(*v),
            Expr::X => *$x,
            Expr::Min => *$m,
            // SAFETY: the walk's own instruction set, which its caller vouched for.
            _ => unsafe { e.$walk($x, $m) },
        }
    }};
}

/// An evaluator walking the tree, compiled with the attributes given.
/// The walk recurses, so no kernel can inline it: compiled once for the
/// baseline instruction set (SSE2 on x86-64), every operation of every
/// node ran on two-lane vectors and f64 truncation was a libm call, and
/// gelu's training step took 2.4× relu's (`perf`: 37 % of it in the walk,
/// 9 % copying lanes). So there is one walk per instruction set. Its
/// inputs go by reference: 32 lanes of dual numbers are 256 bytes, copied
/// at every node otherwise.
macro_rules! walk {
    ($(#[$attr:meta])* $walk:ident) => {
        impl Expr {
            $(#[$attr])*
            #[allow(unused_unsafe)]
            unsafe fn $walk<T: Real>(&self, x: &T, m: &T) -> T {
                match self {
                    Expr::Num(v) => T::lit(*v),
                    Expr::X => *x,
                    Expr::Min => *m,
                    Expr::Neg(a) => -child!(a, $walk, x, m),
                    Expr::Bin(op, a, b) => {
                        let (va, vb) = (child!(a, $walk, x, m), child!(b, $walk, x, m));
                        match op {
                            '+' => va + vb,
                            '-' => va - vb,
                            '*' => va * vb,
                            '/' => va / vb,
                            _ => match **b {
                                // Integer powers by multiplication: exact, and defined for x < 0.
                                Expr::Num(k) if k.fract() == 0.0 && k.abs() <= 16.0 => {
                                    let mut r = T::lit(1.0);
                                    for _ in 0..k.abs() as u32 {
                                        r = r * va;
                                    }
                                    if k < 0.0 { T::lit(1.0) / r } else { r }
                                }
                                _ => va.powf(vb),
                            },
                        }
                    }
                    Expr::Call(f, args) => {
                        let a = child!(args[0], $walk, x, m);
                        match f {
                            Func::Abs => a.abs(),
                            Func::Exp => a.exp(),
                            Func::Log => a.ln(),
                            Func::Sqrt => a.sqrt(),
                            Func::Tanh => a.tanh(),
                            Func::Sigmoid => a.sigmoid(),
                            Func::Softplus => a.softplus(),
                            Func::Min2 => a.min(child!(args[1], $walk, x, m)),
                            Func::Max2 => a.max(child!(args[1], $walk, x, m)),
                        }
                    }
                    Expr::Where(op, a, b, t, f) => {
                        T::select(*op, child!(a, $walk, x, m), child!(b, $walk, x, m), child!(t, $walk, x, m), child!(f, $walk, x, m))
                    }
                }
            }
        }
    };
}

walk!(walk_baseline);
walk!(#[cfg(target_arch = "x86_64")] #[target_feature(enable = "avx512f")] walk_avx512);
walk!(#[cfg(target_arch = "x86_64")] #[target_feature(enable = "avx,avx2,fma")] walk_avx2);

impl Expr {
    /// The function's value at (x, m), and with dual numbers its derivative.
    pub fn eval<T: Real>(&self, x: T, m: T) -> T {
        // SAFETY: the baseline instruction set.
        unsafe { self.walk_baseline(&x, &m) }
    }

    /// [`Self::eval`], walked by code compiled for `isa`. Every lane's
    /// operations are those of a lone f32 on any instruction set, so the
    /// bits are the same.
    ///
    /// # Safety
    /// `isa` is one this CPU has.
    #[inline(always)]
    pub unsafe fn eval_on<T: Real>(&self, isa: Isa, x: T, m: T) -> T {
        match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the caller vouches for `isa`.
            Isa::Avx512 => unsafe { self.walk_avx512(&x, &m) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Isa::Avx2 => unsafe { self.walk_avx2(&x, &m) },
            _ => self.eval(x, m),
        }
    }

    /// A canonical spelling: fully parenthesised, numbers in their shortest
    /// exact form. Two texts that parse to the same tree (spacing, `0.10`
    /// for `0.1`, redundant parentheses) have the same normalised form.
    pub fn normalised(&self) -> String {
        match self {
            Expr::Num(v) => canonical_number(*v),
            Expr::X => "x".into(),
            Expr::Min => "min_spatial(x)".into(),
            Expr::Neg(a) => format!("(-{})", a.normalised()),
            Expr::Bin(op, a, b) => format!("({} {op} {})", a.normalised(), b.normalised()),
            Expr::Call(f, args) => format!("{}({})", f.normalised(), args.iter().map(Expr::normalised).collect::<Vec<_>>().join(", ")),
            Expr::Where(op, a, b, t, f) => format!("where({} {} {}, {}, {})", a.normalised(), op.symbol(), b.normalised(), t.normalised(), f.normalised()),
        }
    }

    /// Whether the expression reads the layer group's minimum.
    pub fn uses_min(&self) -> bool {
        match self {
            Expr::Min => true,
            Expr::Num(_) | Expr::X => false,
            Expr::Neg(a) => a.uses_min(),
            Expr::Bin(_, a, b) => a.uses_min() || b.uses_min(),
            Expr::Call(_, args) => args.iter().any(Expr::uses_min),
            Expr::Where(_, a, b, t, f) => [a, b, t, f].iter().any(|e| e.uses_min()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;
    use crate::engine::real::Dual;

    /// The normalised form's numbers: shortest round-trip digits in the
    /// project's fixed layout, on both sides of the switch to exponents.
    #[test]
    fn numbers_have_one_spelling() {
        let cases = [
            (2.0, "2.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (0.044715, "0.044715"),
            (-1.5, "-1.5"),
            (1e-4, "0.0001"),
            (9.9e-5, "9.9e-5"),
            (1e-5, "1e-5"),
            (123456.0, "123456.0"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e16"),
            (std::f64::consts::LN_2, "0.6931471805599453"),
            (std::f64::consts::PI, "3.141592653589793"),
        ];
        for (v, want) in cases {
            assert_eq!(canonical_number(v), want, "{v:e}");
            assert_eq!(canonical_number(v).parse::<f64>().unwrap().to_bits(), v.to_bits());
        }
    }

    /// Folder names of published runs are hashes of the normalised form, so
    /// it must never change: these are the committed runs' folders.
    #[test]
    fn published_expression_folders_keep_their_names() {
        use crate::activation::{define, Definition};
        let cases = [
            ("where(x <= 0, 2*softplus(x) - 2*ln2, x)", None, "expr-212fa4df3d19"),
            ("2*softplus(x)", None, "expr-9efb3684299f"),
            ("max(x, 0) + 2*ln2", None, "expr-c7ba2501da6a"),
            ("where(x <= 0, 0.01*x, x)", None, "expr-014d22a90e92"),
            ("where(x <= 0, 0.3*x, x)", None, "expr-132c952112b8"),
            ("x", None, "expr-73cb3858a687"),
            ("max(x, 0)", Some("1"), "expr-b9704de36613"),
            ("where(x <= 0, 0.1*x, x)", None, "expr-d50fab58c589"),
            ("x", Some("where(x > 0, 1, 0)"), "expr-f2b6d5be8ea7"),
        ];
        for (i, (expr, grad, folder)) in cases.into_iter().enumerate() {
            let a = define(&format!("published_folder_{i}"), &Definition { expr: expr.into(), grad: grad.map(String::from) }).unwrap();
            assert_eq!(crate::store::function_dir(a), folder, "{expr} ; {grad:?}");
        }
    }

    #[test]
    fn expressions_equal_the_builtins_bit_for_bit() {
        let cases = [
            (Activation::Relu, "where(x <= 0, 0, x)"),
            (Activation::SoftplusLinear, "where(x <= 0, 2*softplus(x), x + 2*softplus(0))"),
            (Activation::ReflectionLinear, "where(x <= 0, -x, x)"),
            (Activation::ZeroFitLinear, "x - min_spatial(x)"),
            (Activation::Tanh, "tanh(x)"),
        ];
        for (b, src) in cases {
            let e = parse(src).unwrap();
            assert_eq!(e.uses_min(), b.uses_min());
            for i in -40..=40 {
                let x = i as f32 * 0.173;
                let (de, db) = (e.eval(Dual::var(x), Dual::constant(-7.0)), b.eval(Dual::var(x), Dual::constant(-7.0)));
                assert_eq!((de.v.to_bits(), de.d.to_bits()), (db.v.to_bits(), db.d.to_bits()), "{src} at {x}");
            }
        }
    }

    #[test]
    fn arithmetic_precedence_and_powers() {
        let e = parse("1 + 2*x^2 - -3/x + max(x, ln2) ^ 1").unwrap();
        let x = 1.5f32;
        let want = 1.0 + 2.0 * x * x + 3.0 / x + x.max(std::f32::consts::LN_2);
        assert!((e.eval(x, 0.0) - want).abs() < 1e-5);
        let d = e.eval(Dual::var(x), Dual::constant(0.0)).d;
        assert!((d - (4.0 * x - 3.0 / (x * x) + 1.0)).abs() < 1e-4);
        assert_eq!(parse("2^3^2").unwrap().eval(0.0f32, 0.0), 512.0);
        assert_eq!(parse("(-2)^3").unwrap().eval(0.0f32, 0.0), -8.0);
    }

    #[test]
    fn errors_point_at_the_column() {
        let e = parse("where(x <= 0, 2*softplus(x) x)").unwrap_err();
        assert_eq!(e.column, 29, "{e}"); // the stray `x`
        assert!(e.pointed("where(x <= 0, 2*softplus(x) x)").contains("^"));
        assert_eq!(parse("x + swish(x)").unwrap_err().column, 5);
        assert!(parse("max(x)").unwrap_err().message.contains("2 argument"));
        assert!(parse("min_spatial(2*x)").is_err());
        assert_eq!(parse("x +").unwrap_err().column, 4);
    }
}
