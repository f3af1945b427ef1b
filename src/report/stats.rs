//! Small-sample statistics for seeds: mean, sd, Student-t confidence
//! intervals, Welch's interval for a difference, and the verdict rule.

use crate::study::spec::Direction;
use serde::Serialize;

/// Two-sided 95 % quantiles of Student's t for 1..=30 degrees of freedom.
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/// t(0.975, df); a fractional df (Welch) is rounded down, which widens the interval.
pub fn t975(df: f64) -> f64 {
    if df < 1.0 {
        return f64::INFINITY;
    }
    let d = df.floor() as usize;
    if d <= 30 { T975[d - 1] } else { 1.96 + 2.4 / d as f64 }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Describe {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1); NaN for n < 2.
    pub sd: f64,
    /// 95 % confidence interval of the mean (t, n − 1 df); NaN for n < 2.
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
    let half = t975((n - 1) as f64) * sd / (n as f64).sqrt();
    Describe { n, mean, sd, ci_low: mean - half, ci_high: mean + half }
}

/// Welch's 95 % interval for mean(a) − mean(b); None when either has < 2 values.
pub fn welch_diff(a: &[f64], b: &[f64]) -> Option<(f64, f64, f64)> {
    let (da, db) = (describe(a), describe(b));
    if da.n < 2 || db.n < 2 {
        return None;
    }
    let (va, vb) = (da.sd * da.sd / da.n as f64, db.sd * db.sd / db.n as f64);
    let se = (va + vb).sqrt();
    let d = da.mean - db.mean;
    if se == 0.0 {
        return Some((d, d, d));
    }
    let df = (va + vb).powi(2) / (va * va / (da.n - 1) as f64 + vb * vb / (db.n - 1) as f64);
    let half = t975(df) * se;
    Some((d, d - half, d + half))
}

/// A verdict on a claim, computed from the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Supported,
    Contradicted,
    Inconclusive,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Supported => "supported",
            Verdict::Contradicted => "contradicted",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// Differences within ± this are "similar" (two accuracy points).
pub const SIMILAR_MARGIN: f64 = 0.02;

/// The rule: with the 95 % Welch interval [lo, hi] of (function − baseline),
/// "higher" is supported when lo > 0 and contradicted when hi < 0; "lower"
/// mirrors it; "similar" is supported when the whole interval lies within
/// ±[`SIMILAR_MARGIN`] and contradicted when it lies wholly outside.
/// Everything else, and fewer than two seeds a side, is inconclusive.
pub fn verdict(expect: Direction, interval: Option<(f64, f64, f64)>) -> Verdict {
    let Some((_, lo, hi)) = interval else { return Verdict::Inconclusive };
    match expect {
        Direction::Higher if lo > 0.0 => Verdict::Supported,
        Direction::Higher if hi < 0.0 => Verdict::Contradicted,
        Direction::Lower if hi < 0.0 => Verdict::Supported,
        Direction::Lower if lo > 0.0 => Verdict::Contradicted,
        Direction::Similar if lo >= -SIMILAR_MARGIN && hi <= SIMILAR_MARGIN => Verdict::Supported,
        Direction::Similar if lo > SIMILAR_MARGIN || hi < -SIMILAR_MARGIN => Verdict::Contradicted,
        _ => Verdict::Inconclusive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_matches_hand_computation() {
        // mean 2, deviations (-1, 0, 1): variance 1, sd 1; half-width 4.303/sqrt(3) = 2.48434…
        let d = describe(&[1.0, 2.0, 3.0]);
        assert_eq!((d.n, d.mean, d.sd), (3, 2.0, 1.0));
        assert!((d.ci_high - 2.0 - 4.303 / 3f64.sqrt()).abs() < 1e-12);
        assert!(describe(&[5.0]).sd.is_nan());
    }

    #[test]
    fn welch_and_verdicts() {
        // a: mean 0.7, sd 0.01; b: mean 0.6, sd 0.01; se = sqrt(2·0.0001/3) = 0.0081650, df = 4.
        let (d, lo, hi) = welch_diff(&[0.69, 0.70, 0.71], &[0.59, 0.60, 0.61]).unwrap();
        assert!((d - 0.1).abs() < 1e-12);
        let half = 2.776 * (2.0 * 0.0001f64 / 3.0).sqrt();
        assert!((lo - (0.1 - half)).abs() < 1e-9 && (hi - (0.1 + half)).abs() < 1e-9);
        let iv = Some((d, lo, hi));
        assert_eq!(verdict(Direction::Higher, iv), Verdict::Supported);
        assert_eq!(verdict(Direction::Lower, iv), Verdict::Contradicted);
        assert_eq!(verdict(Direction::Similar, iv), Verdict::Contradicted);
        assert_eq!(verdict(Direction::Similar, Some((0.0, -0.01, 0.015))), Verdict::Supported);
        assert_eq!(verdict(Direction::Higher, Some((0.01, -0.01, 0.03))), Verdict::Inconclusive);
        assert_eq!(verdict(Direction::Higher, welch_diff(&[0.7], &[0.6, 0.5])), Verdict::Inconclusive);
    }
}
