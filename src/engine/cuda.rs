//! A CUDA device: context, stream, NVRTC compilation with the options that
//! keep its arithmetic identical to the CPU's, a PTX cache, and the
//! [`Device`] interface the GPU engine runs on.

use super::launch::{Arg, Device};
use anyhow::{anyhow, Context, Result};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, LaunchConfig, PushKernelArg};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions, Ptx};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

pub struct Gpu {
    pub ordinal: usize,
    pub name: String,
    /// Compute capability, e.g. (9, 0) for an H100/H200.
    pub capability: (i32, i32),
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
}

impl Gpu {
    pub fn open(ordinal: usize) -> Result<Gpu> {
        if let Err(why) = super::device::cuda_devices() {
            anyhow::bail!("cuda:{ordinal}: {why}");
        }
        let ctx = CudaContext::new(ordinal).with_context(|| format!("cannot open CUDA device {ordinal}"))?;
        let name = ctx.name().unwrap_or_else(|_| "unknown NVIDIA GPU".into());
        let capability = ctx.compute_capability().context("cannot read the GPU's compute capability")?;
        let stream = ctx.default_stream();
        Ok(Gpu { ordinal, name, capability, ctx, stream })
    }

    /// The NVRTC options: `fmad = false`, so a*b+c stays two roundings as on
    /// the CPU (which never contracts); precise division and square root; no
    /// flush-to-zero.
    fn options(&self) -> CompileOptions {
        let (major, minor) = self.capability;
        CompileOptions {
            fmad: Some(false),
            prec_div: Some(true),
            prec_sqrt: Some(true),
            ftz: Some(false),
            use_fast_math: Some(false),
            options: vec![format!("--gpu-architecture=compute_{major}{minor}"), "--std=c++17".into()],
            ..Default::default()
        }
    }

    /// Compile CUDA C with NVRTC for this GPU and load it. The PTX is cached
    /// (see [`ptx_cache_dir`]) under a hash of the source, the options and
    /// the compute capability, so a study compiles once per machine.
    pub fn compile(&self, src: &str) -> Result<Arc<CudaModule>> {
        let opts = self.options();
        let key = crate::io::hex(&Sha256::digest(format!("{src}\n{opts:?}\n{:?}", self.capability)));
        let cached = ptx_cache_dir().map(|d| d.join(format!("{key}.ptx")));
        let ptx = match cached.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) {
            Some(text) => Ptx::from_src(text),
            None => {
                if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
                    anyhow::bail!("NVRTC (libnvrtc.so) could not be loaded: install the CUDA runtime libraries or add them to LD_LIBRARY_PATH");
                }
                let ptx = compile_ptx_with_opts(src, opts).map_err(|e| anyhow!("NVRTC rejected the generated kernels: {e:?}"))?;
                if let Some(p) = &cached {
                    // A cache that cannot be written only costs a compile next time.
                    let _ = p.parent().map(std::fs::create_dir_all);
                    let _ = crate::io::write_atomic(p, ptx.to_src().as_bytes());
                }
                ptx
            }
        };
        self.ctx.load_module(ptx).context("cannot load the compiled kernels")
    }
}

/// `$ACTLAB_PTX_CACHE`, else `$XDG_CACHE_HOME/actlab/ptx`, else `~/.cache/actlab/ptx`.
fn ptx_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("ACTLAB_PTX_CACHE") {
        return Some(PathBuf::from(d));
    }
    let base = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("actlab").join("ptx"))
}

/// A GPU with one compiled program, as a [`Device`].
pub struct CudaDevice {
    pub gpu: Gpu,
    module: Arc<CudaModule>,
    functions: RefCell<HashMap<String, CudaFunction>>,
}

impl CudaDevice {
    pub fn new(gpu: Gpu, program: &str) -> Result<CudaDevice> {
        let module = gpu.compile(program)?;
        Ok(CudaDevice { gpu, module, functions: RefCell::default() })
    }

    fn function(&self, name: &str) -> Result<CudaFunction> {
        if let Some(f) = self.functions.borrow().get(name) {
            return Ok(f.clone());
        }
        let f = self.module.load_function(name).with_context(|| format!("kernel `{name}` is not in the compiled program"))?;
        self.functions.borrow_mut().insert(name.to_string(), f.clone());
        Ok(f)
    }
}

/// A kernel argument's value, held while the launch reads it.
enum Value {
    U64(u64),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
}

impl Device for CudaDevice {
    type Buf = CudaSlice<u8>;

    fn alloc(&self, bytes: usize) -> Result<CudaSlice<u8>> {
        self.gpu.stream.alloc_zeros::<u8>(bytes).with_context(|| format!("cannot allocate {bytes} bytes on the GPU"))
    }

    fn upload(&self, dst: &mut CudaSlice<u8>, offset: usize, src: &[u8]) -> Result<()> {
        self.gpu.stream.memcpy_htod(src, &mut dst.slice_mut(offset..offset + src.len()))?;
        Ok(())
    }

    fn download(&self, src: &CudaSlice<u8>, offset: usize, dst: &mut [u8]) -> Result<()> {
        let s = &self.gpu.stream;
        s.memcpy_dtoh(&src.slice(offset..offset + dst.len()), dst)?;
        s.synchronize()?;
        Ok(())
    }

    fn launch(&self, kernel: &str, grid: [u32; 3], block: u32, args: &[Arg<'_, CudaSlice<u8>>]) -> Result<()> {
        let f = self.function(kernel)?;
        let s = &self.gpu.stream;
        // Everything runs on one stream, so raw addresses are safe to pass;
        // the guards record the use, as cudarc expects.
        let mut guards = Vec::new();
        let values: Vec<Value> = args
            .iter()
            .map(|a| match a {
                Arg::Ptr(b, off) => {
                    let (p, g) = b.device_ptr(s);
                    guards.push(g);
                    Value::U64(p + *off as u64)
                }
                Arg::Null => Value::U64(0),
                Arg::I32(v) => Value::I32(*v),
                Arg::I64(v) => Value::I64(*v),
                Arg::U64(v) => Value::U64(*v),
                Arg::F32(v) => Value::F32(*v),
                Arg::F64(v) => Value::F64(*v),
            })
            .collect();
        let mut b = s.launch_builder(&f);
        for v in &values {
            match v {
                Value::U64(x) => b.arg(x),
                Value::I32(x) => b.arg(x),
                Value::I64(x) => b.arg(x),
                Value::F32(x) => b.arg(x),
                Value::F64(x) => b.arg(x),
            };
        }
        let cfg = LaunchConfig { grid_dim: (grid[0], grid[1], grid[2]), block_dim: (block, 1, 1), shared_mem_bytes: 0 };
        // SAFETY: `nn::gpu` passes each kernel the argument list of its
        // signature in `network.cu` / the generated activation kernels; the
        // emulated tests run the same lists against the same source.
        unsafe { b.launch(cfg) }.with_context(|| format!("launching `{kernel}`"))?;
        drop(guards);
        Ok(())
    }
}
