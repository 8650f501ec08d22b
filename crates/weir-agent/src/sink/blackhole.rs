//! A sink that acknowledges everything at once and keeps nothing: the
//! pipeline's own cost, for benchmarks.

use super::{Reads, SendError, Sink};
use crate::record::LogRecord;

#[derive(Debug, Default)]
pub struct Blackhole;

impl Sink for Blackhole {
    fn reads(&self) -> Reads {
        Reads::Core
    }

    fn send(&mut self, _records: &[LogRecord]) -> Result<(), SendError> {
        Ok(())
    }
}
