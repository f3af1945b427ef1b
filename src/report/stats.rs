//! Small-sample statistics for seeds: Student's t distribution (any degrees
//! of freedom, any level), the mean and its interval, the difference of two
//! functions paired by seed or by Welch, the two one-sided tests of
//! equivalence, and Holm's step-down correction. Pure arithmetic: what the
//! numbers mean is decided in [`super::rules`].

use serde::Serialize;

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error below 1e-15).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The continued fraction of the incomplete beta function (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// The regularised incomplete beta function I_x(a, b).
fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) { front * beta_cf(a, b, x) / a } else { 1.0 - front * beta_cf(b, a, 1.0 - x) / b }
}

/// P(T > t) for Student's t with `df` degrees of freedom (df may be fractional, as Welch's is).
fn t_upper(t: f64, df: f64) -> f64 {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if t.is_infinite() {
        return if t > 0.0 { 0.0 } else { 1.0 };
    }
    let tail = 0.5 * inc_beta(df / 2.0, 0.5, df / (df + t * t));
    if t >= 0.0 { tail } else { 1.0 - tail }
}

/// The t with P(T > t) = p (0 < p < 1), by bisection on [`t_upper`].
pub fn t_quantile_upper(p: f64, df: f64) -> f64 {
    // Written so that NaN arguments fail the test too.
    #[allow(clippy::neg_cmp_op_on_partial_ord, clippy::nonminimal_bool)]
    if !(p > 0.0 && p < 1.0) || !(df > 0.0) {
        return f64::NAN;
    }
    if p > 0.5 {
        return -t_quantile_upper(1.0 - p, df);
    }
    let (mut lo, mut hi) = (0.0, 1.0);
    while t_upper(hi, df) > p {
        hi *= 2.0;
        if hi > 1e12 {
            return f64::INFINITY;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_upper(mid, df) > p {
            lo = mid
        } else {
            hi = mid
        }
        if hi - lo <= 1e-13 * hi {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// The error rate the verdicts control (family-wise, after Holm); every
/// interval in the book is the two-sided 1 − ALPHA one.
pub const ALPHA: f64 = 0.05;
/// 1 − [`ALPHA`], as the book writes it.
pub const CONFIDENCE_PERCENT: u32 = 95;

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Describe {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1); NaN for n < 2.
    pub sd: f64,
    /// The 95 % interval of the mean (t, n − 1 df); NaN for n < 2.
    pub ci_low: f64,
    pub ci_high: f64,
}

pub fn describe(v: &[f64]) -> Describe {
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return Describe { n, mean, sd: f64::NAN, ci_low: f64::NAN, ci_high: f64::NAN };
    }
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    let half = t_quantile_upper(ALPHA / 2.0, (n - 1) as f64) * sd / (n as f64).sqrt();
    Describe { n, mean, sd, ci_low: mean - half, ci_high: mean + half }
}

/// How a difference between two functions was estimated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Per-seed differences (both functions ran with the same seeds, so
    /// they share the data order and the initial-weight stream).
    Paired,
    /// Welch's unequal-variance test on two independent samples.
    Welch,
}

/// mean(a) − mean(b) with its standard error and degrees of freedom.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Difference {
    pub method: Method,
    /// Seeds (paired) or the smaller sample (Welch).
    pub n: usize,
    pub estimate: f64,
    pub se: f64,
    pub df: f64,
    /// The sd that a paired difference or each Welch sample shows, for sizing.
    pub sd: f64,
}

impl Difference {
    /// The two-sided interval at confidence 1 − `alpha`.
    pub fn interval(&self, alpha: f64) -> (f64, f64) {
        if self.se == 0.0 {
            return (self.estimate, self.estimate);
        }
        let half = t_quantile_upper(alpha / 2.0, self.df) * self.se;
        (self.estimate - half, self.estimate + half)
    }

    /// P(T > (estimate − d0)/se): the one-sided p-value against "difference ≤ d0".
    pub fn p_above(&self, d0: f64) -> f64 {
        if self.se == 0.0 {
            return if self.estimate > d0 { 0.0 } else { 1.0 };
        }
        t_upper((self.estimate - d0) / self.se, self.df)
    }

    /// The one-sided p-value against "difference ≥ d0".
    pub fn p_below(&self, d0: f64) -> f64 {
        if self.se == 0.0 {
            return if self.estimate < d0 { 0.0 } else { 1.0 };
        }
        t_upper((d0 - self.estimate) / self.se, self.df)
    }

