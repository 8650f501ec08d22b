//! A sink that writes NDJSON to weir's standard output (or error).

use std::io::Write;

use super::{SendError, Sink, ndjson};
use crate::record::LogRecord;

#[derive(Debug)]
pub struct Console {
    stderr: bool,
    out: Vec<u8>,
}

impl Console {
    pub fn new(stderr: bool) -> Console {
        Console {
            stderr,
            out: Vec::new(),
        }
    }
}

impl Sink for Console {
    fn send(&mut self, records: &[LogRecord]) -> Result<(), SendError> {
        self.out.clear();
        for record in records {
            ndjson::encode(record, &mut self.out);
        }
        let written = if self.stderr {
            std::io::stderr().lock().write_all(&self.out)
        } else {
            std::io::stdout().lock().write_all(&self.out)
        };
        // A closed console will not reopen: retrying cannot help.
        written.map_err(|e| SendError::permanent(format!("writing to the console: {e}")))
    }
}
