//! actlab against an independent float64 reference: another framework's
//! forward pass, backward pass and first Adam step on the article's network.
//!
//! By default the reference is `tests/reference/reference.json`, which
//! `scripts/reference.py` writes with PyTorch: inputs and parameters come
//! from a formula both sides compute, and the file holds the loss, the
//! logits and a sample of every layer output and gradient, with each
//! tensor's largest magnitude and norm. `ACTLAB_FIXTURES` names another
//! reference instead: a file of that kind (`scripts/reference.py --seed N`
//! writes one for any seed), or a full directory in the `../shared/fixtures`
//! format (every element of every tensor; see that folder's README).
//! `tests/reference/reference-article-bn.json` (`scripts/reference.py
//! --network article-bn`) is the same for the network with batch
//! normalisation, checked the same way, its moving statistics included.

use actlab::activation::Activation;
use actlab::io::safetensors::SafeTensors;
use actlab::nn::optim::{Optimizer, OptimizerConfig, SgdConfig};
use actlab::nn::interop::{load_params, nchw_to_nhwc, to_actlab_layout};
use actlab::nn::arch::{Architecture, Init, Role};
use actlab::nn::model::{Model, CLASSES};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

/// splitmix64: the hash behind the reference's formula and the perturbations.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The reference formula's hash of element `i` of tensor `stream` (see
/// `scripts/reference.py`: 0 the input, 1.. the parameters, 255 the labels).
fn formula_hash(seed: u64, stream: u64, i: usize) -> u64 {
    splitmix64(seed << 40 | stream << 32 | i as u64)
}

/// One expected tensor in actlab's layout: the positions compared (every
/// element, or the reference's sample) and their values, with the whole
/// tensor's largest magnitude and L2 norm.
struct Expected {
    at: Vec<usize>,
    want: Vec<f64>,
    max_abs: f64,
    norm: f64,
}

/// For each flat index of a tensor in the reference's layout, its position
/// in actlab's: `to_actlab` applied to the indices themselves (exact in f32
/// for every tensor of this network, the largest having 2^20.2 elements).
fn positions(n: usize, to_actlab: impl Fn(&[f32]) -> Vec<f32>) -> Vec<usize> {
    let moved = to_actlab(&(0..n).map(|i| i as f32).collect::<Vec<_>>());
    let mut pos = vec![0; n];
    for (p, src) in moved.iter().enumerate() {
        pos[*src as usize] = p;
    }
    pos
}

/// How a tensor of the reference maps into actlab's layout.
#[derive(Clone, Copy)]
enum Layout {
    /// A layer output: NCHW → NHWC when 4-dimensional.
    Output,
    /// Parameter `i` of the network (or its gradient, or its Adam step).
    Param(Architecture, usize),
}

impl Layout {
    fn convert(self, shape: &[usize], v: &[f32]) -> Vec<f32> {
        match (self, shape) {
            (Layout::Output, [n, c, h, w]) => nchw_to_nhwc(v, *n, *c, *h, *w),
            (Layout::Output, _) => v.to_vec(),
            (Layout::Param(network, i), _) => to_actlab_layout(network, i, shape, v).unwrap(),
        }
    }
}

/// Where the reference values come from.
enum Reference {
    /// A full directory in the `../shared/fixtures` format: its files by name, read once.
    Directory(HashMap<String, SafeTensors>),
    /// `tests/reference/reference.json`, or another file of its kind.
    Compact(Value),
}

fn reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let path = std::env::var_os("ACTLAB_FIXTURES").map(PathBuf::from).unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/reference.json").into());
        if path.is_dir() {
            assert!(path.join("params.safetensors").exists(), "ACTLAB_FIXTURES={}: no params.safetensors there (a folder in the ../shared/fixtures format, a file written by scripts/reference.py, or unset for tests/reference/reference.json)", path.display());
            let files = std::fs::read_dir(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
                .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), SafeTensors::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e:#}", p.display()))))
                .collect();
            return Reference::Directory(files);
        }
        let p = path.display();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{p}: {e} (scripts/reference.py writes it; ACTLAB_FIXTURES may name another)"));
        Reference::Compact(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{p}: {e}")))
    })
}

/// `tests/reference/reference-article-bn.json`.
fn reference_bn() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/reference-article-bn.json");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e} (scripts/reference.py --network article-bn writes it)"));
        Reference::Compact(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}")))
    })
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
}

