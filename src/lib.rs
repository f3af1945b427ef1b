//! actlab: a reproducible research notebook on activation functions.
//!
//! The pipeline is the module layout:
//! `data → engine → nn/activation → train → (study) → (report)`.
pub mod activation;
pub mod bench;
pub mod data;
pub mod engine;
pub mod io;
pub mod nn;
pub mod report;
pub mod store;
pub mod study;
pub mod train;
pub mod verify;
