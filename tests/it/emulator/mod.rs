//! A stand-in GPU for machines without one: the engine's CUDA C, compiled by
//! the host C++ compiler (no FMA contraction, as NVRTC is told) into a shared
//! library, behind the same `Device` interface as CUDA.
//!
//! Each kernel gets a launcher that checks the argument list against the
//! kernel's signature (count and kind of every argument) and then runs the
//! grid: block by block, thread by thread, in turn. Kernels that share memory
//! within a block (the GEMMs) run a block's threads as OS threads meeting at
//! `__syncthreads`; that is slow, so a whole training step can instead serve
//! GEMM launches with a plain loop of the same arithmetic (one FMA chain per
//! output, k ascending), once the real kernel is checked on its own.

#![allow(dead_code)]

use actlab::engine::launch::{Arg, Device};
use anyhow::{anyhow, bail, Context, Result};
use std::cell::Cell;
use std::ffi::c_void;
use std::fmt::Write as _;
use std::process::Command;

const SHIM: &str = r#"
#include <math.h>
#include <string.h>
#include <thread>
#include <barrier>
#include <vector>
struct actlab_dim3 { unsigned x, y, z; };
static thread_local actlab_dim3 blockIdx, threadIdx;
static actlab_dim3 blockDim, gridDim;
static std::barrier<>* actlab_barrier;
#define __global__
#define __device__
#define __shared__ static
static void __syncthreads() { actlab_barrier->arrive_and_wait(); }
template <class F> static void actlab_serial(unsigned gx, unsigned gy, unsigned gz, unsigned block, F f) {
    gridDim = {gx, gy, gz}; blockDim = {block, 1, 1};
    for (unsigned z = 0; z < gz; z++) for (unsigned y = 0; y < gy; y++) for (unsigned x = 0; x < gx; x++)
        for (unsigned t = 0; t < block; t++) { blockIdx = {x, y, z}; threadIdx = {t, 0, 0}; f(); }
}
template <class F> static void actlab_threaded(unsigned gx, unsigned gy, unsigned gz, unsigned block, F f) {
    gridDim = {gx, gy, gz}; blockDim = {block, 1, 1};
    std::barrier<> bar(block);
    actlab_barrier = &bar;
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < block; t++)
        threads.emplace_back([&, t] {
            threadIdx = {t, 0, 0};
            for (unsigned z = 0; z < gz; z++) for (unsigned y = 0; y < gy; y++) for (unsigned x = 0; x < gx; x++) {
                blockIdx = {x, y, z};
                f();
                bar.arrive_and_wait();
            }
        });
    for (auto& t : threads) t.join();
}
"#;

/// The GEMM's arithmetic as a plain loop, for whole-step emulation.
const GEMM_LOOP: &str = r#"
static void actlab_gemm_loop(unsigned runs, int m, int n, int k, const float* A, long long a_rs, long long a_cs, long long a_run,
                             const float* B, long long b_rs, long long b_cs, long long b_run, float* C, long long ldc, long long c_run, int accumulate,
                             float* ones) {
    for (unsigned r = 0; r < runs; r++) {
        for (long long i = 0; i < m; i++)
            for (long long j = 0; j < n; j++) {
                float acc = accumulate ? C[r * c_run + i * ldc + j] : 0.0f;
                for (long long kk = 0; kk < k; kk++) acc = fmaf(A[r * a_run + i * a_rs + kk * a_cs], B[r * b_run + kk * b_rs + j * b_cs], acc);
                C[r * c_run + i * ldc + j] = acc;
            }
        if (ones)
            for (long long j = 0; j < n; j++) {
                float acc = 0.0f;
                for (long long kk = 0; kk < k; kk++) acc += B[r * b_run + kk * b_rs + j * b_cs];
                ones[r * c_run + j] = acc;
            }
    }
}
"#;

/// How GEMM launches run.
#[derive(Clone, Copy, PartialEq)]
pub enum Gemm {
    /// The real kernels, threads and barriers emulated (small sizes only).
    Kernel,
    /// The same arithmetic as a loop (whole training steps).
    Loop,
}

/// The kind of a parameter, as a letter: pointer, int, long long, unsigned long long, double, float.
fn kind(ty: &str) -> char {
    if ty.contains('*') {
        'p'
    } else if ty.contains("unsigned long long") {
        'u'
    } else if ty.contains("long long") {
        'l'
    } else if ty.contains("double") {
        'd'
    } else if ty.contains("float") {
        'f'
    } else if ty.contains("int") {
        'i'
    } else {
        panic!("emulator: parameter type `{ty}` is not supported")
    }
}

