//! The network: layers, the article's CNN, loss and optimizer.
pub mod optim;
pub mod arch;
pub mod gpu;
pub mod interop;
pub mod layers;
pub mod loss;
pub mod model;
pub mod pass;
pub mod plan;
