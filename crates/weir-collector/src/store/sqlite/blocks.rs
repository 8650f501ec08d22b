//! Log records and spans are stored in blocks of up to [`MAX_RECORDS`]
//! consecutive records: one row of `log_blocks` (`span_blocks`) says what
//! a block holds (its ids, time span, sources, a filter of its words or
//! terms, and for logs their streams and severities, for spans their
//! longest duration), one row of `log_records` (`span_records`) holds the
//! records and the trace ids among them. A query reads the summaries and
//! opens only the blocks that may hold a match. One row a block instead of
//! one a record (and two or more index entries a record) is what lets the
//! store take hundreds of thousands of records a second on one core.
//!
//! The records of a block, one after another, each as: its source (u32),
//! the length of its encoded form (u32), its time (i64) and for a span its
//! duration in microseconds (i64), little-endian, then the record in weir's
//! binary form without its resource. Record `i` of a block has id
//! `block id + i`.

use std::ops::ControlFlow;

use rusqlite::{CachedStatement, Connection};
use weir_agent::record::{LogRecord, Stream};

use crate::store::text::WordFilter;

/// The most records in a block.
pub const MAX_RECORDS: usize = 256;

/// A block is closed once its records take this many bytes.
const MAX_BYTES: usize = 256 << 10;

/// What a block holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    #[default]
    Logs,
    Spans,
}

impl Kind {
    /// The bytes before each record's encoded form.
    fn header(self) -> usize {
        match self {
            Kind::Logs => 16,
            Kind::Spans => 24,
        }
    }

    /// The prefix of its tables' names.
    pub fn table(self) -> &'static str {
        match self {
            Kind::Logs => "log",
            Kind::Spans => "span",
        }
    }
}

/// The bit of `stream` in a block's `streams`.
pub fn stream_bit(stream: Stream) -> u32 {
    match stream {
        Stream::Stdout => 1,
        Stream::Stderr => 2,
        Stream::Other => 4,
    }
}

/// The bit of `severity` in a block's `severities`: one per RFC 5424
/// level, one for any other number, one for none.
pub fn severity_bit(severity: Option<u8>) -> u32 {
    match severity {
        Some(level @ 0..=7) => 1 << level,
        Some(_) => 1 << 8,
        None => 1 << 9,
    }
}

/// The block being filled.
#[derive(Default)]
pub struct BlockBuilder {
    kind: Kind,
    /// The id of its first record.
    pub first: i64,
    pub count: usize,
    pub min_time: i64,
    pub max_time: i64,
    pub streams: u32,
    pub severities: u32,
    pub max_duration: i64,
    sources: Vec<u32>,
    traces: Vec<[u8; 16]>,
    records: Vec<u8>,
    words: WordFilter,
}

/// A closed block's columns, for `log_blocks` and `log_records`.
pub struct ClosedBlock<'a> {
    pub first: i64,
    pub last: i64,
    pub min_time: i64,
    pub max_time: i64,
    pub streams: u32,
    pub severities: u32,
    pub max_duration: i64,
    pub sources: &'a [u8],
    pub words: &'a [u8],
    /// The distinct trace ids, 16 bytes each.
    pub traces: &'a [[u8; 16]],
    pub records: &'a [u8],
}

/// What [`BlockBuilder::close`] writes into, kept between blocks.
#[derive(Default)]
pub struct Closing {
    sources: Vec<u8>,
    words: Vec<u8>,
}

