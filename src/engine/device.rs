//! Which device computes: `--device cpu|cuda[:N]|auto`.
//!
//! The CUDA driver and NVRTC are loaded at run time (cudarc's dynamic
//! loading), so the same binary builds with no CUDA toolkit and runs on
//! machines with or without a GPU. Asking for CUDA where there is none is
//! a clear error; `auto` falls back to the CPU.

use anyhow::{bail, Context, Result};
use std::str::FromStr;

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceArg {
    #[default]
    Cpu,
    Cuda(usize),
    /// CUDA device 0 when a GPU is present, otherwise the CPU.
    Auto,
}

impl FromStr for DeviceArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(DeviceArg::Cpu),
            "cuda" => Ok(DeviceArg::Cuda(0)),
            "auto" => Ok(DeviceArg::Auto),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceArg::Cuda(n)),
                _ => Err(format!("`{s}`: use cpu, cuda, cuda:N (N = 0, 1, …) or auto")),
            },
        }
    }
}

/// The device a command will use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selected {
    Cpu,
    Cuda { ordinal: usize, name: String },
}

/// Why CUDA cannot be used here, or the number of GPUs.
pub fn cuda_devices() -> Result<usize, String> {
    // SAFETY: only probes whether the shared library can be opened.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err("no NVIDIA driver on this machine (libcuda.so could not be loaded)".into());
    }
    match cudarc::driver::CudaContext::device_count() {
        Ok(0) => Err("the NVIDIA driver reports no GPU".into()),
        Ok(n) => Ok(n as usize),
        Err(e) => Err(format!("the NVIDIA driver could not start: {e}")),
    }
}

/// Resolve `--device`: checks that a requested GPU exists.
pub fn select(arg: DeviceArg) -> Result<Selected> {
    match arg {
        DeviceArg::Cpu => Ok(Selected::Cpu),
        DeviceArg::Auto => Ok(match cuda_devices() {
            Ok(_) => open_name(0)?,
            Err(_) => Selected::Cpu,
        }),
        DeviceArg::Cuda(n) => match cuda_devices() {
            Err(why) => bail!("--device cuda:{n}: {why}. Use --device cpu (the default), or run on a machine with an NVIDIA GPU and driver."),
            Ok(count) if n >= count => bail!("--device cuda:{n}: this machine has {count} GPU(s), numbered 0 to {}", count - 1),
            Ok(_) => open_name(n),
        },
    }
}

fn open_name(ordinal: usize) -> Result<Selected> {
    let ctx = cudarc::driver::CudaContext::new(ordinal).with_context(|| format!("cannot open CUDA device {ordinal}"))?;
    Ok(Selected::Cuda { ordinal, name: ctx.name().unwrap_or_else(|_| "unknown NVIDIA GPU".into()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("cpu".parse(), Ok(DeviceArg::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceArg::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceArg::Cuda(3)));
        assert_eq!("auto".parse(), Ok(DeviceArg::Auto));
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", "CPU"] {
            assert!(bad.parse::<DeviceArg>().unwrap_err().contains("cuda:N"), "{bad}");
        }
    }
}
