//! The GPU's activation kernels are generated CUDA C. Without a GPU they are
//! still checked: the same source, with a few lines standing in for CUDA's
//! thread indices, is compiled by the host C++ compiler (no contraction into
//! FMAs, as NVRTC is told) and must reproduce the CPU kernels bit for bit on
//! every built-in and on expression-defined functions, straight-through and
//! layer-wise ones included.

use actlab::activation::kernels::Groups;
use actlab::activation::{cuda, define, Activation, Definition};
use std::fmt::Write as _;
use std::process::Command;

/// Emulates a CUDA launch on the host: every (block, thread) runs in turn.
/// Valid because the kernels share nothing between threads.
const SHIM: &str = r#"
#include <stdio.h>
struct actlab_dim3 { unsigned x, y, z; };
static actlab_dim3 blockIdx, threadIdx, blockDim, gridDim;
#define __global__
#define LAUNCH(grid, block, call) do { gridDim.x = grid; blockDim.x = block; \
    for (blockIdx.x = 0; blockIdx.x < grid; blockIdx.x++) \
        for (threadIdx.x = 0; threadIdx.x < block; threadIdx.x++) call; } while (0)
"#;

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

fn floats(v: &[f32]) -> String {
    v.iter().map(|f| format!("actlab_f32(0x{:08x}u)", f.to_bits())).collect::<Vec<_>>().join(",")
}

#[test]
fn generated_kernels_match_the_cpu_bit_for_bit() {
    let acts = functions();
    let g = Groups { samples: 3, spatial: 40, channels: 5 };
    let n = g.len();
    let (x, dy) = cuda::check_inputs(g);

    // One program: every activation's kernels, run on the same inputs.
    let mut src = String::from(SHIM);
    src.push_str(&cuda::program(&acts));
    let _ = writeln!(src, "\nstatic void dump(const char* what, const float* v, long long n) {{ printf(\"%s\", what); for (long long i = 0; i < n; i++) {{ unsigned b; memcpy(&b, &v[i], 4); printf(\" %08x\", b); }} printf(\"\\n\"); }}");
    let _ = writeln!(src, "int main(void) {{\n    static const float x[{n}] = {{{}}};\n    static const float dy[{n}] = {{{}}};", floats(&x), floats(&dy));
    let _ = writeln!(src, "    static float mins[{}], y[{n}], ye[{n}], dydx[{n}], dydm[{n}], dx[{n}];", g.samples * g.channels);
    let (s, sp, c) = (g.samples, g.spatial, g.channels);
    for (i, a) in acts.iter().enumerate() {
        let lw = a.uses_min();
        let (mins, dydm) = if lw { ("mins", "dydm") } else { ("0", "0") };
        let _ = writeln!(src, "    memset(mins, 0, sizeof mins); memset(dydm, 0, sizeof dydm);");
        if lw {
            let _ = writeln!(src, "    LAUNCH(2, 4, act{i}_group_mins(x, mins, {s}, {sp}, {c}));");
        }
        let _ = writeln!(src, "    LAUNCH(3, 32, act{i}_forward_eval(x, {mins}, ye, {n}, {sp}, {c}));");
        let _ = writeln!(src, "    LAUNCH(2, 64, act{i}_forward_train(x, {mins}, y, dydx, {dydm}, {n}, {sp}, {c}));");
        let _ = writeln!(src, "    LAUNCH(2, 4, act{i}_backward(x, dy, dydx, {dydm}, {mins}, dx, {s}, {sp}, {c}));");
        for v in ["ye", "y", "dydx", "dydm", "dx"] {
            let _ = writeln!(src, "    dump(\"{i} {v}\", {v}, {n});");
        }
        let _ = writeln!(src, "    dump(\"{i} mins\", mins, {});", s * c);
    }
    src.push_str("    return 0;\n}\n");

    let dir = tempfile::tempdir().unwrap();
    let (cpp, exe) = (dir.path().join("kernels.cpp"), dir.path().join("kernels"));
    std::fs::write(&cpp, &src).unwrap();
    let cc = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let out = Command::new(&cc)
        .args(["-O2", "-std=c++17", "-ffp-contract=off", "-fno-fast-math", "-Wall", "-Wno-unused-function", "-o"])
        .arg(&exe)
        .arg(&cpp)
        .output()
        .unwrap_or_else(|e| panic!("this test compiles generated kernels with the host C++ compiler `{cc}` (set CXX): {e}"));
    assert!(out.status.success(), "generated source does not compile:\n{}", String::from_utf8_lossy(&out.stderr));
    let run = Command::new(&exe).output().unwrap();
    assert!(run.status.success());
    let stdout = String::from_utf8(run.stdout).unwrap();
    let dumped = |i: usize, what: &str| -> Vec<u32> {
        let line = stdout.lines().find(|l| l.starts_with(&format!("{i} {what} "))).unwrap_or_else(|| panic!("no {what} for {i}"));
        line.split(' ').skip(2).map(|h| u32::from_str_radix(h, 16).unwrap()).collect()
    };

    for (i, a) in acts.iter().enumerate() {
        for (what, cpu) in cuda::cpu_reference(*a, g, &x, &dy) {
            if let Some(d) = cuda::first_difference(*a, what, &x, &cpu, &dumped(i, what), "generated code") {
                panic!("{d}");
            }
        }
    }
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