impl BlockBuilder {
    pub fn new(kind: Kind) -> BlockBuilder {
        BlockBuilder {
            kind,
            ..BlockBuilder::default()
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The filter of the block's words (of a span: its terms), which the
    /// caller fills.
    pub fn words(&mut self) -> &mut WordFilter {
        &mut self.words
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn is_full(&self) -> bool {
        self.count >= MAX_RECORDS || self.records.len() >= MAX_BYTES
    }

    /// Adds `record` of `source` as record `id`, which must follow the
    /// block's last (or start it); a span with its duration.
    pub fn push(&mut self, id: i64, source: u32, record: &LogRecord, duration_us: i64) {
        if self.count == 0 {
            self.first = id;
            self.min_time = record.time_ns;
            self.max_time = record.time_ns;
        }
        debug_assert_eq!(id, self.first + self.count as i64);
        self.count += 1;
        self.min_time = self.min_time.min(record.time_ns);
        self.max_time = self.max_time.max(record.time_ns);
        self.streams |= stream_bit(record.stream);
        self.severities |= severity_bit(record.severity);
        if !self.sources.contains(&source) {
            self.sources.push(source);
        }
        if let Some(trace) = record.trace_id
            && !self.traces.contains(&trace)
        {
            self.traces.push(trace);
        }
        self.max_duration = self.max_duration.max(duration_us);
        let start = self.records.len();
        self.records.extend_from_slice(&source.to_le_bytes());
        self.records.extend_from_slice(&[0; 4]);
        self.records
            .extend_from_slice(&record.time_ns.to_le_bytes());
        if self.kind == Kind::Spans {
            self.records.extend_from_slice(&duration_us.to_le_bytes());
        }
        record.encode_without_resource(&mut self.records);
        let len = (self.records.len() - start - self.kind.header()) as u32;
        self.records[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
    }

    /// The block's columns; the builder is empty again once `write`
    /// returns.
    pub fn close<T>(
        &mut self,
        closing: &mut Closing,
        write: impl FnOnce(&ClosedBlock<'_>) -> T,
    ) -> T {
        closing.sources.clear();
        self.sources.sort_unstable();
        for source in &self.sources {
            closing.sources.extend_from_slice(&source.to_le_bytes());
        }
        closing.words.clear();
        self.words.finish(&mut closing.words);
        let written = write(&ClosedBlock {
            first: self.first,
            last: self.first + self.count as i64 - 1,
            min_time: self.min_time,
            max_time: self.max_time,
            streams: self.streams,
            severities: self.severities,
            max_duration: self.max_duration,
            sources: &closing.sources,
            words: &closing.words,
            traces: &self.traces,
            records: &self.records,
        });
        self.count = 0;
        self.streams = 0;
        self.severities = 0;
        self.max_duration = 0;
        self.sources.clear();
        self.traces.clear();
        self.records.clear();
        written
    }
}

/// The sources of a block, from its `sources` column.
pub fn sources(column: &[u8]) -> impl Iterator<Item = u32> + '_ {
    column
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// One record of a block.
pub struct Entry<'a> {
    /// Its place in the block: its id less the block's.
    pub index: i64,
    pub source: u32,
    pub time_ns: i64,
    /// A span's duration in microseconds (0 for a log record).
    pub duration_us: i64,
    /// Its binary form, without the resource.
    pub record: &'a [u8],
}

/// The records of a block's `records` column; an error says where it is
/// damaged, and ends the iteration.
pub fn entries(column: &[u8], kind: Kind) -> Entries<'_> {
    Entries {
        rest: column,
        kind,
        index: 0,
    }
}

pub struct Entries<'a> {
    rest: &'a [u8],
    kind: Kind,
    index: i64,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let Some((header, rest)) = self.rest.split_at_checked(self.kind.header()) else {
            return Some(Err(self.damaged()));
        };
        let word = |at: usize| {
            let mut bytes = [0; 4];
            bytes.copy_from_slice(&header[at..at + 4]);
            u32::from_le_bytes(bytes)
        };
        let long = |at: usize| {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(&header[at..at + 8]);
            i64::from_le_bytes(bytes)
        };
        let Some((record, rest)) = rest.split_at_checked(word(4) as usize) else {
            return Some(Err(self.damaged()));
        };
        let entry = Entry {
            index: self.index,
            source: word(0),
            time_ns: long(8),
            duration_us: match self.kind {
                Kind::Logs => 0,
                Kind::Spans => long(16),
            },
            record,
        };
        self.rest = rest;
        self.index += 1;
        Some(Ok(entry))
    }
}

impl Entries<'_> {
    fn damaged(&mut self) -> String {
        let at = self.index;
        self.rest = &[];
        format!("a block of records is damaged at its record {at}")
    }
}

/// How many records the blocks of `kind` hold.
pub fn count(connection: &Connection, kind: Kind) -> rusqlite::Result<u64> {
    connection.query_row(
        &format!(
            "SELECT coalesce(sum(last - id + 1), 0) FROM {}_blocks",
            kind.table()
        ),
        [],
        |row| row.get(0),
    )
}

/// Reads the records of blocks of one kind, a block at a time.
pub struct BlockReader<'c> {
    statement: CachedStatement<'c>,
    kind: Kind,
}

