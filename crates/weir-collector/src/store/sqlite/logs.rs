//! Log queries: a search reads the summaries of `log_blocks` (newest time
//! first, or in id order for a tail), skips every block that cannot hold a
//! match, and checks the records of the others one by one.

use std::ops::ControlFlow;

use rusqlite::types::Value as Sql;
use rusqlite::{CachedStatement, Connection, Row, params_from_iter};
use weir_agent::record::LogRecord;

use super::blocks::{self, BlockReader, Entry, Kind, damaged, severity_bit, stream_bit};
use super::read::stored;
use super::sources::{Allowed, Sources};
use crate::store::text::may_contain;
use crate::store::{Bucket, Cursor, LogPage, LogQuery, MAX_LIMIT, StoredLog, TailStep};

/// The most records one step of a live tail reads: a step that finds
/// fewer matches says where it stopped, and the next goes on from there.
const MAX_TAIL_READ: i64 = 20_000;

/// The id of the newest log record, 0 if there is none.
pub fn last_id(connection: &Connection) -> rusqlite::Result<i64> {
    connection.query_row(
        "SELECT coalesce((SELECT last FROM log_blocks ORDER BY id DESC LIMIT 1), 0)",
        [],
        |row| row.get(0),
    )
}

/// A block's summary: one row of `log_blocks`.
struct Block {
    first: i64,
    last: i64,
    min_time: i64,
    max_time: i64,
    streams: u32,
    severities: u32,
    sources: Vec<u8>,
    /// Its word filter, read only for a text search.
    words: Vec<u8>,
}

/// The columns [`Block::read`] reads, `words` last.
const BLOCK_COLUMNS: &str = "id, last, min_time, max_time, streams, severities, sources";

impl Block {
    fn read(row: &Row<'_>, with_words: bool) -> rusqlite::Result<Block> {
        Ok(Block {
            first: row.get(0)?,
            last: row.get(1)?,
            min_time: row.get(2)?,
            max_time: row.get(3)?,
            streams: row.get(4)?,
            severities: row.get(5)?,
            sources: row.get(6)?,
            words: if with_words { row.get(7)? } else { Vec::new() },
        })
    }
}

/// What a log query asks of a block and of each of its records.
struct Wanted<'a> {
    query: &'a LogQuery,
    allowed: &'a Allowed,
    /// Hashes of the words every matching body holds.
    words: Vec<u64>,
    /// Bits of `streams` and `severities` a matching record may have; of
    /// those, the severities whose records surely match.
    streams: u32,
    severities: u32,
    sure_severities: u32,
}