impl Reference {
    /// The network the reference describes (a full directory: the article's).
    fn network(&self) -> Architecture {
        match self {
            Reference::Directory(_) => Architecture::Article,
            Reference::Compact(j) => j["network"].as_str().map_or(Architecture::Article, |n| Architecture::from_name(n).unwrap_or_else(|| panic!("the reference is of an unknown network `{n}`"))),
        }
    }

    fn file<'a>(files: &'a HashMap<String, SafeTensors>, name: &str) -> &'a SafeTensors {
        files.get(name).unwrap_or_else(|| panic!("ACTLAB_FIXTURES has no {name}"))
    }

    /// A whole tensor `name` of file `file`, every element compared.
    fn full(files: &HashMap<String, SafeTensors>, file: &str, name: &str, layout: Layout) -> Expected {
        let t = Self::file(files, file).get(name).unwrap_or_else(|e| panic!("{file}: {e:#}"));
        let v = t.to_f64();
        let want: Vec<f64> = layout.convert(&t.shape, &v.iter().map(|&x| x as f32).collect::<Vec<_>>()).into_iter().map(f64::from).collect();
        let max_abs = want.iter().fold(0f64, |m, x| m.max(x.abs()));
        let norm = want.iter().map(|x| x * x).sum::<f64>().sqrt();
        Expected { at: (0..want.len()).collect(), want, max_abs, norm }
    }

    /// A sampled tensor of the compact reference.
    fn sampled(v: &Value, layout: Layout) -> Expected {
        let shape = usizes(&v["shape"]);
        let pos = positions(shape.iter().product(), |x| layout.convert(&shape, x));
        Expected {
            at: usizes(&v["at"]).into_iter().map(|i| pos[i]).collect(),
            want: f64s(&v["values"]),
            max_abs: v["max_abs"].as_f64().unwrap(),
            norm: v["norm"].as_f64().unwrap(),
        }
    }

    fn compact_act(j: &Value, act: Activation) -> &Value {
        let v = &j["activations"][act.name()];
        assert!(v.is_object(), "tests/reference/reference.json has no {act} (scripts/reference.py lists the functions)");
        v
    }

    /// The parameters and input in actlab's layout, and the labels (see [`inputs`]).
    fn compute_inputs(&self) -> (Vec<f32>, Vec<f32>, Vec<u8>) {
        match self {
            Reference::Directory(files) => {
                let st = Self::file(files, "params.safetensors");
                let input = st.get("input").unwrap();
                let s = &input.shape;
                let x = nchw_to_nhwc(input.as_f32().unwrap(), s[0], s[1], s[2], s[3]);
                let labels = st.get("labels").unwrap().to_f64().iter().map(|&v| v as u8).collect();
                (load_params(self.network(), st, "param.").unwrap(), x, labels)
            }
            Reference::Compact(j) => {
                let check = &j["formula_check"];
                let seed = j["seed"].as_u64().unwrap();
                let shape = usizes(&check["input"]["shape"]);
                let x: Vec<f32> = (0..shape.iter().product()).map(|i| (formula_hash(seed, 0, i) >> 40) as f32 / (1u32 << 24) as f32).collect();
                let mut tensors = vec![("input".to_string(), shape.clone(), x.clone())];
                let mut params = Vec::new();
                let network = self.network();
                for (i, spec) in network.plan().params.iter().enumerate() {
                    let shape = usizes(&check[format!("param.{}", spec.name())]["shape"]);
                    let (scale, offset) = match spec.init {
                        Init::Glorot { fan_in, fan_out } => ((6.0 / (fan_in + fan_out) as f64).sqrt(), 0.0),
                        Init::Zeros => (0.05, 0.0),
                        Init::Ones => (0.05, 1.0),
                    };
                    let v: Vec<f32> = (0..spec.len)
                        .map(|k| {
                            let u = (formula_hash(seed, i as u64 + 1, k) >> 11) as f64 / (1u64 << 53) as f64;
                            ((2.0 * u - 1.0) * scale + offset) as f32
                        })
                        .collect();
                    params.extend(to_actlab_layout(network, i, &shape, &v).unwrap());
                    tensors.push((format!("param.{}", spec.name()), shape, v));
                }
                // The formula must give what the reference computed with.
                for (name, _, v) in &tensors {
                    let c = &check[name.as_str()];
                    for (at, want) in usizes(&c["at"]).into_iter().zip(f64s(&c["values"])) {
                        assert_eq!(v[at] as f64, want, "{name}[{at}]: the formula here differs from scripts/reference.py's");
                    }
                }
                let batch = j["batch"].as_u64().unwrap() as usize;
                let labels: Vec<u8> = (0..batch).map(|i| (formula_hash(seed, 255, i) % CLASSES as u64) as u8).collect();
                assert_eq!(labels.iter().map(|&l| l as usize).collect::<Vec<_>>(), usizes(&j["labels"]), "labels: the formula here differs from scripts/reference.py's");
                let s = shape;
                (params, nchw_to_nhwc(&x, s[0], s[1], s[2], s[3]), labels)
            }
        }
    }

    fn loss(&self, act: Activation) -> f64 {
        match self {
            Reference::Directory(files) => Self::file(files, &format!("{}.safetensors", act.name())).get("expected.loss").unwrap().to_f64()[0],
            Reference::Compact(j) => Self::compact_act(j, act)["loss"].as_f64().unwrap(),
        }
    }

    fn logits(&self, act: Activation) -> Vec<f64> {
        match self {
            Reference::Directory(files) => Self::file(files, &format!("{}.safetensors", act.name())).get("expected.logits").unwrap().to_f64(),
            Reference::Compact(j) => f64s(&Self::compact_act(j, act)["logits"]),
        }
    }

    /// The output of `layer` (an activation or a pool).
    fn layer(&self, act: Activation, layer: &str) -> Expected {
        match self {
            Reference::Directory(files) => Self::full(files, &format!("{}.safetensors", act.name()), &format!("expected.layer.{layer}"), Layout::Output),
            Reference::Compact(j) => Self::sampled(&Self::compact_act(j, act)["layers"][layer], Layout::Output),
        }
    }

    /// d loss / d parameter `i`.
    fn grad(&self, act: Activation, i: usize) -> Expected {
        let network = self.network();
        let name = network.plan().params[i].name();
        match self {
            Reference::Directory(files) => Self::full(files, &format!("{}.safetensors", act.name()), &format!("expected.grad.{name}"), Layout::Param(network, i)),
            Reference::Compact(j) => Self::sampled(&Self::compact_act(j, act)["grads"][name.as_str()], Layout::Param(network, i)),
        }
    }

    /// Parameter `i`, a moving statistic, after the pass (the network with batch normalisation).
    fn moving(&self, act: Activation, i: usize) -> Expected {
        let network = self.network();
        let name = network.plan().params[i].name();
        match self {
            Reference::Directory(_) => panic!("a fixtures directory holds the article's network only"),
            Reference::Compact(j) => Self::sampled(&Self::compact_act(j, act)["moving"][name.as_str()], Layout::Param(network, i)),
        }
    }

    /// The change one Keras Adam step makes to parameter `i`, from relu's gradients.
    fn adam_step(&self, i: usize) -> Expected {
        let network = self.network();
        let name = network.plan().params[i].name();
        match self {
            Reference::Directory(files) => Self::full(files, "adam.safetensors", &format!("expected.adam1_delta.{name}"), Layout::Param(network, i)),
            Reference::Compact(j) => Self::sampled(&j["adam1_delta"][name.as_str()], Layout::Param(network, i)),
        }
    }
}

