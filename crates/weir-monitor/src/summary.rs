//! The account of a run, printed as one JSON object by `--summary`.

use std::path::PathBuf;

use serde::Serialize;

use crate::sink::{DeletedFile, RotatedFile, SinkReport};
use crate::stats::{Counts, Deleted, Dropped, Stream};

/// Everything a run did, per stream and in total.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub exit: ExitReport,
    pub streams: StreamsSummary,
    pub files: FilesSummary,
    pub drain: DrainReport,
    /// Capacity of each pipe as granted by the kernel.
    pub pipe_size: usize,
    pub monitor: MonitorUsage,
    /// Loss to disk trouble still going on at exit, never marked in the log.
    pub unresolved_disk_trouble: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamsSummary {
    pub stdout: StreamSummary,
    pub stderr: StreamSummary,
}

impl StreamsSummary {
    pub fn get(&self, stream: Stream) -> &StreamSummary {
        match stream {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        }
    }
}

/// The account of one stream. `read = written + dropped`, to the byte.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StreamSummary {
    pub read: Counts,
    pub written: Counts,
    pub dropped: Dropped,
    /// Written, then deleted (not part of the identity).
    pub deleted: Deleted,
    /// Bytes weir added in the log files around what it wrote: timestamps,
    /// stream names, tags, JSON, markers. Budgets never count these.
    pub overhead_bytes: u64,
}

impl StreamSummary {
    /// Whether every byte and line read was either written or dropped.
    pub fn balanced(&self) -> bool {
        let dropped = self.dropped.total();
        self.read.bytes == self.written.bytes + dropped.bytes
            && self.read.lines == self.written.lines + dropped.lines
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FilesSummary {
    pub live: PathBuf,
    /// Rotated files kept, newest first.
    pub rotated: Vec<PathBuf>,
    pub deleted: Vec<DeletedFile>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct ExitReport {
    /// The exit code weir itself exits with: the child's, or 128+N when a
    /// signal N killed it.
    pub code: i32,
    /// The signal that killed the child, if one did.
    pub signal: Option<i32>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct DrainReport {
    /// Descendants still held a pipe open when the drain timeout expired.
    pub timed_out: bool,
    pub timeout_seconds: f64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct MonitorUsage {
    pub cpu_seconds: f64,
    pub max_rss_kib: u64,
}

impl Summary {
    /// One stream's account: what its reader read and its gate dropped,
    /// and what the sink wrote or lost to the disk.
    pub(crate) fn stream_summary(
        read: Counts,
        gate_dropped: Dropped,
        sink: &SinkReport,
        stream: Stream,
    ) -> StreamSummary {
        let stats = sink.stats.get(stream);
        let mut dropped = stats.dropped;
        dropped.merge(gate_dropped);
        StreamSummary {
            read,
            written: stats.written,
            dropped,
            deleted: stats.deleted,
            overhead_bytes: stats.log_bytes.saturating_sub(stats.written.bytes),
        }
    }

    pub(crate) fn rotated_paths(rotated: &[RotatedFile]) -> Vec<PathBuf> {
        rotated.iter().map(|f| f.path.clone()).collect()
    }

    /// True when both streams account for every byte.
    pub fn balanced(&self) -> bool {
        self.streams.stdout.balanced() && self.streams.stderr.balanced()
    }
}