impl<'a> Wanted<'a> {
    fn new(query: &'a LogQuery, allowed: &'a Allowed) -> Wanted<'a> {
        let (severities, sure_severities) = match query.severity_at_most {
            None => (u32::MAX, u32::MAX),
            Some(most) => {
                let sure = (1u32 << (u32::from(most.min(7)) + 1)) - 1;
                let other = if most >= 8 {
                    severity_bit(Some(most))
                } else {
                    0
                };
                (sure | other, sure)
            }
        };
        Wanted {
            query,
            allowed,
            words: query
                .text
                .as_ref()
                .map(|t| t.word_hashes())
                .unwrap_or_default(),
            streams: query.stream.map_or(u32::MAX, stream_bit),
            severities,
            sure_severities,
        }
    }

    fn reads_words(&self) -> bool {
        !self.words.is_empty()
    }

    /// The blocks with records in `[from, upper]`, in `order`; with a
    /// trace id, only those that hold records of the trace.
    fn blocks<'c>(
        &self,
        connection: &'c Connection,
        from: i64,
        upper: i64,
        order: &str,
    ) -> rusqlite::Result<(CachedStatement<'c>, Vec<Sql>)> {
        let words = if self.reads_words() { ", words" } else { "" };
        let mut values = vec![Sql::Integer(from), Sql::Integer(upper)];
        let traced = match self.query.trace_id {
            Some(trace) => {
                values.push(Sql::Blob(trace.to_vec()));
                " AND id IN (SELECT block FROM log_traces WHERE trace_id = ?3)"
            }
            None => "",
        };
        let sql = format!(
            "SELECT {BLOCK_COLUMNS}{words} FROM log_blocks
             WHERE max_time >= ?1 AND min_time <= ?2{traced} ORDER BY {order}"
        );
        Ok((connection.prepare_cached(&sql)?, values))
    }

    /// Whether `block` may hold a matching record: by its streams,
    /// severities, sources and words.
    fn may_match(&self, block: &Block) -> bool {
        block.streams & self.streams != 0
            && block.severities & self.severities != 0
            && match self.allowed {
                Allowed::All => true,
                Allowed::Only(_) => {
                    blocks::sources(&block.sources).any(|s| self.allowed.contains(s.into()))
                }
            }
            && self.words.iter().all(|&h| may_contain(&block.words, h))
    }

    /// Whether every record of `block` matches, so that a count need not
    /// read them.
    fn takes_whole(&self, block: &Block) -> bool {
        self.query.text.is_none()
            && self.query.trace_id.is_none()
            && block.streams & !self.streams == 0
            && block.severities & !self.sure_severities == 0
            && block.min_time >= self.query.from_ns
            && block.max_time < self.query.to_ns
            && match self.allowed {
                Allowed::All => true,
                Allowed::Only(_) => {
                    blocks::sources(&block.sources).all(|s| self.allowed.contains(s.into()))
                }
            }
    }

    /// Whether a record's source and time are wanted.
    fn takes_entry(&self, entry: &Entry<'_>) -> bool {
        entry.time_ns >= self.query.from_ns
            && entry.time_ns < self.query.to_ns
            && self.allowed.contains(entry.source.into())
    }

    /// Whether the rest of a query needs a record's core decoded.
    fn reads_records(&self) -> bool {
        let q = self.query;
        q.stream.is_some()
            || q.severity_at_most.is_some()
            || q.trace_id.is_some()
            || q.text.is_some()
    }

    /// Whether a record (its core decoded) matches the rest of the query.
    fn takes_record(&self, record: &LogRecord) -> bool {
        let q = self.query;
        q.stream.is_none_or(|s| s == record.stream)
            && q.severity_at_most
                .is_none_or(|most| record.severity.is_some_and(|s| s <= most))
            && q.trace_id.is_none_or(|t| record.trace_id == Some(t))
            && q.text.as_ref().is_none_or(|t| t.matches(&record.body))
    }

    /// Whether the record in `entry` matches the whole query; `record` is
    /// scratch room for its core.
    fn matches(&self, entry: &Entry<'_>, record: &mut LogRecord) -> rusqlite::Result<bool> {
        if !self.takes_entry(entry) {
            return Ok(false);
        }
        if !self.reads_records() {
            return Ok(true);
        }
        record.decode_core_into(entry.record).map_err(damaged)?;
        Ok(self.takes_record(record))
    }
}

pub fn logs(
    connection: &Connection,
    sources: &Sources,
    query: &LogQuery,
) -> rusqlite::Result<LogPage> {
    let limit = query.limit.clamp(1, MAX_LIMIT);
    let allowed = sources.allowed(&query.sources);
    let upper = query
        .before
        .map_or(query.to_ns - 1, |c| c.time_ns.min(query.to_ns - 1));
    if allowed.is_empty() || upper < query.from_ns {
        return Ok(LogPage::default());
    }
    let wanted = Wanted::new(query, &allowed);
    let newest_first = |found: &mut Vec<StoredLog>| {
        found.sort_unstable_by_key(|r| std::cmp::Reverse((r.record.time_ns, r.id)));
        found.truncate(limit);
    };
    let (mut statement, values) =
        wanted.blocks(connection, query.from_ns, upper, "max_time DESC")?;
    let mut read_records = BlockReader::new(connection, Kind::Logs)?;
    let mut rows = statement.query(params_from_iter(&values))?;
    let mut found: Vec<StoredLog> = Vec::new();
    // The oldest record of a full page found so far: nothing older can
    // be on it.
    let mut floor: Option<(i64, i64)> = None;
    let mut record = LogRecord::default();
    while let Some(row) = rows.next()? {
        let block = Block::read(row, wanted.reads_words())?;
        if floor.is_some_and(|(time, _)| block.max_time < time) {
            // Blocks come newest time first: none left can do better.
            break;
        }
        if !wanted.may_match(&block) {
            continue;
        }
        read_records.each(block.first, |id, entry| {
            let place = (entry.time_ns, id);
            let newer = floor.is_none_or(|f| place > f);
            let on_page = query.before.is_none_or(|c| place < (c.time_ns, c.id));
            if newer && on_page && wanted.matches(&entry, &mut record)? {
                found.push(stored(sources, id, entry.source.into(), entry.record)?);
            }
            Ok(ControlFlow::Continue(()))
        })?;
        if found.len() >= limit {
            newest_first(&mut found);
            floor = found.last().map(|r| (r.record.time_ns, r.id));
        }
    }
    newest_first(&mut found);
    let next = (found.len() == limit).then(|| {
        let last = &found[limit - 1];
        Cursor {
            time_ns: last.record.time_ns,
            id: last.id,
        }
    });
    Ok(LogPage {
        records: found,
        next,
    })
}

