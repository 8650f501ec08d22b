//! The log file: writing batches, rotating, and riding out disk trouble.
//!
//! The sink never blocks a reader on the disk's behalf: when a write fails it
//! counts what could not be written (reason `disk`), cuts off any torn record
//! so the file stays parseable, and tries again as space returns, writing a
//! marker line that states the loss before anything else.

mod batch;
mod compress;
pub mod rotation;
mod trouble;
mod writer;

pub use batch::{Batch, RecordSpan};
pub use rotation::{DeleteReason, DeletedFile, RotatedFile};
pub use trouble::{RESUME_HEADROOM, describe as describe_error};
pub use writer::{BatchInlet, BatchOutlet, SinkWriter, batch_channel};

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::RotationConfig;
use crate::format::{Encoder, LogFormat, Timestamp};
use crate::stats::{Counts, PerStream, Stream, WriteStats};
use crate::sys;
use rotation::Rotator;
use trouble::DiskTrouble;

/// How often the sink checks that its live file still has a name.
const PRESENCE_CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// How long to write past `--log-max-size` after a failed rotation.
const ROTATION_RETRY_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct LiveFile {
    file: File,
    size: u64,
    /// Not a device or a FIFO: only a regular file may be rotated.
    is_regular: bool,
    counts: PerStream<Counts>,
}

/// What the sink did, for the summary.
#[derive(Debug)]
pub struct SinkReport {
    pub stats: PerStream<WriteStats>,
    pub live_path: PathBuf,
    pub rotated: Vec<RotatedFile>,
    pub deleted: Vec<DeletedFile>,
    /// Data lost to disk trouble that was still going on at exit.
    pub unresolved_trouble: Option<String>,
}

/// Writes encoded batches to the live file.
#[derive(Debug)]
pub struct LogSink {
    path: PathBuf,
    format: LogFormat,
    live: Option<LiveFile>,
    rotator: Rotator,
    rotation_retry_at: Option<Instant>,
    trouble: Option<DiskTrouble>,
    stats: PerStream<WriteStats>,
    deleted: Vec<DeletedFile>,
    last_presence_check: Instant,
}

/// An error opening the log at start, naming the path.
#[derive(Debug, thiserror::Error)]
#[error("cannot open log file {path}: {source}")]
pub struct OpenError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl LogSink {
    /// Creates the directory and opens (appends to) the live file.
    pub fn open(
        path: &Path,
        format: LogFormat,
        mut rotation: RotationConfig,
    ) -> Result<LogSink, OpenError> {
        let live = open_live_file(path).map_err(|source| OpenError {
            path: path.to_path_buf(),
            source,
        })?;
        if rotation.max_size.is_some() && !live.is_regular {
            // Renaming `/dev/null` or a FIFO away would break it for others.
            eprintln!(
                "weir: {} is not a regular file; it is written as it is and never rotated",
                path.display()
            );
            rotation.max_size = None;
        }
        Ok(LogSink {
            path: path.to_path_buf(),
            format,
            live: Some(live),
            rotator: Rotator::new(path, rotation),
            rotation_retry_at: None,
            trouble: None,
            stats: PerStream::default(),
            deleted: Vec::new(),
            last_presence_check: Instant::now(),
        })
    }

