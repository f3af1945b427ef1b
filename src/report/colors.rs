//! Colours of the book's charts, chosen by a measured rule: CIEDE2000, the
//! CIE's colour difference (ΔE₀₀; about 1 is the smallest step a reader can
//! see side by side, 20 and more reads as a different colour at a glance).
//!
//! - Functions: [`PALETTE`], nine colours that differ pairwise by at least
//!   [`MIN_FUNCTION_DELTA_E`] and all show on white. A function keeps one
//!   colour on every chart; [`function_colors`] hands them out so that no
//!   two functions of one study (the functions one chart shows) share one.
//! - Layers (a chart of one function, a line per layer): [`LAYER_COLORS`],
//!   greys from light (the first layer) to black (the last), none of them a
//!   function's colour.

use crate::activation::Activation;
use crate::nn::arch::ACTIVATED;
use plotters::style::RGBColor;

/// Colours for functions, most used first (relu, the baseline, is blue).
pub const PALETTE: [RGBColor; 9] = [
    RGBColor(31, 119, 180),  // blue
    RGBColor(255, 127, 14),  // orange
    RGBColor(44, 160, 44),   // green
    RGBColor(214, 39, 40),   // red
    RGBColor(148, 103, 189), // purple
    RGBColor(23, 190, 207),  // cyan
    RGBColor(188, 189, 34),  // olive
    RGBColor(0, 0, 128),     // navy
    RGBColor(0, 128, 128),   // teal
];

/// Any two function colours differ by at least this (ΔE₀₀).
pub const MIN_FUNCTION_DELTA_E: f64 = 20.0;

/// One grey per activated layer, light to black.
pub const LAYER_COLORS: [RGBColor; ACTIVATED.len()] = [
    RGBColor(185, 185, 185),
    RGBColor(145, 145, 145),
    RGBColor(105, 105, 105),
    RGBColor(60, 60, 60),
    RGBColor(0, 0, 0),
];

/// A colour for every function of `studies` (each study: its functions, the
/// ones its charts show together), in order of first appearance: each gets
/// the first palette colour that none of the functions it shares a study
/// with has yet; should all be taken, the one farthest from theirs.
pub fn function_colors(studies: &[Vec<Activation>]) -> Vec<(Activation, RGBColor)> {
    let mut out: Vec<(Activation, RGBColor)> = Vec::new();
    for study in studies {
        for &f in study {
            if out.iter().any(|(a, _)| *a == f) {
                continue;
            }
            let taken: Vec<RGBColor> = out.iter().filter(|(a, _)| studies.iter().any(|s| s.contains(a) && s.contains(&f))).map(|(_, c)| *c).collect();
            let color = PALETTE.iter().copied().find(|c| !taken.contains(c)).unwrap_or_else(|| {
                let nearest = |c: &RGBColor| taken.iter().map(|t| ciede2000(*c, *t)).fold(f64::INFINITY, f64::min);
                *PALETTE.iter().max_by(|a, b| nearest(a).total_cmp(&nearest(b))).expect("the palette is not empty")
            });
            out.push((f, color));
        }
    }
    out
}

