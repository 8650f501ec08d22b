//! A run of encoded records of one stream, ready for one write.

use crate::format::Encoder;
use crate::framing::{Record, Tag};
use crate::stats::{Counts, Stream};

/// Where one encoded record ends in the batch and what it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSpan {
    /// Offset just past the record's line in [`Batch::bytes`].
    pub end: usize,
    /// Bytes of application output the record carries.
    pub app_bytes: u32,
    /// The record ends a line.
    pub ends_line: bool,
}

/// Encoded records and their boundaries, so the sink can write the batch in
/// one call yet split it at record boundaries for rotation or when the disk
/// refuses part of it.
#[derive(Debug)]
pub struct Batch {
    pub stream: Stream,
    /// The outlet the batch was last sent through, so the file writer
    /// returns it there.
    pub(crate) origin: usize,
    pub bytes: Vec<u8>,
    pub spans: Vec<RecordSpan>,
    total: Counts,
}

impl Batch {
    pub fn new(stream: Stream, capacity: usize) -> Batch {
        Batch {
            stream,
            origin: 0,
            bytes: Vec::with_capacity(capacity),
            spans: Vec::with_capacity(capacity / 64),
            total: Counts::default(),
        }
    }

    /// Notes that the bytes just appended to [`Batch::bytes`] are `record`.
    #[inline]
    pub fn push_encoded(&mut self, record: &Record<'_>) {
        let ends_line = record.tag == Tag::Full;
        self.spans.push(RecordSpan {
            end: self.bytes.len(),
            app_bytes: record.app_bytes,
            ends_line,
        });
        self.total
            .add(u64::from(record.app_bytes), u64::from(ends_line));
    }

    /// Appends records `range` of `other` (of the same stream).
    pub fn append_records(&mut self, other: &Batch, range: std::ops::Range<usize>) {
        if range.is_empty() {
            return;
        }
        let start = other.start_of(range.start);
        let shift = self.bytes.len() as isize - start as isize;
        self.bytes
            .extend_from_slice(&other.bytes[start..other.spans[range.end - 1].end]);
        for span in &other.spans[range] {
            self.spans.push(RecordSpan {
                end: (span.end as isize + shift) as usize,
                ..*span
            });
            self.total
                .add(u64::from(span.app_bytes), u64::from(span.ends_line));
        }
    }

    /// Bytes held by records from `first` on.
    pub fn bytes_from(&self, first: usize) -> usize {
        self.bytes.len() - self.start_of(first)
    }

    /// Appends a marker record of weir's own: no application bytes or lines.
    pub fn push_marker(&mut self, encoder: &Encoder, text: &str) {
        encoder.encode_marker(text, &mut self.bytes);
        self.spans.push(RecordSpan {
            end: self.bytes.len(),
            app_bytes: 0,
            ends_line: false,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Application bytes and lines in the whole batch.
    pub fn total(&self) -> Counts {
        self.total
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
        self.total = Counts::default();
    }

    /// Offset where record `index` starts.
    pub fn start_of(&self, index: usize) -> usize {
        if index == 0 {
            0
        } else {
            self.spans[index - 1].end
        }
    }

    /// Application bytes and lines of records `range`.
    pub fn counts(&self, range: std::ops::Range<usize>) -> Counts {
        if range == (0..self.spans.len()) {
            return self.total;
        }
        let mut counts = Counts::default();
        for span in &self.spans[range] {
            counts.add(u64::from(span.app_bytes), u64::from(span.ends_line));
        }
        counts
    }

    /// Number of whole records, from `first` on, that fit in `room` bytes.
    pub fn records_within(&self, first: usize, room: usize) -> usize {
        let limit = self.start_of(first).saturating_add(room);
        self.spans[first..].partition_point(|span| span.end <= limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_of(lines: &[&[u8]]) -> Batch {
        let mut batch = Batch::new(Stream::Stdout, 64);
        for line in lines {
            batch.bytes.extend_from_slice(line);
            batch.push_encoded(&Record {
                tag: Tag::Full,
                content: &line[..line.len() - 1],
                app_bytes: line.len() as u32,
            });
        }
        batch
    }

    #[test]
    fn splits_only_at_record_boundaries() {
        let batch = batch_of(&[b"aaaa\n", b"bb\n", b"cccccc\n"]);
        assert_eq!(batch.records_within(0, 4), 0);
        assert_eq!(batch.records_within(0, 5), 1);
        assert_eq!(batch.records_within(0, 9), 2);
        assert_eq!(batch.records_within(1, 3), 1);
        assert_eq!(batch.records_within(1, usize::MAX), 2);
        assert_eq!(batch.start_of(2), 8);
        assert_eq!(
            batch.counts(1..3),
            Counts {
                bytes: 10,
                lines: 2
            }
        );
        assert_eq!(
            batch.total(),
            Counts {
                bytes: 15,
                lines: 3
            }
        );
    }
}