/// A reference's parameters, input images and labels.
type Inputs = (Vec<f32>, Vec<f32>, Vec<u8>);

/// A reference's parameters, input and labels, computed (or read) once.
fn inputs(r: &'static Reference) -> &'static Inputs {
    static INPUTS: [OnceLock<Inputs>; 2] = [OnceLock::new(), OnceLock::new()];
    INPUTS[std::ptr::eq(r, reference_bn()) as usize].get_or_init(|| r.compute_inputs())
}

struct Case {
    model: Model,
    labels: Vec<u8>,
}

/// The reference's parameters and input, each value moved by a
/// deterministic relative amount of at most [`PERTURBATION`] (draw 0: unmoved).
fn setup(r: &'static Reference, act: Activation, draw: u64) -> Case {
    let (params, input, labels) = inputs(r);
    let mut model = Model::new(r.network(), act, labels.len());
    model.params = perturbed(params, draw, 0);
    model.load_input(&perturbed(input, draw, 1));
    Case { model, labels: labels.clone() }
}

const LAYERS: [&str; 7] = ["conv1", "conv2", "pool1", "conv3", "conv4", "pool2", "dense1"];

/// What one f32 forward and backward pass on the reference's batch gives.
struct Pass {
    loss: f64,
    logits: Vec<f32>,
    layers: Vec<Vec<f32>>,
    grads: Vec<f32>,
    /// The parameters after the pass (batch normalisation moved its moving statistics).
    params: Vec<f32>,
}

/// One forward and backward pass on [`setup`]'s batch.
fn pass(r: &'static Reference, act: Activation, draw: u64) -> Pass {
    let Case { mut model, labels } = setup(r, act, draw);
    let n = labels.len();
    let loss = model.loss_and_grads(n, &labels, None).mean_loss();
    let layers = LAYERS.iter().map(|l| model.layer_output(l, n).unwrap().to_vec()).collect();
    Pass { loss, logits: model.logits(n).to_vec(), layers, grads: model.grads.clone(), params: model.params.clone() }
}

/// Relative size of the perturbations that measure conditioning: about the
/// rounding error f32 makes in the network's sums, √k units of 2^-24 for a
/// sum of k terms (k = 27 to 2304 here: 5 to 48 units); 16 units, 2^-20.
/// With 2^-24 itself, a near-tie in zero_fit's minimum that f32 breaks the
/// other way than f64 went unseen (../shared/fixtures, conv1 and conv2).
const PERTURBATION: f64 = 1.0 / (1u64 << 20) as f64;
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
            // Uniform in [−1, 1) from (draw, stream, index).
            let u = (splitmix64(draw << 40 ^ stream << 32 ^ i as u64) >> 11) as f64 / (1u64 << 52) as f64 - 1.0;
            (x as f64 * (1.0 + PERTURBATION * u)) as f32
        })
        .collect()
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt()
}

