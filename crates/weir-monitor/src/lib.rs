//! Capture of a process's stdout and stderr into log files: conmon's job.
//!
//! The pieces, in the order bytes flow through them:
//!
//! - [`spawn`] starts the child with its own pipes (or a pseudo-terminal);
//! - [`reader`] drains one stream with large reads and coalesces small writes;
//! - [`framing`] cuts the bytes into records (`P`/`F` fragments of a line);
//! - [`format`] renders records as CRI lines or Docker json-file objects;
//! - [`sink`] writes them to the live file on its own thread (so framing
//!   overlaps with the page-cache copy), rotates, compresses, and rides out
//!   disk trouble without ever blocking the readers;
//! - [`capture`] supervises the whole run: signals, exit status, draining;
//! - [`stats`] and [`summary`] account for every byte the application wrote.

pub mod capture;
pub mod config;
pub mod format;
pub mod framing;
pub mod gate;
mod loss;
pub mod meta;
pub mod node_share;
pub mod reader;
pub mod ring;
pub mod signals;
pub mod sink;
pub mod spawn;
pub mod stats;
pub mod summary;
mod sys;

pub use capture::{CaptureError, run};
pub use config::{LogFormat, RunConfig, StdinMode};
pub use summary::Summary;
pub use sys::free_bytes;
