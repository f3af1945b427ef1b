//! Functions defined by expressions: same results as the built-ins they
//! restate, gradients that pass finite differences, straight-through slopes,
//! and rejection of functions that are not defined everywhere.

use actlab::activation::{define, kernels, Activation, Definition};
use actlab::nn::arch::{Architecture, Role};
use actlab::nn::model::{Model, PARAMS, param_ranges};

fn def(expr: &str, grad: Option<&str>) -> Definition {
    Definition { expr: expr.into(), grad: grad.map(String::from) }
}

/// A batch of four noise images with Glorot-initialised parameters and
/// small non-zero biases, for `act`: the same for every function, and
/// needing nothing beside the repository.
fn model(act: Activation) -> (Model, Vec<u8>) {
    let mut m = Model::new(Architecture::Article, act, 4);
    m.init_glorot(&actlab::engine::rng::Rng::new(7));
    for (spec, range) in PARAMS.iter().zip(param_ranges()) {
        if spec.role == Role::Bias {
            for (k, v) in m.params[range].iter_mut().enumerate() {
                *v = 0.01 * ((k % 7) as f32 - 3.0);
            }
        }
    }
    m.load_images(&crate::common::noise(11, 4 * 32 * 32 * 3));
    (m, vec![0, 3, 7, 9])
}

#[test]
fn restated_builtins_train_bit_for_bit_alike() {
    for (b, src) in [(Activation::Relu, "where(x <= 0, 0, x)"), (Activation::ZeroFitLinear, "x - min_spatial(x)"), (Activation::SoftplusLinear, "where(x <= 0, 2*softplus(x), x + 2*softplus(0))")] {
        let e = define(&format!("{}_as_expr", b.name()), &def(src, None)).unwrap();
        let (mut mb, labels) = model(b);
        let (mut me, _) = model(e);
        let lb = mb.loss_and_grads(4, &labels, None);
        let le = me.loss_and_grads(4, &labels, None);
        assert_eq!(lb, le, "{src}");
        assert!(mb.grads.iter().zip(&me.grads).all(|(a, c)| a.to_bits() == c.to_bits()), "{src}: gradients differ");
    }
}

#[test]
fn network_gradient_of_an_expression_passes_finite_differences() {
    let swish = define("swish_fd_test", &def("x * sigmoid(x)", None)).unwrap();
    let (mut m, labels) = model(swish);
    m.loss_and_grads(4, &labels, None);
    let grads = m.grads.clone();
    let base = m.params.clone();
    let ranges = actlab::nn::model::param_ranges();
    // A few weights of conv1, conv3, dense1 and dense2.
    for (layer, k) in [(0, 5), (4, 1234), (8, 77_777), (10, 300)] {
        let i = ranges[layer].start + k;
        let h = 1e-2f32;
        let mut loss_at = |d: f32| {
            let mut p = base.clone();
            p[i] += d;
            m.params = p;
            let (mut fresh, _) = model(swish);
            fresh.params.clone_from(&m.params);
            fresh.evaluate(4, &labels).mean_loss()
        };
        let fd = (loss_at(h) - loss_at(-h)) / (2.0 * h as f64);
        let g = grads[i] as f64;
        assert!((g - fd).abs() < 2e-3 + 2e-2 * fd.abs(), "param {i}: backprop {g} vs finite difference {fd}");
    }
}

#[test]
fn straight_through_uses_the_given_slope() {
    let ste = define("ste_test", &def("max(x, 0)", Some("1"))).unwrap();
    let g = kernels::Groups { samples: 1, spatial: 4, channels: 2 };
    let x = [-2.0f32, 1.0, -0.5, 3.0, 0.0, -1.0, 2.0, -3.0];
    let mut y = [0.0; 8];
    let mut saved = kernels::Saved::with_capacity(ste, g);
    kernels::forward_train(ste, g, &x, &mut y, &mut saved);
    assert_eq!(y, x.map(|v| v.max(0.0)));
    assert!(saved.dydx.iter().all(|&d| d == 1.0), "{:?}", saved.dydx);
    let dy = [0.5f32; 8];
    let mut dx = [0.0; 8];
    kernels::backward(ste, g, &x, &dy, &saved, &mut dx);
    assert_eq!(dx, dy);
    // The chart shows the slope training uses.
    assert!(kernels::curve(ste, &[-1.0], 0.0).iter().all(|p| p.2 == 1.0));
    assert_eq!(ste.definition().unwrap().grad.as_deref(), Some("1"));
}

