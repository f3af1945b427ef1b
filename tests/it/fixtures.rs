//! actlab against the independent float64 reference in `../shared/fixtures`
//! (another framework's forward, backward and Adam step; see its README).
//! The directory comes from `ACTLAB_FIXTURES`, default `../shared/fixtures`.

use actlab::activation::Activation;
use actlab::io::safetensors::SafeTensors;
use actlab::nn::adam::{Adam, AdamConfig};
use actlab::nn::interop::{load_params, nchw_to_nhwc, to_actlab_layout};
use actlab::nn::model::{Model, CLASSES, PARAMS, param_ranges};


/// Whether the fixtures are there (else the test says it is skipped).
fn present(test: &str) -> bool {
    crate::common::fixtures_dir(test).is_some()
}

fn read(name: &str) -> SafeTensors {
    let p = crate::common::fixtures_path().join(name);
    SafeTensors::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e:#} (set ACTLAB_FIXTURES to the fixtures directory)", p.display()))
}

/// Largest |a − b| relative to the reference tensor's largest magnitude.
fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-30);
    a.iter().zip(b).map(|(x, y)| (*x as f64 - y).abs()).fold(0.0, f64::max) / scale
}

struct Case {
    model: Model,
    labels: Vec<u8>,
}

/// The fixture's parameters and input, each value moved by a deterministic
/// relative amount of at most [`PERTURBATION`] (draw 0: unmoved).
fn setup(act: Activation, draw: u64) -> Case {
    let params = read("params.safetensors");
    let mut model = Model::new(act, 4);
    model.params = perturbed(&load_params(&params, "param.").unwrap(), draw, 0);
    let input = params.get("input").unwrap();
    let x = perturbed(input.as_f32().unwrap(), draw, 1);
    let s = &input.shape;
    model.load_input(&nchw_to_nhwc(&x, s[0], s[1], s[2], s[3]));
    let labels = params.get("labels").unwrap().to_f64().iter().map(|&v| v as u8).collect();
    Case { model, labels }
}

const LAYERS: [&str; 7] = ["conv1", "conv2", "pool1", "conv3", "conv4", "pool2", "dense1"];

/// What one f32 forward and backward pass on the fixture's batch gives.
struct Pass {
    loss: f64,
    logits: Vec<f32>,
    layers: Vec<Vec<f32>>,
    grads: Vec<f32>,
}

/// One forward and backward pass on [`setup`]'s batch.
fn pass(act: Activation, draw: u64) -> Pass {
    let Case { mut model, labels } = setup(act, draw);
    let loss = model.loss_and_grads(4, &labels, None).mean_loss();
    let layers = LAYERS.iter().map(|l| model.layer_output(l, 4).unwrap().to_vec()).collect();
    Pass { loss, logits: model.logits(4).to_vec(), layers, grads: model.grads.clone() }
}

/// Relative size of the perturbations that measure conditioning: one unit
/// of f32 rounding (2^-24), the size of the error f32 itself makes.
const PERTURBATION: f64 = 1.0 / (1u64 << 24) as f64;
/// Perturbed passes per check: enough that a tie broken either way (two
/// equal maxima in a pool window) is seen broken both ways.
const DRAWS: u64 = 6;
/// How far beyond the largest perturbed change f32 rounding may still go.
const SAFETY: f64 = 3.0;
/// The fixtures README's tolerances where f32 is well conditioned: layer
/// outputs and gradients, relative to each tensor's largest magnitude;
/// the loss and the logits.
const TOLERANCE: f64 = 1e-3;
const OUTPUT_TOLERANCE: f64 = 1e-4;

fn perturbed(v: &[f32], draw: u64, stream: u64) -> Vec<f32> {
    if draw == 0 {
        return v.to_vec();
    }
    v.iter()
        .enumerate()
        .map(|(i, &x)| {
            // splitmix64 of (draw, stream, index): uniform in [−1, 1).
            let mut z = (draw << 40 ^ stream << 32 ^ i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            let u = ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 52) as f64 - 1.0;
            (x as f64 * (1.0 + PERTURBATION * u)) as f32
        })
        .collect()
}