    /// Two one-sided tests of |difference| < margin: the larger p-value.
    pub fn p_equivalent(&self, margin: f64) -> f64 {
        self.p_above(-margin).max(self.p_below(margin))
    }
}

/// The difference of two functions' per-seed values, each given as
/// (seed, value). Paired on the common seeds when both sides have the same
/// seeds (at least two); Welch otherwise. None with fewer than two values a side.
pub fn difference(a: &[(u64, f64)], b: &[(u64, f64)]) -> Option<Difference> {
    let seeds = |v: &[(u64, f64)]| {
        let mut s: Vec<u64> = v.iter().map(|x| x.0).collect();
        s.sort_unstable();
        s
    };
    if a.len() >= 2 && seeds(a) == seeds(b) {
        let d: Vec<f64> = a.iter().map(|(s, x)| x - b.iter().find(|y| y.0 == *s).unwrap().1).collect();
        let ds = describe(&d);
        let se = ds.sd / (ds.n as f64).sqrt();
        return Some(Difference { method: Method::Paired, n: ds.n, estimate: ds.mean, se, df: (ds.n - 1) as f64, sd: ds.sd });
    }
    let (da, db) = (describe(&a.iter().map(|x| x.1).collect::<Vec<_>>()), describe(&b.iter().map(|x| x.1).collect::<Vec<_>>()));
    if da.n < 2 || db.n < 2 {
        return None;
    }
    let (va, vb) = (da.sd * da.sd / da.n as f64, db.sd * db.sd / db.n as f64);
    let se = (va + vb).sqrt();
    let df = if se == 0.0 { (da.n + db.n - 2) as f64 } else { (va + vb).powi(2) / (va * va / (da.n - 1) as f64 + vb * vb / (db.n - 1) as f64) };
    let sd = ((da.sd * da.sd + db.sd * db.sd) / 2.0).sqrt();
    Some(Difference { method: Method::Welch, n: da.n.min(db.n), estimate: da.mean - db.mean, se, df, sd })
}

/// The power of two one-sided tests of |difference| < `margin` at `n`
/// seeds and level `alpha`, when the true difference is 0 and the seeds
/// spread as `sd` (paired: the sd of the per-seed differences): the chance
/// that both one-sided tests pass, by the usual central-t approximation
/// 1 − 2·P(T > margin/(sd/√n) − t(1 − α, n − 1)).
pub fn equivalence_power(sd: f64, margin: f64, n: usize, alpha: f64) -> f64 {
    if n < 2 {
        return 0.0;
    }
    let df = (n - 1) as f64;
    let shift = margin / (sd / (n as f64).sqrt()) - t_quantile_upper(alpha, df);
    (1.0 - 2.0 * t_upper(shift, df)).max(0.0)
}

/// The power the book sizes studies for: an 80 % chance of showing what is there.
pub const POWER: f64 = 0.8;

/// The fewest seeds that give two one-sided tests at level `alpha`
/// [`POWER`] to show |difference| < `margin`, if the true difference were 0
/// and the seeds spread as `sd`. None when the spread is unknown or more
/// than `limit` seeds would be needed.
pub fn seeds_for_equivalence(sd: f64, margin: f64, limit: usize, alpha: f64) -> Option<usize> {
    if !(sd.is_finite() && margin > 0.0) {
        return None;
    }
    (2..=limit).find(|&n| equivalence_power(sd, margin, n, alpha) >= POWER)
}

/// The Clopper–Pearson (exact) 1 − [`ALPHA`] interval of a rate seen `k`
/// times in `n`: always inside [0, 1].
pub fn binomial_interval(k: usize, n: usize) -> (f64, f64) {
    assert!(k <= n && n > 0, "{k} of {n}");
    let (k, n) = (k as f64, n as f64);
    // The p with I_p(a, b) = q, by bisection (I is increasing in p).
    let quantile = |q: f64, a: f64, b: f64| {
        let (mut lo, mut hi) = (0.0, 1.0);
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if inc_beta(a, b, mid) < q { lo = mid } else { hi = mid }
        }
        0.5 * (lo + hi)
    };
    let lo = if k == 0.0 { 0.0 } else { quantile(ALPHA / 2.0, k, n - k + 1.0) };
    let hi = if k == n { 1.0 } else { quantile(1.0 - ALPHA / 2.0, k + 1.0, n - k) };
    (lo, hi)
}

