//! Writing a batch into the SQLite store: one transaction, committed (and
//! so fsynced) before the batch is acknowledged.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, Transaction, params};
use weir_agent::record::{CompactString, LogRecord, Value};

use super::blocks::{BlockBuilder, ClosedBlock, Closing};
use crate::store::{container_of, node_of, tenant_of};

/// Tag values longer than this are not indexed for `annotationQuery`
/// `key=value` (their key is).
const MAX_INDEXED_TAG: usize = 256;

/// The writing connection and what it remembers between batches.
pub struct Writer {
    pub connection: Connection,
    scratch: Scratch,
}

#[derive(Default)]
struct Scratch {
    /// Source ids by their resource's encoded form.
    sources: HashMap<Vec<u8>, i64>,
    encoded: Vec<u8>,
    key: Vec<u8>,
    block: BlockBuilder,
    closing: Closing,
    /// The next log record's id, once read from `counters`.
    next_log: Option<i64>,
    /// `span_names` rows written already.
    names: HashSet<(i64, String, String)>,
}

impl Writer {
    pub fn new(connection: Connection) -> Writer {
        Writer {
            connection,
            scratch: Scratch::default(),
        }
    }

    /// Writes `records` in one transaction.
    pub fn append(&mut self, records: &[LogRecord]) -> rusqlite::Result<()> {
        let transaction = self.connection.unchecked_transaction()?;
        let written = write_all(&transaction, records, &mut self.scratch);
        match written.and_then(|()| transaction.commit()) {
            Ok(()) => Ok(()),
            Err(e) => {
                // What the rolled-back transaction inserted is gone.
                self.scratch.sources.clear();
                self.scratch.names.clear();
                self.scratch.next_log = None;
                self.scratch.block = BlockBuilder::default();
                Err(e)
            }
        }
    }
}

fn write_all(
    transaction: &Transaction<'_>,
    records: &[LogRecord],
    scratch: &mut Scratch,
) -> rusqlite::Result<()> {
    let Scratch {
        sources,
        encoded,
        key,
        block,
        closing,
        next_log,
        names,
    } = scratch;
    let first_log = match *next_log {
        Some(id) => id,
        None => transaction.query_row(
            "SELECT max(
                 coalesce((SELECT value FROM counters WHERE name = 'next_log'), 1),
                 coalesce((SELECT last + 1 FROM log_blocks ORDER BY id DESC LIMIT 1), 1))",
            [],
            |row| row.get(0),
        )?,
    };
    let mut next_id = first_log;
    let mut usage: HashMap<(i64, i64), (i64, i64)> = HashMap::new();
    let mut insert_span = transaction.prepare_cached(
        "INSERT INTO spans (source, trace_id, name, remote_service, start_ns, duration_us, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut insert_tag = transaction
        .prepare_cached("INSERT OR IGNORE INTO span_tags (key, value, span) VALUES (?1, ?2, ?3)")?;
    let mut insert_loss = transaction.prepare_cached(
        "INSERT INTO losses (log, time_ns, source, reason, lines, bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut last_source: Option<(&[(CompactString, CompactString)], i64)> = None;
    for record in records {
        let source = match last_source {
            Some((resource, id)) if resource == record.resource.as_slice() => id,
            _ => {
                let id = source_id(transaction, sources, key, record)?;
                last_source = Some((&record.resource, id));
                id
            }
        };
        if let Some(span) = &record.span {
            encoded.clear();
            record.encode_without_resource(encoded);
            let trace_id = record.trace_id.unwrap_or_default();
            let duration_us = (span.end_ns.saturating_sub(record.time_ns) / 1000).max(0);
            let name = span.name.to_lowercase();
            let remote = crate::traces::remote_service(record).to_lowercase();
            insert_span.execute(params![
                source,
                &trace_id[..],
                name,
                remote,
                record.time_ns,
                duration_us,
                &encoded[..],
            ])?;
            let id = transaction.last_insert_rowid();
            let named = (source, name, remote);
            if !names.contains(&named) {
                transaction
                    .prepare_cached(
                        "INSERT OR IGNORE INTO span_names (source, name, remote_service) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![named.0, named.1, named.2])?;
                names.insert(named);
            }
            for (key, value) in &record.attributes {
                if key.starts_with("zipkin.") || key.starts_with("otel.") {
                    continue;
                }
                let value = match value {
                    Value::Str(text) => Cow::Borrowed(text.as_str()),
                    other => Cow::Owned(other.to_string()),
                };
                // A long value (an exception's message) is not indexed,
                // but its key is: `annotationQuery=error` still finds it.
                let indexed = if value.len() <= MAX_INDEXED_TAG {
                    value.as_ref()
                } else {
                    ""
                };
                insert_tag.execute(params![key.as_str(), indexed, id])?;
            }
            for event in &span.events {
                if event.name.len() <= MAX_INDEXED_TAG {
                    insert_tag.execute(params![event.name, "", id])?;
                }
            }
            continue;
        }
        let id = next_id;
        next_id += 1;
        let source = u32::try_from(source)
            .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, source))?;
        block.push(id, source, record);
        let used = usage
            .entry((i64::from(source), record.time_ns.div_euclid(60_000_000_000)))
            .or_default();
        used.0 += record.body.len() as i64;
        used.1 += 1;
        if let Some((reason, lines, bytes)) = loss(record) {
            insert_loss.execute(params![id, record.time_ns, source, reason, lines, bytes])?;
        }
        if block.is_full() {
            close_block(transaction, block, closing)?;
        }
    }
    if !block.is_empty() {
        close_block(transaction, block, closing)?;
    }
    if next_id != first_log {
        transaction
            .prepare_cached(
                "INSERT INTO counters (name, value) VALUES ('next_log', ?1)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )?
            .execute([next_id])?;
    }
    *next_log = Some(next_id);
    let mut add_usage = transaction.prepare_cached(
        "INSERT INTO usage (source, minute, bytes, records) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (source, minute) DO UPDATE SET
             bytes = bytes + excluded.bytes, records = records + excluded.records",
    )?;
    for ((source, minute), (bytes, records)) in usage {
        add_usage.execute(params![source, minute, bytes, records])?;
    }
    Ok(())
}

/// Writes the block being filled, and empties it.
fn close_block(
    transaction: &Transaction<'_>,
    block: &mut BlockBuilder,
    closing: &mut Closing,
) -> rusqlite::Result<()> {
    block.close(closing, |closed: &ClosedBlock<'_>| {
        transaction
            .prepare_cached(
                "INSERT INTO log_blocks (id, last, min_time, max_time, streams, severities, sources, words)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                closed.first,
                closed.last,
                closed.min_time,
                closed.max_time,
                closed.streams,
                closed.severities,
                closed.sources,
                closed.words,
            ])?;
        transaction
            .prepare_cached("INSERT INTO log_records (block, traces, records) VALUES (?1, ?2, ?3)")?
            .execute(params![
                closed.first,
                closed.traces.as_flattened(),
                closed.records
            ])?;
        let mut index_trace = transaction
            .prepare_cached("INSERT OR IGNORE INTO log_traces (trace_id, block) VALUES (?1, ?2)")?;
        for trace in closed.traces {
            index_trace.execute(params![&trace[..], closed.first])?;
        }
        Ok(())
    })
}