    /// Writes `batch`, rotating at record boundaries; whatever cannot be
    /// written is counted as dropped (disk).
    pub fn write_batch(&mut self, batch: &Batch) {
        if batch.is_empty() {
            return;
        }
        self.check_presence();
        let total = batch.spans.len();
        if self.trouble.is_some() && !self.try_resume() {
            self.drop_records(batch, 0..total);
            return;
        }
        let mut next = 0;
        while next < total {
            if self.live.is_none() {
                if let Err(e) = self.reopen() {
                    self.begin_trouble(&e);
                    self.drop_records(batch, next..total);
                    return;
                }
            }
            let live_size = self.live.as_ref().map_or(0, |l| l.size);
            let mut count = total - next;
            if let (Some(max), true) = (self.rotator.max_size(), self.rotation_allowed()) {
                let room = usize::try_from(max.saturating_sub(live_size)).unwrap_or(usize::MAX);
                count = batch.records_within(next, room);
                if count == 0 && live_size > 0 {
                    self.rotate();
                    continue;
                }
                count = count.max(1);
            }
            let start = batch.start_of(next);
            let end = batch.spans[next + count - 1].end;
            let live = self.live.as_mut().expect("opened above");
            match write_all(&live.file, &batch.bytes[start..end]) {
                Ok(()) => {
                    live.size += (end - start) as u64;
                    self.stats.get_mut(batch.stream).log_bytes += (end - start) as u64;
                    let counts = batch.counts(next..next + count);
                    live.counts.get_mut(batch.stream).merge(counts);
                    self.stats.get_mut(batch.stream).written.merge(counts);
                    next += count;
                }
                Err((written, error)) => {
                    let whole = batch.records_within(next, written);
                    let kept = batch.start_of(next + whole) - start;
                    if kept < written {
                        // Cut off the torn record so the file stays parseable.
                        let _ = live.file.set_len(live.size + kept as u64);
                    }
                    live.size += kept as u64;
                    self.stats.get_mut(batch.stream).log_bytes += kept as u64;
                    let counts = batch.counts(next..next + whole);
                    live.counts.get_mut(batch.stream).merge(counts);
                    self.stats.get_mut(batch.stream).written.merge(counts);
                    self.begin_trouble(&error);
                    self.drop_records(batch, next + whole..total);
                    return;
                }
            }
        }
    }

    /// Ends writing: one last attempt to record an ongoing loss, then waits
    /// for the compressor.
    pub fn finish(mut self) -> SinkReport {
        let mut unresolved = None;
        if let Some(trouble) = self.trouble.as_mut() {
            trouble.last_attempt = Instant::now() - trouble::RETRY_INTERVAL;
            if !self.try_resume() {
                let trouble = self.trouble.as_ref().expect("still in trouble");
                let lost = trouble.lost.total();
                let message = format!(
                    "{} bytes in {} lines lost: {} since {}, never written to {}",
                    lost.bytes,
                    lost.lines,
                    trouble.describe(),
                    trouble.since,
                    self.path.display()
                );
                eprintln!("weir: {message}");
                unresolved = Some(message);
            }
        }
        SinkReport {
            stats: self.stats,
            live_path: self.path,
            rotated: self.rotator.finish(),
            deleted: self.deleted,
            unresolved_trouble: unresolved,
        }
    }

    fn rotation_allowed(&mut self) -> bool {
        match self.rotation_retry_at {
            Some(at) if Instant::now() < at => false,
            _ => {
                self.rotation_retry_at = None;
                true
            }
        }
    }

    fn rotate(&mut self) {
        let counts = self.live.as_ref().map(|l| l.counts).unwrap_or_default();
        let (deleted, result) = self.rotator.rotate(counts);
        self.note_deleted(deleted);
        match result {
            Ok(()) => self.live = None,
            Err(e) => {
                eprintln!(
                    "weir: cannot rotate {}: {e}; writing on past --log-max-size and retrying in {:?}",
                    self.path.display(),
                    ROTATION_RETRY_INTERVAL
                );
                self.rotation_retry_at = Some(Instant::now() + ROTATION_RETRY_INTERVAL);
            }
        }
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.live = Some(open_live_file(&self.path)?);
        Ok(())
    }

    fn note_deleted(&mut self, files: Vec<DeletedFile>) {
        for file in files {
            for (stream, counts) in [(Stream::Stdout, file.stdout), (Stream::Stderr, file.stderr)] {
                let deleted = &mut self.stats.get_mut(stream).deleted;
                match file.reason {
                    DeleteReason::Rotation => deleted.rotation.merge(counts),
                    DeleteReason::External => deleted.external.merge(counts),
                }
            }
            self.deleted.push(file);
        }
    }

