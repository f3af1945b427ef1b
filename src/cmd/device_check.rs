//! `actlab device-check`: the selected device; on CUDA, the GPU program
//! compiled by NVRTC and compared with the CPU bit for bit.

use super::Global;
use actlab::engine::cuda::{CudaDevice, Gpu};
use actlab::engine::device::{self, Selected};
use actlab::nn::arch::Architecture;
use actlab::nn::optim::{OptimizerConfig, SgdConfig};
use anyhow::Result;
use std::path::Path;

pub fn execute(g: &Global) -> Result<()> {
    let ordinal = match device::select(g.device)? {
        Selected::Cpu => {
            println!("device: cpu ({} threads)", rayon::current_num_threads());
            match device::cuda_devices() {
                Ok(n) => println!("CUDA: {n} GPU(s) present; check them with --device cuda[:N]"),
                Err(why) => println!("CUDA: not available ({why})"),
            }
            return Ok(());
        }
        Selected::Cuda { ordinal, .. } => ordinal,
    };
    let gpu = Gpu::open(ordinal)?;
    println!("device: cuda:{ordinal} {} (compute capability {}.{})", gpu.name, gpu.capability.0, gpu.capability.1);
    // Every built-in and, run from a checkout, every function the studies define.
    let acts = actlab::study::index::functions(Path::new("studies"));
    let t = std::time::Instant::now();
    // The activation kernels and the network's, in one program.
    let dev = CudaDevice::new(gpu, &actlab::nn::gpu::program(&acts))?;
    let compile_seconds = t.elapsed().as_secs_f64();
    let groups = actlab::activation::kernels::Groups { samples: 64, spatial: 30 * 30, channels: 8 };
    let c = actlab::activation::cuda::check_kernels(&dev, &acts, groups)?;
    println!("generated kernels: {} functions, {} elements each, NVRTC (or the PTX cache) {compile_seconds:.2} s", c.functions.len(), c.elements);
    println!("rerun on the GPU: {}", if c.rerun_identical { "bit-identical" } else { "DIFFERENT" });
    if c.differences.is_empty() {
        println!("GPU vs CPU: bit-identical for {}", c.functions.join(", "));
    }
    for d in &c.differences {
        println!("GPU vs CPU differs: {d}");
    }
    // The network: GEMM kernels, then three runs trained together.
    let gemm = actlab::train::gpu::check::check_gemm(&dev)?;
    println!("GEMM kernels vs CPU GEMM: {}", if gemm.is_empty() { "bit-identical".to_string() } else { format!("{} cases DIFFER", gemm.len()) });
    let mut training = Vec::new();
    let cases = [(Architecture::Article, OptimizerConfig::ARTICLE), (Architecture::Article, OptimizerConfig::Sgd(SgdConfig { learning_rate: 0.01, momentum: 0.9 })), (Architecture::ArticleBn, OptimizerConfig::ARTICLE)];
    for (network, optimizer) in cases {
        let gpu = Gpu::open(ordinal)?;
        let d = actlab::train::gpu::check::check_training(network, optimizer, |p| CudaDevice::new(gpu, p))?;
        println!("3 runs of the {} network trained together ({}), 2 epochs, vs 3 CPU runs: {}", network.name(), optimizer.name(), if d.is_empty() { "bit-identical".to_string() } else { format!("{} differences", d.len()) });
        training.extend(d);
    }
    for d in gemm.iter().chain(&training) {
        println!("  {d}");
    }
    if !c.differences.is_empty() || !c.rerun_identical || !gemm.is_empty() || !training.is_empty() {
        anyhow::bail!("the GPU does not reproduce the CPU's bits");
    }
    Ok(())
}
