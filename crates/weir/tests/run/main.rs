//! End-to-end tests of `weir run`: real processes, real pipes, real files.

mod common;
mod disk;
mod gate;
mod lifecycle;
mod node;
mod rotation;
mod round_trip;