/// A least-squares line through `ys` at x = 0, 1, …: its slope, the
/// slope's standard error from the residuals, and their degrees of freedom
/// (n − 2). NaN se with fewer than three points.
pub fn slope(ys: &[f64]) -> (f64, f64, f64) {
    let n = ys.len() as f64;
    let mx = (n - 1.0) / 2.0;
    let my = ys.iter().sum::<f64>() / n;
    let sxx: f64 = (0..ys.len()).map(|i| (i as f64 - mx).powi(2)).sum();
    let b = ys.iter().enumerate().map(|(i, y)| (i as f64 - mx) * (y - my)).sum::<f64>() / sxx;
    if ys.len() < 3 {
        return (b, f64::NAN, f64::NAN);
    }
    let rss: f64 = ys.iter().enumerate().map(|(i, y)| (y - my - b * (i as f64 - mx)).powi(2)).sum();
    let df = n - 2.0;
    (b, (rss / df / sxx).sqrt(), df)
}

/// Holm's step-down adjustment of `p` (same order as given): the smallest
/// family-wise level at which each hypothesis is rejected.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let k = p.len();
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut out = vec![f64::NAN; k];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((k - rank) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Student's t table (two-sided 95 %, 97.5 % upper point), from any statistics text.
    const T975: [(f64, f64); 7] = [(1.0, 12.706), (2.0, 4.303), (3.0, 3.182), (4.0, 2.776), (10.0, 2.228), (30.0, 2.042), (1000.0, 1.962)];

    #[test]
    fn t_quantiles_match_the_table() {
        for (df, t) in T975 {
            assert!((t_quantile_upper(0.025, df) - t).abs() < 5e-4, "df {df}: {}", t_quantile_upper(0.025, df));
        }
        // One-sided 95 % points: 6.314 (1 df), 2.920 (2), 2.132 (4).
        for (df, t) in [(1.0, 6.314), (2.0, 2.920), (4.0, 2.132)] {
            assert!((t_quantile_upper(0.05, df) - t).abs() < 5e-4);
        }
        // df = 1 is the Cauchy distribution: P(T > 1) = 1/4 exactly.
        assert!((t_upper(1.0, 1.0) - 0.25).abs() < 1e-12);
        assert!((t_upper(0.0, 3.7) - 0.5).abs() < 1e-12);
        assert!((t_upper(-2.0, 5.0) - (1.0 - t_upper(2.0, 5.0))).abs() < 1e-12);
    }

    #[test]
    fn describe_matches_hand_computation() {
        // mean 2, deviations (−1, 0, 1): variance 1, sd 1; half-width 4.303/√3.
        let d = describe(&[1.0, 2.0, 3.0]);
        assert_eq!((d.n, d.mean, d.sd), (3, 2.0, 1.0));
        assert!((d.ci_high - 2.0 - 4.3027 / 3f64.sqrt()).abs() < 1e-4);
        assert!(describe(&[5.0]).sd.is_nan());
    }

    #[test]
    fn shared_seeds_are_paired_and_others_are_welch() {
        // The seed effect (+0.1 on seed 2) is shared; pairing removes it.
        let a = [(1, 0.70), (2, 0.80), (3, 0.71)];
        let b = [(1, 0.60), (2, 0.71), (3, 0.60)];
        let d = difference(&a, &b).unwrap();
        assert_eq!((d.method, d.n, d.df), (Method::Paired, 3, 2.0));
        // Differences 0.10, 0.09, 0.11: mean 0.10, sd 0.01.
        assert!((d.estimate - 0.10).abs() < 1e-12 && (d.sd - 0.01).abs() < 1e-12);
        let (lo, hi) = d.interval(0.05);
        assert!((hi - lo - 2.0 * 4.3027 * 0.01 / 3f64.sqrt()).abs() < 1e-4);
        // Unpaired the same numbers are far noisier.
        let w = difference(&a, &[(4, 0.60), (5, 0.71), (6, 0.60)]).unwrap();
        assert_eq!(w.method, Method::Welch);
        assert!(w.se > 3.0 * d.se);
        // Welch by hand: equal sd 0.01, n 3 a side → se √(2e-4/3), df 4.
        let w = difference(&[(1, 0.69), (2, 0.70), (3, 0.71)], &[(1, 0.59), (3, 0.60), (4, 0.61)]).unwrap();
        assert_eq!(w.method, Method::Welch);
        assert!((w.se - (2e-4f64 / 3.0).sqrt()).abs() < 1e-12 && (w.df - 4.0).abs() < 1e-9);
        assert!(difference(&[(1, 0.7)], &[(1, 0.6)]).is_none());
    }

    #[test]
    fn equivalence_and_seeds_needed() {
        let d = Difference { method: Method::Paired, n: 3, estimate: 0.0, se: 0.004, df: 2.0, sd: 0.004 * 3f64.sqrt() };
        // t(0.95, 2) · 0.004 = 0.01168 < 0.02: equivalent at 5 %.
        assert!(d.p_equivalent(0.02) < 0.05);
        assert!(d.p_equivalent(0.01) > 0.05);
        // A spread of 0.03 per seed can pass at all from n = 9 (t(0.95, 8)·0.03/3 = 0.0186 < 0.02),
        // but rarely: the approximation gives 1 − 2·P(T₈ > 0.02/0.01 − 1.860) = 1 − 2·0.4461 = 0.108
        // (it errs low at so few seeds; a simulation of 40,000 studies gives 0.22).
        assert!((equivalence_power(0.03, 0.02, 9, ALPHA) - 0.108).abs() < 0.002, "{}", equivalence_power(0.03, 0.02, 9, ALPHA));
        assert_eq!(equivalence_power(0.03, 0.02, 8, ALPHA), 0.0);
        // 80 %: n = 21, where 0.02/(0.03/√21) = 3.055, t(0.95, 20) = 1.725, 1 − 2·P(T₂₀ > 1.330) = 0.802;
        // at n = 20 it is 0.791 (simulated: 0.808 at 21 seeds, 0.778 at 20).
        assert_eq!(seeds_for_equivalence(0.03, 0.02, 100, ALPHA), Some(21));
        assert!(equivalence_power(0.03, 0.02, 20, ALPHA) < POWER);
        assert_eq!(seeds_for_equivalence(1.0, 0.02, 100, ALPHA), None);
    }

    #[test]
    fn binomial_intervals_are_exact_and_inside_0_1() {
        // Clopper–Pearson for 1 of 3: [0.0084, 0.9057]; 0 of 10: [0, 0.3085]; 10 of 10: [0.6915, 1].
        let (lo, hi) = binomial_interval(1, 3);
        assert!((lo - 0.0084).abs() < 1e-4 && (hi - 0.9057).abs() < 1e-4, "{lo} {hi}");
        let (lo, hi) = binomial_interval(0, 10);
        assert!(lo == 0.0 && (hi - 0.3085).abs() < 1e-4, "{hi}");
        let (lo, hi) = binomial_interval(10, 10);
        assert!((lo - 0.6915).abs() < 1e-4 && hi == 1.0, "{lo}");
    }

    #[test]
    fn a_line_through_points() {
        // y = 2 + 0.5x exactly: slope 0.5, no residual.
        let (b, se, df) = slope(&[2.0, 2.5, 3.0, 3.5]);
        assert!((b - 0.5).abs() < 1e-12 && se.abs() < 1e-12 && df == 2.0);
        // y = 0, 1, 0, 1: slope 0.2 (Sxy = 1, Sxx = 5); fitted 0.2, 0.4, 0.6, 0.8, so RSS = 0.8 and se = √(0.8/2/5).
        let (b, se, _) = slope(&[0.0, 1.0, 0.0, 1.0]);
        assert!((b - 0.2).abs() < 1e-12 && (se - (0.8f64 / 2.0 / 5.0).sqrt()).abs() < 1e-12, "{b} {se}");
    }

    #[test]
    fn holm_steps_down() {
        // Sorted 0.01, 0.02, 0.04 → 3·0.01, 2·0.02, 1·0.04, each at least the previous.
        let a = holm(&[0.04, 0.01, 0.02]);
        assert!((a[0] - 0.04).abs() < 1e-12 && (a[1] - 0.03).abs() < 1e-12 && (a[2] - 0.04).abs() < 1e-12);
        // Capped at 1: 2·0.8 → 1, and 0.9 may not fall below it.
        assert_eq!(holm(&[0.9, 0.8]), vec![1.0, 1.0]);
    }
}
