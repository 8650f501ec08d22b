//! A sink that appends NDJSON to a file, syncing each batch before it is
//! acknowledged, so an acknowledged record is on disk.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{SendError, Sink, ndjson};
use crate::record::LogRecord;

#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    file: Option<File>,
    out: Vec<u8>,
}

impl FileSink {
    pub fn new(path: &Path) -> FileSink {
        FileSink {
            path: path.to_path_buf(),
            file: None,
            out: Vec::new(),
        }
    }

    fn open(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }
}

impl Sink for FileSink {
    fn send(&mut self, records: &[LogRecord]) -> Result<(), SendError> {
        self.out.clear();
        for record in records {
            ndjson::encode(record, &mut self.out);
        }
        let out = std::mem::take(&mut self.out);
        let written = self.open().and_then(|file| {
            let before = file.metadata()?.len();
            let written = file.write_all(&out).and_then(|()| file.sync_data());
            if written.is_err() {
                // A batch is written whole or not at all: it is sent again
                // whole, so no line is left half written.
                let _ = file.set_len(before);
            }
            written
        });
        self.out = out;
        written.map_err(|e| {
            // Reopen next time: the file may have been moved, or the disk
            // may have room again.
            self.file = None;
            SendError::retryable(format!("writing {}: {e}", self.path.display()))
        })
    }
}
