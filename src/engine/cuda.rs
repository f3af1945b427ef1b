//! A CUDA device: context, stream, and NVRTC compilation with the options
//! that keep its arithmetic identical to the CPU's.

use anyhow::{anyhow, Context, Result};
use cudarc::driver::{CudaContext, CudaModule, CudaStream};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};
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

    /// Compile CUDA C with NVRTC for this GPU and load it.
    ///
    /// `fmad = false`: a*b+c stays two roundings, as on the CPU (which never
    /// contracts); precise division and square root; no flush-to-zero.
    pub fn compile(&self, src: &str) -> Result<Arc<CudaModule>> {
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            anyhow::bail!("NVRTC (libnvrtc.so) could not be loaded: install the CUDA runtime libraries or add them to LD_LIBRARY_PATH");
        }
        let (major, minor) = self.capability;
        let opts = CompileOptions {
            fmad: Some(false),
            prec_div: Some(true),
            prec_sqrt: Some(true),
            ftz: Some(false),
            use_fast_math: Some(false),
            options: vec![format!("--gpu-architecture=compute_{major}{minor}"), "--std=c++17".into()],
            ..Default::default()
        };
        let ptx = compile_ptx_with_opts(src, opts).map_err(|e| anyhow!("NVRTC rejected the generated kernels: {e:?}"))?;
        self.ctx.load_module(ptx).context("cannot load the compiled kernels")
    }
}