/// Every `extern "C" __global__` kernel of `src`: (name, [(type, name)]).
fn kernels(src: &str) -> Vec<(String, Vec<(String, String)>)> {
    let marker = "extern \"C\" __global__ void ";
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(at) = rest.find(marker) {
        rest = &rest[at + marker.len()..];
        let open = rest.find('(').unwrap();
        let close = rest.find(')').unwrap();
        let name = rest[..open].trim().to_string();
        let params = rest[open + 1..close]
            .split(',')
            .map(|p| {
                let p = p.trim();
                let split = p.rfind(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap() + 1;
                (p[..split].trim().to_string(), p[split..].to_string())
            })
            .collect();
        out.push((name, params));
    }
    out
}

/// The launchers: `int launch_<kernel>(gx, gy, gz, block, kinds, args)`,
/// returning 1 when the argument kinds differ from the signature.
fn launchers(src: &str, gemm: Gemm) -> String {
    let mut w = String::new();
    for (name, params) in kernels(src) {
        let kinds: String = params.iter().map(|(t, _)| kind(t)).collect();
        let args: Vec<String> = params.iter().enumerate().map(|(i, (t, _))| format!("*({t}*)a[{i}]")).collect();
        let args = args.join(", ");
        let body = if name.starts_with("gemm") {
            match gemm {
                Gemm::Kernel => format!("actlab_threaded(gx, gy, gz, block, [&] {{ {name}({args}); }});"),
                Gemm::Loop => format!("actlab_gemm_loop(gz, {args});"),
            }
        } else {
            format!("actlab_serial(gx, gy, gz, block, [&] {{ {name}({args}); }});")
        };
        let _ = writeln!(
            w,
            "extern \"C\" int launch_{name}(unsigned gx, unsigned gy, unsigned gz, unsigned block, const char* kinds, void** a) {{\n    \
             if (strcmp(kinds, \"{kinds}\") != 0) return 1;\n    {body}\n    return 0;\n}}"
        );
    }
    w
}

pub struct Emulated {
    lib: libloading::Library,
    /// Kernel name -> argument kinds.
    signatures: std::collections::HashMap<String, String>,
    _dir: tempfile::TempDir,
}

/// Device memory: host memory the kernels write through raw pointers.
pub struct HostBuf(Box<[Cell<u64>]>);

impl HostBuf {
    fn ptr(&self) -> *mut u8 {
        self.0.as_ptr() as *mut u8
    }
}

impl Emulated {
    /// Compile `program` for the host.
    pub fn build(program: &str, gemm: Gemm) -> Result<Emulated> {
        let mut src = String::from(SHIM);
        src.push_str(GEMM_LOOP);
        src.push_str(program);
        src.push('\n');
        src.push_str(&launchers(program, gemm));
        let dir = tempfile::tempdir()?;
        let (cpp, lib) = (dir.path().join("program.cpp"), dir.path().join("libprogram.so"));
        std::fs::write(&cpp, &src)?;
        let cc = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
        let out = Command::new(&cc)
            .args(["-O2", "-std=c++20", "-shared", "-fPIC", "-pthread", "-ffp-contract=off", "-fno-fast-math", "-w", "-o"])
            .arg(&lib)
            .arg(&cpp)
            .output()
            .with_context(|| format!("the GPU emulator compiles CUDA C with the host C++ compiler `{cc}` (set CXX)"))?;
        if !out.status.success() {
            bail!("the GPU program does not compile for the host:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        // SAFETY: a library we just built, with no initialisers of note.
        let lib = unsafe { libloading::Library::new(&lib) }?;
        let signatures = kernels(program).into_iter().map(|(name, params)| (name, params.iter().map(|(t, _)| kind(t)).collect())).collect();
        Ok(Emulated { lib, signatures, _dir: dir })
    }
}

type Launcher = unsafe extern "C" fn(u32, u32, u32, u32, *const u8, *mut *mut c_void) -> i32;

impl Device for Emulated {
    type Buf = HostBuf;

    fn alloc(&self, bytes: usize) -> Result<HostBuf> {
        Ok(HostBuf((0..bytes.div_ceil(8)).map(|_| Cell::new(0)).collect()))
    }

    fn upload(&self, dst: &mut HostBuf, offset: usize, src: &[u8]) -> Result<()> {
        assert!(offset + src.len() <= dst.0.len() * 8);
        // SAFETY: bounds checked above.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.ptr().add(offset), src.len()) };
        Ok(())
    }

    fn download(&self, src: &HostBuf, offset: usize, dst: &mut [u8]) -> Result<()> {
        assert!(offset + dst.len() <= src.0.len() * 8);
        // SAFETY: bounds checked above.
        unsafe { std::ptr::copy_nonoverlapping(src.ptr().add(offset), dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    fn launch(&self, kernel: &str, grid: [u32; 3], block: u32, args: &[Arg<'_, HostBuf>]) -> Result<()> {
        // SAFETY: the symbol's type is the one `launchers` writes.
        let f: libloading::Symbol<Launcher> = unsafe { self.lib.get(format!("launch_{kernel}").as_bytes()) }.map_err(|_| anyhow!("no kernel `{kernel}` in the program"))?;
        let mut kinds = String::new();
        // Little-endian 8-byte slots: a 4-byte argument is read from the low half.
        let mut values: Vec<u64> = args
            .iter()
            .map(|a| {
                let (k, v) = match a {
                    Arg::Ptr(b, off) => {
                        assert!(*off <= b.0.len() * 8, "{kernel}: pointer argument past its buffer");
                        ('p', b.ptr() as u64 + *off as u64)
                    }
                    Arg::Null => ('p', 0),
                    Arg::I32(v) => ('i', *v as u32 as u64),
                    Arg::I64(v) => ('l', *v as u64),
                    Arg::U64(v) => ('u', *v),
                    Arg::F32(v) => ('f', v.to_bits() as u64),
                    Arg::F64(v) => ('d', v.to_bits()),
                };
                kinds.push(k);
                v
            })
            .collect();
        kinds.push('\0');
        let mut ptrs: Vec<*mut c_void> = values.iter_mut().map(|v| v as *mut u64 as *mut c_void).collect();
        // SAFETY: the launcher checks the argument kinds before it runs the kernel.
        let status = unsafe { f(grid[0], grid[1], grid[2], block, kinds.as_ptr(), ptrs.as_mut_ptr()) };
        if status != 0 {
            let expected = self.signatures.get(kernel).map(String::as_str).unwrap_or("?");
            bail!("{kernel}: argument kinds {} do not match the signature's {expected} (p pointer, i int, l long long, u unsigned long long, d double, f float)", kinds.trim_end_matches('\0'));
        }
        Ok(())
    }
}