impl<'c> BlockReader<'c> {
    pub fn new(connection: &'c Connection, kind: Kind) -> rusqlite::Result<BlockReader<'c>> {
        Ok(BlockReader {
            statement: connection.prepare_cached(&format!(
                "SELECT records FROM {}_records WHERE block = ?1",
                kind.table()
            ))?,
            kind,
        })
    }

    /// Calls `visit` with the id and entry of each record of block
    /// `first`, in id order, until it breaks.
    pub fn each(
        &mut self,
        first: i64,
        mut visit: impl FnMut(i64, Entry<'_>) -> rusqlite::Result<ControlFlow<()>>,
    ) -> rusqlite::Result<()> {
        let mut rows = self.statement.query([first])?;
        let Some(row) = rows.next()? else {
            return Ok(());
        };
        for entry in entries(row.get_ref(0)?.as_blob()?, self.kind) {
            let entry = entry.map_err(damaged)?;
            if visit(first + entry.index, entry)?.is_break() {
                break;
            }
        }
        Ok(())
    }
}

/// A damaged block or record, as the error of the query that read it.
pub fn damaged(error: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Blob,
        error.to_string().into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(time_ns: i64, body: &str, trace: Option<u8>) -> LogRecord {
        LogRecord {
            time_ns,
            body: body.as_bytes().to_vec(),
            stream: Stream::Stderr,
            severity: Some(3),
            trace_id: trace.map(|t| [t; 16]),
            ..LogRecord::default()
        }
    }

    #[test]
    fn a_block_gives_back_its_records_and_says_what_it_holds() {
        let mut block = BlockBuilder::new(Kind::Logs);
        let mut closing = Closing::default();
        let records = [
            record(30, "first line", Some(1)),
            record(10, "second", None),
            record(20, "", Some(1)),
        ];
        for (i, r) in records.iter().enumerate() {
            block.push(100 + i as i64, [7, 3, 7][i], r, 0);
        }
        assert!(!block.is_full());
        block.close(&mut closing, |closed| {
            assert_eq!((closed.first, closed.last), (100, 102));
            assert_eq!((closed.min_time, closed.max_time), (10, 30));
            assert_eq!(closed.streams, stream_bit(Stream::Stderr));
            assert_eq!(closed.severities, 1 << 3);
            assert_eq!(sources(closed.sources).collect::<Vec<_>>(), [3, 7]);
            assert_eq!(closed.traces, [[1; 16]]);
            let back: Vec<Entry<'_>> = entries(closed.records, Kind::Logs)
                .map(Result::unwrap)
                .collect();
            assert_eq!(back.len(), 3);
            for (entry, (i, original)) in back.iter().zip(records.iter().enumerate()) {
                assert_eq!(entry.index, i as i64);
                assert_eq!(entry.time_ns, original.time_ns);
                assert_eq!(LogRecord::decode(entry.record).unwrap(), *original);
            }
        });
        assert!(block.is_empty());
        block.push(103, 1, &record(5, "next", None), 0);
        block.close(&mut closing, |closed| {
            assert_eq!((closed.first, closed.last, closed.min_time), (103, 103, 5));
            assert_eq!(closed.traces.len(), 0);
        });
    }

    #[test]
    fn a_span_block_keeps_durations() {
        let mut block = BlockBuilder::new(Kind::Spans);
        block.push(1, 2, &record(50, "a", None), 700);
        block.push(2, 2, &record(40, "b", None), 9);
        block.close(&mut Closing::default(), |closed| {
            assert_eq!(closed.max_duration, 700);
            let back: Vec<(i64, i64)> = entries(closed.records, Kind::Spans)
                .map(|e| e.map(|e| (e.time_ns, e.duration_us)).unwrap())
                .collect();
            assert_eq!(back, [(50, 700), (40, 9)]);
        });
    }

    #[test]
    fn a_damaged_block_is_an_error_not_a_panic() {
        let mut block = BlockBuilder::new(Kind::Logs);
        block.push(1, 1, &record(1, "hello", None), 0);
        let mut bytes = Vec::new();
        block.close(&mut Closing::default(), |closed| {
            bytes = closed.records.to_vec()
        });
        for cut in 0..bytes.len() {
            let back: Vec<_> = entries(&bytes[..cut], Kind::Logs).collect();
            assert!(back.iter().all(|e| e.is_err()) && back.len() == usize::from(cut > 0));
        }
    }
}
