//! The dead-letter file: records a sink refused for good, or gave up on,
//! one NDJSON line each with the reason, so nothing is dropped unseen and an
//! operator can replay them.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use weir_monitor::format::json_file::escape_into;

use crate::record::LogRecord;
use crate::sink::ndjson;

#[derive(Debug)]
pub struct DeadLetters {
    path: PathBuf,
    sink: String,
    file: Option<File>,
}

impl DeadLetters {
    pub fn new(path: &Path, sink: &str) -> DeadLetters {
        DeadLetters {
            path: path.to_path_buf(),
            sink: sink.to_owned(),
            file: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `records` with `reason` and syncs.
    pub fn write<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a LogRecord>,
        reason: &str,
    ) -> std::io::Result<()> {
        let mut out = Vec::new();
        for record in records {
            ndjson::encode(record, &mut out);
            // Close the object with the reason instead of `}\n`.
            out.truncate(out.len() - 2);
            out.extend_from_slice(b",\"weir_dead_letter\":{\"sink\":\"");
            escape_into(self.sink.as_bytes(), &mut out);
            out.extend_from_slice(b"\",\"reason\":\"");
            escape_into(reason.as_bytes(), &mut out);
            out.extend_from_slice(b"\"}}\n");
        }
        if self.file.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            self.file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        let file = self.file.as_mut().expect("opened above");
        file.write_all(&out)?;
        file.sync_data()
    }
}