/// sRGB (D65) to CIELAB.
fn lab(c: RGBColor) -> [f64; 3] {
    let lin = |v: u8| {
        let v = v as f64 / 255.0;
        if v <= 0.04045 { v / 12.92 } else { ((v + 0.055) / 1.055).powf(2.4) }
    };
    let (r, g, b) = (lin(c.0), lin(c.1), lin(c.2));
    let x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047;
    let y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b;
    let z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883;
    let f = |t: f64| if t > (6.0f64 / 29.0).powi(3) { t.cbrt() } else { t / (3.0 * (6.0f64 / 29.0).powi(2)) + 4.0 / 29.0 };
    let (fx, fy, fz) = (f(x), f(y), f(z));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// CIEDE2000 between two sRGB colours.
pub fn ciede2000(a: RGBColor, b: RGBColor) -> f64 {
    delta_e_2000(lab(a), lab(b))
}

/// CIEDE2000 between two CIELAB colours (Sharma, Wu & Dalal 2005, with
/// k_L = k_C = k_H = 1).
fn delta_e_2000([l1, a1, b1]: [f64; 3], [l2, a2, b2]: [f64; 3]) -> f64 {
    let (deg, rad) = (f64::to_degrees, f64::to_radians);
    let c_bar = (a1.hypot(b1) + a2.hypot(b2)) / 2.0;
    let g = 0.5 * (1.0 - (c_bar.powi(7) / (c_bar.powi(7) + 25f64.powi(7))).sqrt());
    let (a1p, a2p) = ((1.0 + g) * a1, (1.0 + g) * a2);
    let (c1p, c2p) = (a1p.hypot(b1), a2p.hypot(b2));
    let hue = |b: f64, ap: f64| if b == 0.0 && ap == 0.0 { 0.0 } else { deg(b.atan2(ap)).rem_euclid(360.0) };
    let (h1p, h2p) = (hue(b1, a1p), hue(b2, a2p));
    let dlp = l2 - l1;
    let dcp = c2p - c1p;
    let dhp = if c1p * c2p == 0.0 {
        0.0
    } else if (h2p - h1p).abs() <= 180.0 {
        h2p - h1p
    } else if h2p - h1p > 180.0 {
        h2p - h1p - 360.0
    } else {
        h2p - h1p + 360.0
    };
    let d_hp = 2.0 * (c1p * c2p).sqrt() * rad(dhp / 2.0).sin();
    let lbp = (l1 + l2) / 2.0;
    let cbp = (c1p + c2p) / 2.0;
    let hbp = if c1p * c2p == 0.0 {
        h1p + h2p
    } else if (h1p - h2p).abs() <= 180.0 {
        (h1p + h2p) / 2.0
    } else if h1p + h2p < 360.0 {
        (h1p + h2p + 360.0) / 2.0
    } else {
        (h1p + h2p - 360.0) / 2.0
    };
    let t = 1.0 - 0.17 * rad(hbp - 30.0).cos() + 0.24 * rad(2.0 * hbp).cos() + 0.32 * rad(3.0 * hbp + 6.0).cos() - 0.20 * rad(4.0 * hbp - 63.0).cos();
    let d_theta = 30.0 * (-((hbp - 275.0) / 25.0).powi(2)).exp();
    let rc = 2.0 * (cbp.powi(7) / (cbp.powi(7) + 25f64.powi(7))).sqrt();
    let sl = 1.0 + 0.015 * (lbp - 50.0).powi(2) / (20.0 + (lbp - 50.0).powi(2)).sqrt();
    let sc = 1.0 + 0.045 * cbp;
    let sh = 1.0 + 0.015 * cbp * t;
    let rt = -rad(2.0 * d_theta).sin() * rc;
    ((dlp / sl).powi(2) + (dcp / sc).powi(2) + (d_hp / sh).powi(2) + rt * (dcp / sc) * (d_hp / sh)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pairs from Sharma, Wu & Dalal's published test data for CIEDE2000
    /// (Table 1: L, a, b of each colour and ΔE₀₀ to four decimals).
    #[test]
    fn ciede2000_matches_the_published_test_data() {
        let cases = [
            ([50.0, 2.6772, -79.7751], [50.0, 0.0, -82.7485], 2.0425),
            ([50.0, -1.3802, -84.2814], [50.0, 0.0, -82.7485], 1.0),
            ([50.0, 0.0, 0.0], [50.0, -1.0, 2.0], 2.3669),
            ([50.0, 2.49, -0.001], [50.0, -2.49, 0.0011], 7.2195),
            ([50.0, 2.5, 0.0], [73.0, 25.0, -18.0], 27.1492),
            ([60.2574, -34.0099, 36.2677], [60.4626, -34.1751, 39.4387], 1.2644),
            ([90.8027, -2.0831, 1.441], [91.1528, -1.6435, 0.0447], 1.4441),
            ([2.0776, 0.0795, -1.135], [0.9033, -0.0636, -0.5514], 0.9082),
        ];
        for (a, b, want) in cases {
            let got = delta_e_2000(a, b);
            assert!((got - want).abs() < 1e-4, "ΔE00({a:?}, {b:?}) = {got}, published {want}");
            assert!((delta_e_2000(b, a) - want).abs() < 1e-4, "symmetric");
        }
    }

    #[test]
    fn every_two_function_colours_differ_at_a_glance_and_no_layer_grey_is_one_of_them() {
        for (i, a) in PALETTE.iter().enumerate() {
            for b in &PALETTE[i + 1..] {
                let d = ciede2000(*a, *b);
                assert!(d >= MIN_FUNCTION_DELTA_E, "{a:?} and {b:?} differ by ΔE00 {d:.1} < {MIN_FUNCTION_DELTA_E}");
            }
            // Every function colour shows on the white page.
            assert!(ciede2000(*a, RGBColor(255, 255, 255)) >= MIN_FUNCTION_DELTA_E, "{a:?} is too pale on white");
            for g in LAYER_COLORS {
                assert!(ciede2000(*a, g) >= 15.0, "layer grey {g:?} is close to function colour {a:?}");
            }
        }
        for w in LAYER_COLORS.windows(2) {
            assert!(ciede2000(w[0], w[1]) >= 10.0, "layer greys {:?} and {:?} are too alike", w[0], w[1]);
        }
    }

    /// The book's own studies: no chart shows two functions in one colour.
    #[test]
    fn no_study_of_the_book_shows_two_functions_in_one_colour() {
        let index = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("studies");
        let studies: Vec<Vec<Activation>> = crate::study::index::load(&index).unwrap().iter().map(|s| s.functions.iter().map(|f| f.activation).collect()).collect();
        let colors = function_colors(&studies);
        for study in &studies {
            let of = |a: &Activation| colors.iter().find(|(f, _)| f == a).unwrap().1;
            for (i, a) in study.iter().enumerate() {
                for b in &study[i + 1..] {
                    assert!(ciede2000(of(a), of(b)) >= MIN_FUNCTION_DELTA_E, "{} and {} share a study and look alike", a.name(), b.name());
                }
            }
        }
        assert_eq!(colors[0].1, PALETTE[0], "the first function of the book (relu) is blue");
    }

    #[test]
    fn functions_that_never_share_a_chart_may_share_a_colour_and_each_keeps_one() {
        use Activation::*;
        let colors = function_colors(&[vec![Relu, Tanh], vec![Relu, SignedSqrt], vec![SignedSqrt, Tanh, SoftplusLinear]]);
        let of = |a: Activation| colors.iter().filter(|(f, _)| *f == a).map(|(_, c)| *c).collect::<Vec<_>>();
        assert_eq!(of(Relu), [PALETTE[0]]);
        assert_eq!(of(Tanh), [PALETTE[1]]);
        // signed_sqrt meets tanh in the third study, so it cannot take orange.
        assert_eq!(of(SignedSqrt), [PALETTE[2]]);
        assert_eq!(of(SoftplusLinear), [PALETTE[0]], "never beside relu: blue is free");
    }
}
