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

/// softplus and its slope across the whole f32 range, against the generated
/// C. The C is a second writing of `engine::math` (scalar, every case of exp
/// and ln handled as first written), so a change to the CPU's arithmetic
/// that moves a bit of these functions anywhere shows here, not only at the
/// few hundred values above: every 2,053rd bit pattern (about 2.1 million
/// values: both signs, subnormals, ±∞ and NaNs) and the edges of the
/// exponential's range.
#[test]
fn softplus_matches_the_generated_c_across_the_f32_range() {
    use actlab::activation::kernels::{forward_train, Saved};
    use actlab::engine::launch::{Arg, Device, DeviceVec};
    let def = |name: &str, expr: &str| define(name, &Definition { expr: expr.into(), grad: None }).unwrap();
    let acts = [Activation::SoftplusLinear, def("cg_softplus", "softplus(x)")];
    let dev = Emulated::build(&cuda::program(&acts), Gemm::Loop).unwrap();
    let mut x: Vec<f32> = (0..=u32::MAX).step_by(2053).map(f32::from_bits).collect();
    for edge in [0.0f32, -0.0, f32::INFINITY, f32::NEG_INFINITY, -745.0, -745.2, -1000.0 * std::f32::consts::LN_2, -103.97, -87.3, -11.5, 1e-5f32.ln(), 709.0, 710.0] {
        x.extend([edge, -edge, edge.next_up(), edge.next_down()]);
    }
    let n = x.len();
    let g = Groups { samples: 1, spatial: n, channels: 1 };
    let x_d = DeviceVec::from_slice(&dev, &x).unwrap();
    for (i, &act) in acts.iter().enumerate() {
        let [mins, y_d, dydx_d, dydm] = [1, n, n, n].map(|len| DeviceVec::<Emulated, f32>::zeros(&dev, len).unwrap());
        let args = [x_d.arg(), mins.arg(), y_d.arg(), dydx_d.arg(), dydm.arg(), Arg::I64(n as i64), Arg::I32(n as i32), Arg::I32(1)];
        dev.launch(&format!("act{i}_forward_train"), [120, 1, 1], 256, &args).unwrap();
        let (mut y, mut saved) = (vec![0.0; n], Saved::with_capacity(act, g));
        forward_train(act, g, &x, &mut y, &mut saved);
        for (what, cpu, c) in [("value", &y, y_d.read(&dev, 0, n).unwrap()), ("slope", &saved.dydx, dydx_d.read(&dev, 0, n).unwrap())] {
            // A NaN is a NaN: its payload is not part of the arithmetic.
            let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
            if let Some(k) = (0..n).find(|&k| !same(cpu[k], c[k])) {
                panic!("{act} {what} at x = {:e} ({:#010x}): CPU {:e}, C {:e}", x[k], x[k].to_bits(), cpu[k], c[k]);
            }
        }
    }
}