    /// Notices a live file that someone deleted (its link count fell to
    /// zero), reports what it held and starts a new one.
    fn check_presence(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.last_presence_check) < PRESENCE_CHECK_INTERVAL {
            return;
        }
        self.last_presence_check = now;
        let Some(live) = &self.live else { return };
        match live.file.metadata() {
            Ok(meta) if meta.nlink() == 0 => {}
            _ => return,
        }
        let counts = live.counts;
        self.live = None;
        let mut gone = vec![rotation::deleted_file(
            self.path.clone(),
            counts,
            DeleteReason::External,
        )];
        gone.extend(self.rotator.forget_missing());
        eprintln!(
            "weir: {} was deleted while being written; its contents are reported as deleted externally; recreating it",
            self.path.display()
        );
        self.note_deleted(gone);
        if let Err(e) = self.reopen() {
            self.begin_trouble(&e);
        }
    }

    fn begin_trouble(&mut self, error: &io::Error) {
        if self.trouble.is_none() {
            eprintln!(
                "weir: cannot write {}: {error}; the application is not blocked, what cannot be written \
                 is counted as dropped (disk) and writing resumes when possible",
                self.path.display()
            );
            self.trouble = Some(DiskTrouble::new(error));
        }
    }

    fn drop_records(&mut self, batch: &Batch, range: std::ops::Range<usize>) {
        if range.is_empty() {
            return;
        }
        let counts = batch.counts(range);
        self.stats.get_mut(batch.stream).dropped.disk.merge(counts);
        if let Some(trouble) = self.trouble.as_mut() {
            trouble.lost.get_mut(batch.stream).merge(counts);
        }
    }

    /// Tries to leave the trouble state by writing the loss markers. At most
    /// once per retry interval, and only with some space free.
    fn try_resume(&mut self) -> bool {
        let Some(trouble) = self.trouble.as_mut() else {
            return true;
        };
        if trouble.last_attempt.elapsed() < trouble::RETRY_INTERVAL {
            return false;
        }
        trouble.last_attempt = Instant::now();
        if self.live.is_none() && self.reopen().is_err() {
            return false;
        }
        let trouble = self.trouble.as_ref().expect("checked above");
        let live = self.live.as_mut().expect("opened above");
        if sys::free_bytes(&live.file).is_ok_and(|free| free < RESUME_HEADROOM) {
            return false;
        }
        let until = Timestamp::now();
        let mut markers = Vec::new();
        let mut marker_bytes = PerStream::<u64>::default();
        for stream in Stream::ALL {
            if let Some(text) = trouble.marker(stream, until) {
                let mut encoder = Encoder::new(self.format, stream);
                encoder.set_time(until);
                let before = markers.len();
                encoder.encode_marker(&text, &mut markers);
                *marker_bytes.get_mut(stream) = (markers.len() - before) as u64;
            }
        }
        if let Err((written, _)) = write_all(&live.file, &markers) {
            if written > 0 {
                let _ = live.file.set_len(live.size);
            }
            return false;
        }
        live.size += markers.len() as u64;
        for (stream, bytes) in marker_bytes.iter() {
            self.stats.get_mut(stream).log_bytes += bytes;
        }
        let lost = trouble.lost.total();
        eprintln!(
            "weir: writing {} again; {} bytes in {} lines were lost ({}) from {} to {}",
            self.path.display(),
            lost.bytes,
            lost.lines,
            trouble.describe(),
            trouble.since,
            until
        );
        self.trouble = None;
        true
    }
}

fn open_live_file(path: &Path) -> io::Result<LiveFile> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    Ok(LiveFile {
        file,
        size: meta.len(),
        is_regular: meta.is_file(),
        counts: PerStream::default(),
    })
}

/// Writes all of `bytes`, or says how many were written before the error.
fn write_all(mut file: &File, mut bytes: &[u8]) -> Result<(), (usize, io::Error)> {
    let mut written = 0;
    while !bytes.is_empty() {
        match file.write(bytes) {
            Ok(0) => return Err((written, io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                written += n;
                bytes = &bytes[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((written, e)),
        }
    }
    Ok(())
}