/// Compares one tensor: each compared element relative to `scale`, and the
/// tensor's norm relative to `norm_scale`. Each allowance follows from
/// conditioning: the largest change that perturbing the inputs and
/// parameters by [`PERTURBATION`] makes to that element (or to the norm)
/// — large where a slope is unbounded near 0 or a pool window or minimum
/// has a near-tie, small elsewhere — times [`SAFETY`], never below
/// [`TOLERANCE`]. So the bound holds for any reference set, and one
/// ill-conditioned element does not excuse the others.
fn compare(what: &str, x: &Expected, (scale, norm_scale): (f64, f64), got: &[f32], moved: &[&[f32]], out: &mut Vec<String>) {
    let allowance = |changes: &mut dyn Iterator<Item = f64>| (SAFETY * changes.fold(0.0, f64::max)).max(TOLERANCE);
    let scale = scale.max(1e-30);
    // The element that exceeds its allowance by the largest factor.
    let worst = x
        .at
        .iter()
        .zip(&x.want)
        .map(|(&p, w)| {
            let e = (got[p] as f64 - w).abs() / scale;
            let bound = allowance(&mut moved.iter().map(|m| (m[p] as f64 - got[p] as f64).abs() / scale));
            (e / bound, e, bound, p)
        })
        .fold((0.0, 0.0, 0.0, 0), |a, b| if b.0 > a.0 { b } else { a });
    if worst.0 > 1.0 {
        let (_, e, bound, p) = worst;
        out.push(format!("{what} off by {e:e} at element {p} (allowed {bound:e})"));
    }
    let norm_scale = norm_scale.max(1e-30);
    let got_norm = norm(got);
    let e = (got_norm - x.norm).abs() / norm_scale;
    let bound = allowance(&mut moved.iter().map(|m| (norm(m) - got_norm).abs() / norm_scale));
    if e > bound {
        out.push(format!("{what}: norm {got_norm} vs {} (allowed {bound:e} relative)", x.norm));
    }
}

