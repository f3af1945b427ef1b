//! The GPU's activation kernels are generated CUDA C. Without a GPU they are
//! still checked: the same source, with a few lines standing in for CUDA's
//! thread indices, is compiled by the host C++ compiler (no contraction into
//! FMAs, as NVRTC is told) and must reproduce the CPU kernels bit for bit on
//! every built-in and on expression-defined functions, straight-through and
//! layer-wise ones included.

use crate::emulator;

use actlab::activation::kernels::Groups;
use actlab::activation::{cuda, define, Activation, Definition};
use emulator::{Emulated, Gemm};

fn functions() -> Vec<Activation> {
    let def = |name: &str, expr: &str, grad: Option<&str>| define(name, &Definition { expr: expr.into(), grad: grad.map(String::from) }).unwrap();
    let mut acts = Activation::ALL.to_vec();
    acts.push(def("cg_relu_straight_through", "max(x, 0)", Some("1")));
    acts.push(def("cg_linear_relu_grad", "x", Some("where(x > 0, 1, 0)")));
    acts.push(def("cg_leaky", "where(x <= 0, 0.1*x, x)", None));
    acts.push(def("cg_everything", "0.5*tanh(x) + sigmoid(x)*softplus(x) - log(1 + x^2) + sqrt(abs(x) + 1) + exp(-abs(x)/3) * ln2 + min(x, 1) - max(x, -2)", None));
    acts.push(def("cg_zero_fit_tanh", "x - min_spatial(x) + 0.1*tanh(x)", None));
    acts
}

/// The same check `actlab device-check` runs on a GPU, on the host emulator.
#[test]
fn generated_kernels_match_the_cpu_bit_for_bit() {
    let acts = functions();
    let dev = Emulated::build(&cuda::program(&acts), Gemm::Loop).unwrap();
    let c = cuda::check_kernels(&dev, &acts, Groups { samples: 3, spatial: 40, channels: 5 }).unwrap();
    assert!(c.differences.is_empty(), "{}", c.differences.join("\n"));
    assert!(c.rerun_identical);
    assert_eq!(c.functions.len(), acts.len());
}

#[test]
fn each_function_gets_its_own_fused_kernel() {
    let a = define("cg_source_check", &Definition { expr: "where(x <= 0, 0.3*x, x)".into(), grad: None }).unwrap();
    let src = cuda::kernel_source(a, "k");
    for name in ["k_group_mins", "k_forward_eval", "k_forward_train", "k_backward"] {
        assert!(src.contains(&format!("extern \"C\" __global__ void {name}(")), "{name}");
    }
    // The constant 0.3 appears by its exact f32 bits, and the comparison as written.
    assert!(src.contains(&format!("0x{:08x}u", 0.3f32.to_bits())) && src.contains("<="));
    // A function without the layer-wise minimum never touches mins or dydm.
    assert!(!src.contains("dydm[i] = dm") && src.contains("float m = 0.0f;"));
}