pub fn logs_after(
    connection: &Connection,
    sources: &Sources,
    query: &LogQuery,
    after: i64,
) -> rusqlite::Result<TailStep> {
    // The newest record now: a step that stops short of the limit has
    // looked at everything up to it, matching or not, and the next step
    // starts there instead of reading the skipped records again.
    let newest = last_id(connection)?;
    let mut step = TailStep {
        read_to: after.max(newest),
        ..TailStep::default()
    };
    let allowed = sources.allowed(&query.sources);
    if allowed.is_empty() || newest <= after {
        return Ok(step);
    }
    let limit = query.limit.clamp(1, MAX_LIMIT);
    let wanted = Wanted::new(query, &allowed);
    let words = if wanted.reads_words() { ", words" } else { "" };
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {BLOCK_COLUMNS}{words} FROM log_blocks
         WHERE id >= (SELECT coalesce(max(id), 0) FROM log_blocks WHERE id <= ?1)
           AND id <= ?2 ORDER BY id"
    ))?;
    let mut read_records = BlockReader::new(connection, Kind::Logs)?;
    let mut rows = statement.query([after, newest])?;
    let mut read = 0;
    let mut record = LogRecord::default();
    while let Some(row) = rows.next()? {
        let block = Block::read(row, wanted.reads_words())?;
        let (from, to) = ((after + 1).max(block.first), block.last.min(newest));
        if from > to {
            continue;
        }
        let outside = block.max_time < query.from_ns || block.min_time >= query.to_ns;
        if outside || !wanted.may_match(&block) {
            read += to - from + 1;
            step.read_to = to;
        } else {
            read_records.each(block.first, |id, entry| {
                if id < from {
                    return Ok(ControlFlow::Continue(()));
                }
                if id > to {
                    return Ok(ControlFlow::Break(()));
                }
                read += 1;
                step.read_to = id;
                if wanted.matches(&entry, &mut record)? {
                    step.records
                        .push(stored(sources, id, entry.source.into(), entry.record)?);
                    if step.records.len() == limit {
                        return Ok(ControlFlow::Break(()));
                    }
                }
                Ok(ControlFlow::Continue(()))
            })?;
            if step.records.len() == limit {
                break;
            }
        }
        if read >= MAX_TAIL_READ {
            break;
        }
    }
    step.more = step.read_to < newest;
    Ok(step)
}

pub fn log_histogram(
    connection: &Connection,
    sources: &Sources,
    query: &LogQuery,
    step_ns: i64,
) -> rusqlite::Result<Vec<Bucket>> {
    let step_ns = step_ns.max(1);
    let buckets = ((query.to_ns - query.from_ns) / step_ns).clamp(0, 10_000) as usize + 1;
    let mut counts = vec![0u64; buckets];
    let allowed = sources.allowed(&query.sources);
    if !allowed.is_empty() && query.to_ns > query.from_ns {
        let wanted = Wanted::new(query, &allowed);
        let bucket = |time: i64| ((time - query.from_ns) / step_ns) as usize;
        let (mut statement, values) =
            wanted.blocks(connection, query.from_ns, query.to_ns - 1, "id")?;
        let mut read_records = BlockReader::new(connection, Kind::Logs)?;
        let mut rows = statement.query(params_from_iter(&values))?;
        let mut record = LogRecord::default();
        while let Some(row) = rows.next()? {
            let block = Block::read(row, wanted.reads_words())?;
            if !wanted.may_match(&block) {
                continue;
            }
            // A block within one bucket whose every record matches is
            // counted from its summary.
            if wanted.takes_whole(&block) && bucket(block.min_time) == bucket(block.max_time) {
                if let Some(slot) = counts.get_mut(bucket(block.min_time)) {
                    *slot += (block.last - block.first + 1) as u64;
                }
                continue;
            }
            read_records.each(block.first, |_, entry| {
                if wanted.matches(&entry, &mut record)?
                    && let Some(slot) = counts.get_mut(bucket(entry.time_ns))
                {
                    *slot += 1;
                }
                Ok(ControlFlow::Continue(()))
            })?;
        }
    }
    Ok(counts
        .into_iter()
        .enumerate()
        .map(|(i, count)| Bucket {
            start_ns: query.from_ns + i as i64 * step_ns,
            count,
        })
        .collect())
}
