//! The `store` sink: hands each batch to the store of the process it runs
//! in (`weir collector`), which says it arrived only once the batch is
//! committed, so the buffer before it lets go of nothing the store could
//! still lose.

use std::sync::Arc;

use super::{SendError, Sink};
use crate::record::LogRecord;

/// Where a `store` sink writes: the collector's store.
pub trait RecordStore: Send + Sync {
    /// Writes `records` and returns once they are durable; the error says
    /// why not. A failed append writes nothing of the batch.
    fn append(&self, records: &[LogRecord]) -> Result<(), String>;
}

/// A sink over the collector's store.
pub struct StoreSink {
    store: Arc<dyn RecordStore>,
}

impl StoreSink {
    pub fn new(store: Arc<dyn RecordStore>) -> StoreSink {
        StoreSink { store }
    }
}

impl Sink for StoreSink {
    fn send(&mut self, records: &[LogRecord]) -> Result<(), SendError> {
        // A store that cannot write now (disk full, locked) may later: the
        // batch stays in the buffer and is tried again, never dropped.
        self.store.append(records).map_err(SendError::retryable)
    }
}
