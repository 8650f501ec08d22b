//! The parts of `weir bench` the agent's benchmark needs, for the
//! `weir-agent` executable.

pub mod agent;
pub mod collector;
pub mod measure;
pub mod receive;
pub mod stats;
pub mod workdir;