/// The largest |a − b| over a range, relative to `scale`.
fn spread(a: &[f32], b: &[f32], scale: f64) -> f64 {
    a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).abs()).fold(0.0, f64::max) / scale.max(1e-30)
}

/// Every way `got` differs from the float64 reference by more than f32 can
/// explain. Each tensor's allowance follows from its conditioning: the
/// largest change that perturbing the inputs and parameters at f32's own
/// rounding size makes to it (an unbounded slope near 0, a tied maximum in
/// a pool window), times [`SAFETY`], and never below [`TOLERANCE`]. So the
/// bound holds for any reference set, and still fails a wrong gradient.
fn mismatches(act: Activation, got: &Pass, moved: &[Pass]) -> Vec<String> {
    let expected = read(&format!("{}.safetensors", act.name()));
    let mut out = Vec::new();
    let allowance = |floor: f64, f: &dyn Fn(&Pass) -> f64| (SAFETY * moved.iter().map(f).fold(0.0, f64::max)).max(floor);

    let want_loss = expected.get("expected.loss").unwrap().to_f64()[0];
    let e = (got.loss - want_loss).abs() / want_loss.abs();
    let bound = allowance(OUTPUT_TOLERANCE, &|p| (p.loss - got.loss).abs() / want_loss.abs());
    if e > bound {
        out.push(format!("{act}: loss {} vs {want_loss} (allowed {bound:e} relative)", got.loss));
    }
    let want = expected.get("expected.logits").unwrap().to_f64();
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
    let e = rel_err(&got.logits, &want);
    let bound = allowance(OUTPUT_TOLERANCE, &|p| spread(&p.logits, &got.logits, scale));
    if e > bound {
        out.push(format!("{act}: logits off by {e:e} (allowed {bound:e})"));
    }
    for (i, layer) in LAYERS.iter().enumerate() {
        let t = expected.get(&format!("expected.layer.{layer}")).unwrap();
        let want = if t.shape.len() == 4 {
            let v: Vec<f32> = t.to_f64().iter().map(|&v| v as f32).collect();
            nchw_to_nhwc(&v, t.shape[0], t.shape[1], t.shape[2], t.shape[3]).into_iter().map(|v| v as f64).collect()
        } else {
            t.to_f64()
        };
        let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
        let e = rel_err(&got.layers[i], &want);
        let bound = allowance(TOLERANCE, &|p| spread(&p.layers[i], &got.layers[i], scale));
        if e > bound {
            out.push(format!("{act}: layer {layer} off by {e:e} (allowed {bound:e})"));
        }
    }
    let ranges = param_ranges();
    let want_grad = |i: usize| -> Vec<f64> {
        let t = expected.get(&format!("expected.grad.{}", PARAMS[i].name())).unwrap();
        let v: Vec<f32> = t.to_f64().iter().map(|&v| v as f32).collect();
        to_actlab_layout(i, &t.shape, &v).unwrap().into_iter().map(|v| v as f64).collect()
    };
    for layer in 0..PARAMS.len() / 2 {
        let (wi, bi) = (2 * layer, 2 * layer + 1);
        let (ww, wb) = (want_grad(wi), want_grad(bi));
        // Relative to the layer's largest gradient: zero_fit's bias gradients
        // are exactly 0 in exact arithmetic (a bias shifts x and its minimum
        // alike), so their own largest magnitude is rounding noise.
        let scale = ww.iter().chain(&wb).fold(0f64, |m, v| m.max(v.abs()));
        for (i, want) in [(wi, ww), (bi, wb)] {
            let r = ranges[i].clone();
            let g = &got.grads[r.clone()];
            let e = g.iter().zip(&want).map(|(g, w)| (*g as f64 - w).abs()).fold(0.0, f64::max) / scale;
            let bound = allowance(TOLERANCE, &|p| spread(&p.grads[r.clone()], g, scale));
            if e > bound {
                out.push(format!("{act}: gradient of {} off by {e:e} (allowed {bound:e})", PARAMS[i].name()));
            }
        }
    }
    out
}

