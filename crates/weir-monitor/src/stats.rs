//! Byte and line counters, per stream.
//!
//! Every byte the application writes is counted exactly once as read, and then
//! exactly once as either written to a log file or dropped with a reason. The
//! identity `read = written + dropped` is what the tests check to the byte.
//! Bytes deleted later (rotation, someone removing the file) were written, so
//! they are reported separately and are not part of the identity.

use serde::Serialize;

/// The output streams of a captured process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub const ALL: [Stream; 2] = [Stream::Stdout, Stream::Stderr];

    /// The name used in CRI and json-file records.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Bytes and lines. A line is counted where it ends: at its `F` record.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub bytes: u64,
    pub lines: u64,
}

impl Counts {
    pub fn add(&mut self, bytes: u64, lines: u64) {
        self.bytes += bytes;
        self.lines += lines;
    }

    pub fn merge(&mut self, other: Counts) {
        self.add(other.bytes, other.lines);
    }

    pub fn is_zero(&self) -> bool {
        self.bytes == 0 && self.lines == 0
    }
}

/// One value per stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PerStream<T> {
    values: [T; 2],
}

impl<T> PerStream<T> {
    pub fn get(&self, stream: Stream) -> &T {
        &self.values[stream.index()]
    }

    pub fn get_mut(&mut self, stream: Stream) -> &mut T {
        &mut self.values[stream.index()]
    }

    pub fn iter(&self) -> impl Iterator<Item = (Stream, &T)> {
        Stream::ALL.into_iter().zip(self.values.iter())
    }
}

impl PerStream<Counts> {
    pub fn total(&self) -> Counts {
        let mut total = Counts::default();
        for (_, c) in self.iter() {
            total.merge(*c);
        }
        total
    }
}

/// Why bytes were not stored.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Dropped {
    /// Over budget under the `drop` policy.
    pub rate_limit: Counts,
    /// Pushed out of a full ring (the oldest lines) under the `ring` policy.
    pub ring_overflow: Counts,
    /// The log file could not be written: disk full, I/O error, read-only or
    /// vanished directory.
    pub disk: Counts,
}

impl Dropped {
    pub fn total(&self) -> Counts {
        let mut total = self.rate_limit;
        total.merge(self.ring_overflow);
        total.merge(self.disk);
        total
    }

    pub fn merge(&mut self, other: Dropped) {
        self.rate_limit.merge(other.rate_limit);
        self.ring_overflow.merge(other.ring_overflow);
        self.disk.merge(other.disk);
    }
}

/// Bytes that reached a log file and were deleted afterwards.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Deleted {
    /// Removed by rotation because more than `--log-max-files` existed.
    pub rotation: Counts,
    /// The file was removed by someone else while weir was writing it.
    pub external: Counts,
}

/// What the writer side knows about one stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    pub written: Counts,
    /// Bytes put in log files for this stream: the application's bytes plus
    /// weir's framing (timestamps, tags, JSON) and its markers.
    pub log_bytes: u64,
    pub dropped: Dropped,
    pub deleted: Deleted,
}
