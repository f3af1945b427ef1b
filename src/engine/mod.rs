//! The training engine's numeric core: GEMM, deterministic math, number
//! types for automatic differentiation, counter-based RNG.
pub mod codegen;
pub mod cuda;
pub mod device;
pub mod cpu;
pub mod launch;
pub mod math;
pub mod profile;
pub mod real;
pub mod rng;