/// Every way `got` differs from the float64 reference by more than f32 can explain.
fn mismatches(r: &'static Reference, act: Activation, got: &Pass, moved: &[Pass]) -> Vec<String> {
    let mut out = Vec::new();
    let output_allowance = |f: &dyn Fn(&Pass) -> f64| (SAFETY * moved.iter().map(f).fold(0.0, f64::max)).max(OUTPUT_TOLERANCE);

    let want_loss = r.loss(act);
    let e = (got.loss - want_loss).abs() / want_loss.abs();
    let bound = output_allowance(&|p| (p.loss - got.loss).abs() / want_loss.abs());
    if e > bound {
        out.push(format!("{act}: loss {} vs {want_loss} (allowed {bound:e} relative)", got.loss));
    }
    let want = r.logits(act);
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
    let spread = |a: &[f32]| a.iter().zip(&got.logits).map(|(x, y)| (*x as f64 - *y as f64).abs()).fold(0.0, f64::max) / scale;
    let e = got.logits.iter().zip(&want).map(|(x, y)| (*x as f64 - y).abs()).fold(0.0, f64::max) / scale;
    let bound = output_allowance(&|p| spread(&p.logits));
    if e > bound {
        out.push(format!("{act}: logits off by {e:e} (allowed {bound:e})"));
    }
    for (i, layer) in LAYERS.iter().enumerate() {
        let x = r.layer(act, layer);
        let moved: Vec<&[f32]> = moved.iter().map(|p| &p.layers[i][..]).collect();
        compare(&format!("{act}: layer {layer}"), &x, (x.max_abs, x.norm), &got.layers[i], &moved, &mut out);
    }
    let plan = r.network().plan();
    // The tensors of each layer (a weight and a bias; γ, β and the moving statistics).
    let mut layers: Vec<Vec<usize>> = Vec::new();
    for (i, spec) in plan.params.iter().enumerate() {
        match layers.last_mut() {
            Some(l) if plan.params[l[0]].layer == spec.layer => l.push(i),
            _ => layers.push(vec![i]),
        }
    }
    for tensors in layers {
        let expected: Vec<(usize, Expected)> = tensors.iter().map(|&i| (i, r.grad(act, i))).collect();
        // Relative to the layer's largest gradient and its norm: zero_fit's
        // bias gradients are exactly 0 in exact arithmetic (a bias shifts x
        // and its minimum alike), so their own size is rounding noise.
        let scales = expected.iter().fold((0f64, 0f64), |(m, n), (_, x)| (m.max(x.max_abs), n.hypot(x.norm)));
        for (i, x) in expected {
            let range = plan.ranges[i].clone();
            let moved: Vec<&[f32]> = moved.iter().map(|p| &p.grads[range.clone()]).collect();
            compare(&format!("{act}: gradient of {}", plan.params[i].name()), &x, scales, &got.grads[range], &moved, &mut out);
        }
    }
    // The moving statistics after the pass, each relative to its own size.
    for (i, spec) in plan.params.iter().enumerate().filter(|(_, s)| matches!(s.role, Role::MovingMean | Role::MovingVariance)) {
        let x = r.moving(act, i);
        let range = plan.ranges[i].clone();
        let moved: Vec<&[f32]> = moved.iter().map(|p| &p.params[range.clone()]).collect();
        compare(&format!("{act}: {} after the pass", spec.name()), &x, (x.max_abs, x.norm), &got.params[range], &moved, &mut out);
    }
    out
}