#[test]
fn undefined_or_clashing_functions_are_rejected() {
    let e = define("bad_sqrt", &def("sqrt(x)", None)).unwrap_err();
    assert!(e.contains("NaN") && e.contains("x = -10"), "{e}");
    let e = define("bad_log", &def("log(x + 1)", None)).unwrap_err();
    assert!(e.contains("bad_log"), "{e}");
    let e = define("relu", &def("x", None)).unwrap_err();
    assert!(e.contains("built-in"), "{e}");
    let e = define("typo", &def("where(x <= 0, 0 x)", None)).unwrap_err();
    assert!(e.contains("column 17") && e.contains('^'), "{e}");
    define("twice", &def("x", None)).unwrap();
    assert!(define("twice", &def("2*x", None)).is_err());
    assert_eq!(define("twice", &def("x", None)).unwrap(), Activation::from_name("twice").unwrap());
}

#[test]
fn the_zero_slope_study_defines_its_functions() {
    let s = actlab::study::Study::load(&format!("{}/studies/zero-slope.toml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let names: Vec<_> = s.functions.iter().map(|f| f.activation.name()).collect();
    assert_eq!(names, ["relu", "relu_straight_through", "linear_relu_grad", "leaky_relu_0.3", "leaky_relu_0.1", "leaky_relu_0.01", "identity"]);
    assert!(s.functions.iter().all(|f| f.prediction.is_some()));
    let lrg = Activation::from_name("linear_relu_grad").unwrap();
    let pts = kernels::curve(lrg, &[-1.0, 1.0], 0.0);
    assert_eq!((pts[0].1, pts[0].2, pts[1].2), (-1.0, 0.0, 1.0));
    let cfg = s.config(&s.grid()[6], &s.protocol); // function-major: linear_relu_grad, seed 1
    assert_eq!(cfg.definition.as_ref().unwrap().expr, "x");
    let json = serde_json::to_string(&cfg).unwrap();
    assert!(json.contains("\"activation\":\"linear_relu_grad\""), "{json}");
}

#[test]
fn cli_trains_a_defined_function_and_records_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, _, _) = crate::common::write_official_dir(&tmp.path().join("src"), 20, 20);
    let out = crate::common::actlab_command(tmp.path())
        .args(["train", "--define", "ste=max(x,0);1", "--act", "ste", "--epochs", "1", "--data", src.to_str().unwrap(), "--data-dir"])
        .arg(tmp.path().join("data"))
        .arg("--out")
        .arg(tmp.path().join("run"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(tmp.path().join("run/run.json")).unwrap()).unwrap();
    assert_eq!(rec["config"]["activation"], "ste");
    assert_eq!(rec["config"]["definition"]["grad"], "1");
    // The engine's identity is the code the binary was built from, whatever
    // directory it runs in (this one is no git checkout): the last commit of
    // the code, or, built from changes not committed then, a commit of this
    // history followed by `+modified`.
    let git = |args: &[&str]| std::process::Command::new("git").args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().ok().filter(|o| o.status.success());
    // (None outside a checkout, or in a shallow one whose commits leave the code alone.)
    let log: Vec<&str> = ["log", "-1", "--format=%H", "--"].into_iter().chain(env!("ACTLAB_CODE_PATHS").split(' ')).collect();
    let last = git(&log).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).filter(|c| !c.is_empty());
    if let Some(last) = last {
        let commit = rec["engine"]["git_commit"].as_str().unwrap_or_else(|| panic!("no commit recorded: {}", rec["engine"]));
        match commit.strip_suffix("+modified") {
            Some(base) => assert!(git(&["merge-base", "--is-ancestor", base, "HEAD"]).is_some(), "recorded {commit}: not a commit of this history"),
            None => assert_eq!(commit, last, "the code's last commit"),
        }
    }
    let bad = crate::common::actlab(&["train", "--define", "q=sqrt(x)", "--act", "q"], tmp.path());
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("NaN"));
}
