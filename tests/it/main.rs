//! The integration tests, as one binary (one link against polars and mdBook
//! instead of one per file). Each module is one area; `common` generates
//! small datasets in every format actlab reads, `emulator` runs the GPU
//! program on the host.

mod common;
mod emulator;

mod codegen;
mod data;
mod device;
mod expressions;
mod fixtures;
mod gpu_emulated;
mod reliability;
mod report;
mod study;
mod train;