/// The id of `record`'s source, inserted if it is new.
fn source_id(
    transaction: &Transaction<'_>,
    sources: &mut HashMap<Vec<u8>, i64>,
    key: &mut Vec<u8>,
    record: &LogRecord,
) -> rusqlite::Result<i64> {
    key.clear();
    encode_resource(&record.resource, key);
    if let Some(id) = sources.get(key.as_slice()) {
        return Ok(*id);
    }
    transaction
        .prepare_cached(
            "INSERT OR IGNORE INTO sources (tenant, node, container, service, resource)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            tenant_of(record),
            node_of(record),
            container_of(record),
            record.resource("service.name").unwrap_or("").to_lowercase(),
            &key[..],
        ])?;
    let id: i64 = transaction
        .prepare_cached("SELECT id FROM sources WHERE resource = ?1")?
        .query_row([&key[..]], |row| row.get(0))?;
    sources.insert(key.clone(), id);
    Ok(id)
}

/// A resource's pairs, each length-prefixed: the key of `sources`.
pub fn encode_resource(resource: &[(CompactString, CompactString)], out: &mut Vec<u8>) {
    for (key, value) in resource {
        for part in [key.as_bytes(), value.as_bytes()] {
            out.extend_from_slice(&(part.len() as u32).to_le_bytes());
            out.extend_from_slice(part);
        }
    }
}

/// A resource back from [`encode_resource`]; None if it is damaged.
pub fn decode_resource(mut bytes: &[u8]) -> Option<Vec<(CompactString, CompactString)>> {
    let take = |bytes: &mut &[u8]| -> Option<CompactString> {
        let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let text = std::str::from_utf8(bytes.get(4..4 + len)?).ok()?;
        *bytes = &bytes[4 + len..];
        Some(text.into())
    };
    let mut pairs = Vec::new();
    while !bytes.is_empty() {
        let key = take(&mut bytes)?;
        let value = take(&mut bytes)?;
        pairs.push((key, value));
    }
    Some(pairs)
}

/// What a loss record says was lost: reason, lines, bytes.
fn loss(record: &LogRecord) -> Option<(&str, i64, i64)> {
    let mut reason = None;
    let (mut lines, mut bytes) = (0, 0);
    for (key, value) in &record.attributes {
        match (key.as_str(), value) {
            ("weir.loss.reason", Value::Str(s)) => reason = Some(s.as_str()),
            ("weir.loss.lines", Value::Int(n)) => lines = *n,
            ("weir.loss.bytes", Value::Int(n)) => bytes = *n,
            _ => {}
        }
    }
    Some((reason?, lines, bytes))
}
