//! Command-line units: the gate's parsers, so every weir command reads
//! `16KiB`, `5MiB/s` and `250ms` the same way.

pub use weir_gate::units::{parse_duration, parse_rate, parse_size};
