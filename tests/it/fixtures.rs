//! actlab against the independent float64 reference in `../shared/fixtures`
//! (another framework's forward, backward and Adam step; see its README).
//! The directory comes from `ACTLAB_FIXTURES`, default `../shared/fixtures`.

use actlab::activation::Activation;
use actlab::io::safetensors::SafeTensors;
use actlab::nn::adam::{Adam, AdamConfig};
use actlab::nn::interop::{load_params, nchw_to_nhwc, to_actlab_layout};
use actlab::nn::model::{Model, CLASSES, PARAMS, param_ranges};
use std::path::PathBuf;

fn dir() -> PathBuf {
    std::env::var_os("ACTLAB_FIXTURES").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"))
}

fn read(name: &str) -> SafeTensors {
    let p = dir().join(name);
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

fn setup(act: Activation) -> Case {
    let params = read("params.safetensors");
    let mut model = Model::new(act, 4);
    model.params = load_params(&params, "param.").unwrap();
    let input = params.get("input").unwrap();
    let x: Vec<f32> = input.as_f32().unwrap().to_vec();
    let s = &input.shape;
    model.load_input(&nchw_to_nhwc(&x, s[0], s[1], s[2], s[3]));
    let labels = params.get("labels").unwrap().to_f64().iter().map(|&v| v as u8).collect();
    Case { model, labels }
}

fn check_activation(act: Activation) {
    let expected = read(&format!("{}.safetensors", act.name()));
    let Case { mut model, labels } = setup(act);
    let stats = model.loss_and_grads(4, &labels, None);

    let want_loss = expected.get("expected.loss").unwrap().to_f64()[0];
    let loss = stats.mean_loss();
    assert!((loss - want_loss).abs() <= 1e-4 * want_loss.abs(), "{act}: loss {loss} vs {want_loss}");
    let e = rel_err(model.logits(4), &expected.get("expected.logits").unwrap().to_f64());
    assert!(e < 1e-4, "{act}: logits off by {e:e}");

    for layer in ["conv1", "conv2", "pool1", "conv3", "conv4", "pool2", "dense1"] {
        let t = expected.get(&format!("expected.layer.{layer}")).unwrap();
        let want = if t.shape.len() == 4 {
            let v: Vec<f32> = t.to_f64().iter().map(|&v| v as f32).collect();
            nchw_to_nhwc(&v, t.shape[0], t.shape[1], t.shape[2], t.shape[3]).into_iter().map(|v| v as f64).collect()
        } else {
            t.to_f64()
        };
        // Intermediate outputs get the gradients' bound: signed_sqrt's
        // unbounded slope near 0 amplifies f32 rounding to ~1.1e-4 here.
        let e = rel_err(model.layer_output(layer, 4).unwrap(), &want);
        assert!(e < 1e-3, "{act}: layer {layer} off by {e:e}");
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
            let got = &model.grads[ranges[i].clone()];
            let e = got.iter().zip(&want).map(|(g, w)| (*g as f64 - w).abs()).fold(0.0, f64::max) / scale;
            let bound = gradient_bound(act, layer);
            assert!(e < bound, "{act}: gradient of {} off by {e:e}", PARAMS[i].name());
        }
    }
}

/// 1e-3 (the fixtures README), except where f32 cannot resolve what the
/// float64 reference resolves, each case measured and explained:
fn gradient_bound(act: Activation, layer: usize) -> f64 {
    match (act, layer) {
        // Two pool1 windows have maxima tied in f32 (sample 1, channel 1:
        // 0.5683607 twice; sample 0, channel 7: 9e-8 apart) but distinct in
        // float64, so f32 routes those gradients to a neighbouring pixel.
        // That moves conv2's kernel gradient in two output channels and,
        // through them, conv1's. Measured: 2.3e-2 (conv2), 8.6e-3 (conv1).
        (Activation::ZeroFitLinear, 0 | 1) => 3e-2,
        // signed_sqrt's slope 1/(2·sqrt|x|) is ~450 at a conv1
        // pre-activation of −1.23e-6, which a 27-term f32 dot product of
        // values near 0.5 resolves only to ~2 % (f64: −1.206e-6); such
        // elements dominate the kernel gradients of conv1..conv3.
        // Measured: 1.5e-2 .. 3.0e-2 there; conv4 and dense within 8e-4.
        (Activation::SignedSqrt, 0..=2) => 4e-2,
        _ => 1e-3,
    }
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
    let Case { mut model, labels } = setup(Activation::Relu);
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
