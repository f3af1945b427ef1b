//! The GPU's activation kernels are generated CUDA C. Without a GPU they are
//! still checked: the same source, with a few lines standing in for CUDA's
//! thread indices, is compiled by the host C++ compiler (no contraction into
//! FMAs, as NVRTC is told) and must reproduce the CPU kernels bit for bit on
//! every built-in and on expression-defined functions, straight-through and
//! layer-wise ones included.

use actlab::activation::kernels::{backward, forward_eval, forward_train, Groups, Saved};
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

/// Inputs with the awkward cases: ±0, tiny and subnormal values, large
/// magnitudes, and a tie for the minimum in some groups.
fn inputs(g: Groups) -> (Vec<f32>, Vec<f32>) {
    let mut x: Vec<f32> = (0..g.len()).map(|i| ((i * 7919 % 1201) as f32 - 600.0) / 24.0).collect();
    let specials = [0.0, -0.0, 1e-7, -1e-7, 1e-40, -1e-40, 3e-5, 88.5, -95.0, 1.0, -1.0, 0.5];
    for (k, v) in specials.iter().enumerate() {
        x[k * 13 + 1] = *v;
    }
    // A tie for the minimum of (sample 1, channel 2).
    let (ps, c) = (g.per_sample(), g.channels);
    x[ps + 3 * c + 2] = -40.0;
    x[ps + 7 * c + 2] = -40.0;
    let dy = (0..g.len()).map(|i| ((i * 4001 % 977) as f32 - 488.0) / 300.0).collect();
    (x, dy)
}

fn floats(v: &[f32]) -> String {
    v.iter().map(|f| format!("actlab_f32(0x{:08x}u)", f.to_bits())).collect::<Vec<_>>().join(",")
}

#[test]
fn generated_kernels_match_the_cpu_bit_for_bit() {
    let acts = functions();
    let g = Groups { samples: 3, spatial: 40, channels: 5 };
    let n = g.len();
    let (x, dy) = inputs(g);

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
        let mut saved = Saved::with_capacity(*a, g);
        let (mut y, mut ye, mut dx, mut scratch) = (vec![0.0; n], vec![0.0; n], vec![0.0; n], Vec::new());
        forward_eval(*a, g, &x, &mut ye, &mut scratch);
        forward_train(*a, g, &x, &mut y, &mut saved);
        backward(*a, g, &x, &dy, &saved, &mut dx);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
        let mut checks = vec![("ye", bits(&ye)), ("y", bits(&y)), ("dydx", bits(&saved.dydx)), ("dx", bits(&dx))];
        if a.uses_min() {
            checks.push(("dydm", bits(&saved.dydm)));
            checks.push(("mins", bits(&saved.mins)));
        }
        for (what, cpu) in checks {
            let gpu = dumped(i, what);
            let first = cpu.iter().zip(&gpu).position(|(c, g)| c != g);
            assert!(first.is_none() && cpu.len() == gpu.len(), "{a} {what}: generated code differs at element {first:?} (x = {:e}): CPU {:e}, generated {:e}", x[first.unwrap_or(0)], f32::from_bits(cpu[first.unwrap_or(0)]), f32::from_bits(gpu[first.unwrap_or(0)]));
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
