//! A sink that appends to a file, as NDJSON or as CRI lines (the format the
//! kubelet reads), syncing each batch before it is acknowledged, so an
//! acknowledged record is on disk (unless `sync = false`: then it is in the
//! page cache, as with rsyslog's or Fluent Bit's file outputs, and a power
//! cut may lose what the tail sources have already checkpointed). With a maximum size it rotates by
//! renaming (`out.log` → `out.log.1` → …), never by truncating, and keeps
//! `max_files` files, the live one included.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use weir_monitor::format::timestamp::Timestamp;
use weir_monitor::format::{Encoder, LogFormat};
use weir_monitor::framing::{Record, Tag};
use weir_monitor::stats::Stream as MonitorStream;

use super::{Reads, SendError, Sink, ndjson};
use crate::record::{LogRecord, Stream};

#[derive(Debug, Clone, Copy)]
pub struct FileOptions {
    pub cri: bool,
    pub max_size: Option<u64>,
    pub max_files: usize,
    /// fsync each batch before acknowledging it.
    pub sync: bool,
}

#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    options: FileOptions,
    file: Option<(File, u64)>,
    out: Vec<u8>,
    /// CRI encoders for stdout and stderr, kept so that records of the
    /// same second share the formatted date and time.
    encoders: [Encoder; 2],
}

impl FileSink {
    pub fn new(path: &Path, options: FileOptions) -> FileSink {
        FileSink {
            path: path.to_path_buf(),
            options,
            file: None,
            out: Vec::new(),
            encoders: [
                Encoder::new(LogFormat::Cri, MonitorStream::Stdout),
                Encoder::new(LogFormat::Cri, MonitorStream::Stderr),
            ],
        }
    }

    fn open(&mut self) -> std::io::Result<&mut (File, u64)> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            let size = file.metadata()?.len();
            self.file = Some((file, size));
        }
        Ok(self.file.as_mut().expect("opened above"))
    }

    /// Renames the live file to `.1` (and each `.N` to `.N+1`), deleting the
    /// oldest beyond `max_files`, if the batch would take it past its size.
    fn rotate_if_due(&mut self, adding: usize) -> std::io::Result<()> {
        let Some(max) = self.options.max_size else {
            return Ok(());
        };
        let size = self.open()?.1;
        if size == 0 || size + adding as u64 <= max {
            return Ok(());
        }
        let numbered = |n: usize| {
            let mut name = self.path.as_os_str().to_owned();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        let keep = self.options.max_files.max(1) - 1;
        if keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(numbered(keep));
            for n in (1..keep).rev() {
                match std::fs::rename(numbered(n), numbered(n + 1)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, numbered(1))?;
        }
        self.file = None;
        Ok(())
    }
}

/// Appends `record` as CRI lines, through the monitor's own CRI encoder:
/// one `F` line per line of its body (a body holding newlines becomes
/// several lines, as the application's own output would have), `P` for a
/// partial record.
fn cri_into(record: &LogRecord, encoders: &mut [Encoder; 2], out: &mut Vec<u8>) {
    let encoder = match record.stream {
        Stream::Stderr => &mut encoders[1],
        Stream::Stdout | Stream::Other => &mut encoders[0],
    };
    encoder.set_time(Timestamp {
        secs: record.time_ns.div_euclid(1_000_000_000),
        nanos: record.time_ns.rem_euclid(1_000_000_000) as u32,
    });
    let mut lines = record.body.split(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        let tag = if last && record.partial {
            Tag::Partial
        } else {
            Tag::Full
        };
        encoder.encode(
            &Record {
                tag,
                content: line,
                app_bytes: line.len() as u32 + u32::from(tag == Tag::Full),
            },
            out,
        );
    }
}

impl Sink for FileSink {
    /// CRI lines hold the time, the stream and the body only.
    fn reads(&self) -> Reads {
        if self.options.cri {
            Reads::Core
        } else {
            Reads::Whole
        }
    }

    fn send(&mut self, records: &[LogRecord]) -> Result<(), SendError> {
        self.out.clear();
        for record in records {
            if self.options.cri {
                cri_into(record, &mut self.encoders, &mut self.out);
            } else {
                ndjson::encode(record, &mut self.out);
            }
        }
        let out = std::mem::take(&mut self.out);
        let sync = self.options.sync;
        let written = self.rotate_if_due(out.len()).and_then(|()| {
            let (file, size) = self.open()?;
            let before = *size;
            let written = file
                .write_all(&out)
                .and_then(|()| if sync { file.sync_data() } else { Ok(()) });
            match written {
                Ok(()) => *size += out.len() as u64,
                // A batch is written whole or not at all: it is sent again
                // whole, so no line is left half written.
                Err(_) => {
                    let _ = file.set_len(before);
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(body: &str) -> LogRecord {
        LogRecord {
            time_ns: 1_700_000_000_000_000_001,
            stream: Stream::Stderr,
            body: body.as_bytes().to_vec(),
            ..LogRecord::default()
        }
    }

    #[test]
    fn cri_lines_and_rotation_by_rename() {
        let dir = std::env::temp_dir().join(format!("weir-file-sink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("out.log");
        let mut sink = FileSink::new(
            &path,
            FileOptions {
                cri: true,
                max_size: Some(100),
                max_files: 3,
                sync: true,
            },
        );
        for i in 0..10 {
            sink.send(&[record(&format!("line {i}"))]).unwrap();
        }
        // 47 bytes a line, 100 at most a file: two lines a file, three files.
        let live = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            live,
            "2023-11-14T22:13:20.000000001Z stderr F line 8\n\
             2023-11-14T22:13:20.000000001Z stderr F line 9\n"
        );
        let older = std::fs::read_to_string(dir.join("out.log.1")).unwrap();
        assert!(
            older.ends_with("F line 7\n") && older.lines().count() == 2,
            "{older}"
        );
        assert!(dir.join("out.log.2").exists());
        assert!(
            !dir.join("out.log.3").exists(),
            "max_files counts the live file"
        );
        let mut multi = Vec::new();
        cri_into(
            &LogRecord {
                partial: true,
                ..record("a\nb")
            },
            &mut sink.encoders,
            &mut multi,
        );
        assert_eq!(
            String::from_utf8(multi).unwrap(),
            "2023-11-14T22:13:20.000000001Z stderr F a\n2023-11-14T22:13:20.000000001Z stderr P b\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
