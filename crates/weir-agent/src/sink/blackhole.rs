//! A sink that acknowledges everything at once and keeps nothing: the
//! pipeline's own cost, for benchmarks.

use super::{SendError, Sink};
use crate::record::LogRecord;

#[derive(Debug, Default)]
pub struct Blackhole;

impl Sink for Blackhole {
    fn send(&mut self, _records: &[LogRecord]) -> Result<(), SendError> {
        Ok(())
    }
}
