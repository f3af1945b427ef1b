//! The training engine's numeric core: GEMM, deterministic math, number
//! types for automatic differentiation, counter-based RNG.

/// The version of the engine's arithmetic: the order and rounding of every
/// operation a training run performs, on every device. It is frozen: a
/// change that alters any bit of a run must raise it, and runs of another
/// version are other runs (part of a run's identity, `run.json`'s
/// `engine.arithmetic`).
pub const ARITHMETIC: u32 = 1;

pub mod codegen;
pub mod cuda;
pub mod device;
pub mod cpu;
pub mod launch;
pub mod math;
pub mod profile;
pub mod real;
pub mod rng;