fn check_activation(act: Activation) {
    if !present(&format!("{act}_matches_reference")) {
        return;
    }
    let got = pass(act, 0);
    let moved: Vec<Pass> = (1..=DRAWS).map(|d| pass(act, d)).collect();
    let bad = mismatches(act, &got, &moved);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The bound derived from conditioning is no blanket: a doubled gradient,
/// and a training slope that differs from the function's, both fail.
#[test]
fn the_bound_still_catches_wrong_gradients() {
    if !present("the_bound_still_catches_wrong_gradients") {
        return;
    }
    // An engine that doubles dense1's kernel gradient, on every pass.
    let r = param_ranges()[PARAMS.iter().position(|p| p.name() == "dense1.weight").unwrap()].clone();
    let doubled = |d: u64| {
        let mut p = pass(Activation::SignedSqrt, d);
        p.grads[r.clone()].iter_mut().for_each(|g| *g *= 2.0);
        p
    };
    let moved: Vec<Pass> = (1..=DRAWS).map(doubled).collect();
    let bad = mismatches(Activation::SignedSqrt, &doubled(0), &moved);
    assert!(bad.iter().any(|m| m.contains("gradient of dense1.weight")), "{bad:?}");

    // relu forward, but a slope of 0.1 below 0 in training (as if leaky).
    let wrong = actlab::activation::define("relu_wrong_slope", &actlab::activation::Definition { expr: "max(x, 0)".into(), grad: Some("where(x <= 0, 0.1, 1)".into()) }).unwrap();
    let moved: Vec<Pass> = (1..=DRAWS).map(|d| pass(wrong, d)).collect();
    let bad = mismatches(Activation::Relu, &pass(wrong, 0), &moved);
    assert!(bad.iter().any(|m| m.contains("gradient of")), "{bad:?}");
    assert!(!bad.iter().any(|m| m.contains("layer") || m.contains("logits")), "the forward pass is relu's: {bad:?}");
}

#[test]
fn relu_matches_reference() {
    check_activation(Activation::Relu);
}
#[test]
fn tanh_matches_reference() {
    check_activation(Activation::Tanh);
}
#[test]
fn signed_sqrt_matches_reference() {
    check_activation(Activation::SignedSqrt);
}
#[test]
fn softplus_linear_matches_reference() {
    check_activation(Activation::SoftplusLinear);
}
#[test]
fn reflection_linear_matches_reference() {
    check_activation(Activation::ReflectionLinear);
}
#[test]
fn zero_fit_linear_matches_reference() {
    check_activation(Activation::ZeroFitLinear);
}

#[test]
fn adam_first_step_matches_reference() {
    if !present("adam_first_step_matches_reference") {
        return;
    }
    let Case { mut model, labels } = setup(Activation::Relu, 0);
    model.loss_and_grads(4, &labels, None);
    let before = model.params.clone();
    let mut adam = Adam::new(AdamConfig::default(), model.params.len());
    adam.step(&mut model.params, &model.grads);
    let expected = read("adam.safetensors");
    let ranges = param_ranges();
    for (i, spec) in PARAMS.iter().enumerate() {
        let t = expected.get(&format!("expected.adam1_delta.{}", spec.name())).unwrap();
        let v: Vec<f32> = t.to_f64().iter().map(|&v| v as f32).collect();
        let want: Vec<f64> = to_actlab_layout(i, &t.shape, &v).unwrap().into_iter().map(|v| v as f64).collect();
        let delta: Vec<f32> = ranges[i].clone().map(|j| model.params[j] - before[j]).collect();
        let e = rel_err(&delta, &want);
        assert!(e < 1e-3, "adam step of {} off by {e:e}", spec.name());
    }
    assert_eq!(CLASSES, 10);
}