fn check_activation(r: &'static Reference, act: Activation) {
    let got = pass(r, act, 0);
    let moved: Vec<Pass> = (1..=DRAWS).map(|d| pass(r, act, d)).collect();
    let bad = mismatches(r, act, &got, &moved);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The bound derived from conditioning is no blanket: a doubled gradient,
/// and a training slope that differs from the function's, both fail.
#[test]
fn the_bound_still_catches_wrong_gradients() {
    // An engine that doubles dense1's kernel gradient, on every pass.
    let reference = reference();
    let plan = reference.network().plan();
    let r = plan.ranges[plan.params.iter().position(|p| p.name() == "dense1.weight").unwrap()].clone();
    let doubled = |d: u64| {
        let mut p = pass(reference, Activation::SignedSqrt, d);
        p.grads[r.clone()].iter_mut().for_each(|g| *g *= 2.0);
        p
    };
    let moved: Vec<Pass> = (1..=DRAWS).map(doubled).collect();
    let bad = mismatches(reference, Activation::SignedSqrt, &doubled(0), &moved);
    assert!(bad.iter().any(|m| m.contains("gradient of dense1.weight off")), "{bad:?}");
    assert!(bad.iter().any(|m| m.contains("gradient of dense1.weight: norm")), "{bad:?}");

    // relu forward, but a slope of 0.1 below 0 in training (as if leaky).
    let wrong = actlab::activation::define("relu_wrong_slope", &actlab::activation::Definition { expr: "max(x, 0)".into(), grad: Some("where(x <= 0, 0.1, 1)".into()) }).unwrap();
    let moved: Vec<Pass> = (1..=DRAWS).map(|d| pass(reference, wrong, d)).collect();
    let bad = mismatches(reference, Activation::Relu, &pass(reference, wrong, 0), &moved);
    assert!(bad.iter().any(|m| m.contains("gradient of")), "{bad:?}");
    assert!(!bad.iter().any(|m| m.contains("layer") || m.contains("logits")), "the forward pass is relu's: {bad:?}");
}

#[test]
fn relu_matches_reference() {
    check_activation(reference(), Activation::Relu);
}
#[test]
fn tanh_matches_reference() {
    check_activation(reference(), Activation::Tanh);
}
#[test]
fn signed_sqrt_matches_reference() {
    check_activation(reference(), Activation::SignedSqrt);
}
#[test]
fn softplus_linear_matches_reference() {
    check_activation(reference(), Activation::SoftplusLinear);
}
#[test]
fn reflection_linear_matches_reference() {
    check_activation(reference(), Activation::ReflectionLinear);
}
#[test]
fn zero_fit_linear_matches_reference() {
    check_activation(reference(), Activation::ZeroFitLinear);
}

/// The network with batch normalisation (training: the batch's
/// statistics), its gradients and its moving statistics after the pass.
#[test]
fn batch_norm_network_matches_reference() {
    for act in [Activation::Relu, Activation::SoftplusLinear, Activation::ZeroFitLinear] {
        check_activation(reference_bn(), act);
    }
}

#[test]
fn adam_first_step_matches_reference() {
    let r = reference();
    let Case { mut model, labels } = setup(r, Activation::Relu, 0);
    model.loss_and_grads(labels.len(), &labels, None);
    let before = model.params.clone();
    let plan = model.plan();
    let mut adam = Optimizer::new(OptimizerConfig::ARTICLE, model.params.len());
    adam.step(&mut model.params, &model.grads);
    for (i, (spec, range)) in plan.params.iter().zip(plan.ranges.clone()).enumerate() {
        let x = r.adam_step(i);
        let delta: Vec<f64> = range.map(|j| (model.params[j] - before[j]) as f64).collect();
        let e = x.at.iter().zip(&x.want).map(|(&p, w)| (delta[p] - w).abs()).fold(0.0, f64::max) / x.max_abs;
        assert!(e < 1e-3, "adam step of {} off by {e:e}", spec.name());
    }
}

/// Two steps of Keras' SGD with momentum on relu's gradients (the same
/// gradients twice, so the second step carries the first's velocity): the
/// parameters move by −lr·(2 + momentum)·g, with g the float64 reference's.
#[test]
fn sgd_steps_with_momentum_match_reference() {
    let r = reference();
    let Case { mut model, labels } = setup(r, Activation::Relu, 0);
    model.loss_and_grads(labels.len(), &labels, None);
    let before = model.params.clone();
    let plan = model.plan();
    let c = SgdConfig { learning_rate: 0.01, momentum: 0.9 };
    let mut sgd = Optimizer::new(OptimizerConfig::Sgd(c), model.params.len());
    sgd.step(&mut model.params, &model.grads);
    sgd.step(&mut model.params, &model.grads);
    let scale = -(c.learning_rate as f64) * (2.0 + c.momentum as f64);
    for (i, (spec, range)) in plan.params.iter().zip(plan.ranges.clone()).enumerate() {
        let g = r.grad(Activation::Relu, i);
        let delta: Vec<f64> = range.map(|j| (model.params[j] - before[j]) as f64).collect();
        let e = g.at.iter().zip(&g.want).map(|(&p, w)| (delta[p] - scale * w).abs()).fold(0.0, f64::max) / (g.max_abs * scale.abs());
        assert!(e < 1e-3, "SGD steps of {} off by {e:e} of the largest", spec.name());
    }
}
