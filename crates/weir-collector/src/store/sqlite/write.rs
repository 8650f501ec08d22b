//! Writing a batch into the SQLite store: one transaction, committed (and
//! so fsynced) before the batch is acknowledged.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, Transaction, params};
use weir_agent::record::{CompactString, LogRecord, Value};

use super::blocks::{BlockBuilder, ClosedBlock, Closing, Kind};
use super::spans::add_terms;
use crate::store::{container_of, node_of, tenant_of};

/// The writing connection and what it remembers between batches.
pub struct Writer {
    pub connection: Connection,
    scratch: Scratch,
}

struct Scratch {
    /// Source ids by their resource's encoded form.
    sources: HashMap<Vec<u8>, i64>,
    key: Vec<u8>,
    logs: Filling,
    spans: Filling,
    closing: Closing,
    /// `span_names` rows written already.
    names: HashSet<(i64, String, String)>,
}

/// The block of one kind being filled, and the id its next record gets.
struct Filling {
    block: BlockBuilder,
    /// Read from `counters` by the first batch.
    next_id: Option<i64>,
    /// Ids were given in this batch: `counters` must say so.
    gave_ids: bool,
}

impl Filling {
    fn new(kind: Kind) -> Filling {
        Filling {
            block: BlockBuilder::new(kind),
            next_id: None,
            gave_ids: false,
        }
    }

    /// The id the next record gets: past every id ever given, even those
    /// retention deleted since.
    fn next_id(&mut self, transaction: &Transaction<'_>) -> rusqlite::Result<i64> {
        if let Some(id) = self.next_id {
            return Ok(id);
        }
        let table = self.block.kind().table();
        let id = transaction.query_row(
            &format!(
                "SELECT max(
                     coalesce((SELECT value FROM counters WHERE name = 'next_{table}'), 1),
                     coalesce((SELECT last + 1 FROM {table}_blocks ORDER BY id DESC LIMIT 1), 1))"
            ),
            [],
            |row| row.get(0),
        )?;
        self.next_id = Some(id);
        Ok(id)
    }

    /// Adds `record` as the next record, closing the block once full.
    fn push(
        &mut self,
        transaction: &Transaction<'_>,
        source: u32,
        record: &LogRecord,
        duration_us: i64,
    ) -> rusqlite::Result<i64> {
        let id = self.next_id(transaction)?;
        self.next_id = Some(id + 1);
        self.gave_ids = true;
        self.block.push(id, source, record, duration_us);
        Ok(id)
    }

    /// Writes the block (if it holds records) and, if ids were given, the
    /// next one: retention may delete every block, and the ids they held
    /// must still never be given again.
    fn flush(
        &mut self,
        transaction: &Transaction<'_>,
        closing: &mut Closing,
    ) -> rusqlite::Result<()> {
        if !self.block.is_empty() {
            close_block(transaction, &mut self.block, closing)?;
        }
        if !std::mem::take(&mut self.gave_ids) {
            return Ok(());
        }
        transaction
            .prepare_cached(
                "INSERT INTO counters (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![
                format!("next_{}", self.block.kind().table()),
                self.next_id
            ])?;
        Ok(())
    }
}

impl Writer {
    pub fn new(connection: Connection) -> Writer {
        Writer {
            connection,
            scratch: Scratch {
                sources: HashMap::new(),
                key: Vec::new(),
                logs: Filling::new(Kind::Logs),
                spans: Filling::new(Kind::Spans),
                closing: Closing::default(),
                names: HashSet::new(),
            },
        }
    }

    /// Deletes the sources no record, usage or loss refers to any more
    /// (retention took the last of theirs), with their span names: every
    /// restart of a process can make a source (its pid is in the
    /// resource), and they would otherwise pile up for good. Says how many
    /// went.
    pub fn forget_unused_sources(&mut self) -> rusqlite::Result<u64> {
        let transaction = self.connection.unchecked_transaction()?;
        let mut used: HashSet<i64> = HashSet::new();
        for table in ["log_blocks", "span_blocks"] {
            let mut statement = transaction.prepare(&format!("SELECT sources FROM {table}"))?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let column = row.get_ref(0)?.as_blob()?;
                used.extend(super::blocks::sources(column).map(i64::from));
            }
        }
        for table in ["usage", "losses"] {
            let mut statement =
                transaction.prepare(&format!("SELECT DISTINCT source FROM {table}"))?;
            let ids = statement.query_map([], |row| row.get::<_, i64>(0))?;
            for id in ids {
                used.insert(id?);
            }
        }
        // The newest stays whatever: SQLite gives a new row the highest id
        // plus one, and a reader that knew the old row by that id would
        // take the new one for it (another tenant's, maybe).
        let unused: Vec<i64> = transaction
            .prepare("SELECT id FROM sources WHERE id < (SELECT max(id) FROM sources)")?
            .query_map([], |row| row.get::<_, i64>(0))?
            .filter(|id| id.as_ref().map_or(true, |id| !used.contains(id)))
            .collect::<rusqlite::Result<_>>()?;
        for id in &unused {
            transaction.execute("DELETE FROM span_names WHERE source = ?1", [id])?;
            transaction.execute("DELETE FROM sources WHERE id = ?1", [id])?;
        }
        if !unused.is_empty() {
            // Readers read their copy of the sources again whole.
            transaction.execute(
                "INSERT INTO counters (name, value) VALUES ('sources_forgotten', 1)
                 ON CONFLICT (name) DO UPDATE SET value = value + 1",
                [],
            )?;
        }
        transaction.commit()?;
        let unused: HashSet<i64> = unused.into_iter().collect();
        let scratch = &mut self.scratch;
        scratch.sources.retain(|_, id| !unused.contains(id));
        scratch
            .names
            .retain(|(source, _, _)| !unused.contains(source));
        Ok(unused.len() as u64)
    }

    /// Writes `records` in one transaction.
    pub fn append(&mut self, records: &[LogRecord]) -> rusqlite::Result<()> {
        let transaction = self.connection.unchecked_transaction()?;
        let written = write_all(&transaction, records, &mut self.scratch);
        match written.and_then(|()| transaction.commit()) {
            Ok(()) => Ok(()),
            Err(e) => {
                // What the rolled-back transaction inserted is gone.
                let scratch = &mut self.scratch;
                scratch.sources.clear();
                scratch.names.clear();
                scratch.logs = Filling::new(Kind::Logs);
                scratch.spans = Filling::new(Kind::Spans);
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
        key,
        logs,
        spans,
        closing,
        names,
    } = scratch;
    let mut usage: HashMap<(i64, i64), (i64, i64)> = HashMap::new();
    let mut insert_loss = transaction.prepare_cached(
        "INSERT INTO losses (log, time_ns, source, reason, lines, bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut last_source: Option<(&[(CompactString, CompactString)], u32)> = None;
    for record in records {
        let source = match last_source {
            Some((resource, id)) if resource == record.resource.as_slice() => id,
            _ => {
                let id = source_id(transaction, sources, key, record)?;
                let id = u32::try_from(id)
                    .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, id))?;
                last_source = Some((&record.resource, id));
                id
            }
        };
        if let Some(span) = &record.span {
            let duration_us = (span.end_ns.saturating_sub(record.time_ns) / 1000).max(0);
            let name = span.name.to_lowercase();
            let remote = crate::traces::remote_service(record).to_lowercase();
            spans.push(transaction, source, record, duration_us)?;
            add_terms(spans.block.words(), record, &name, &remote);
            let named = (i64::from(source), name, remote);
            if !names.contains(&named) {
                transaction
                    .prepare_cached(
                        "INSERT OR IGNORE INTO span_names (source, name, remote_service) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![named.0, named.1, named.2])?;
                names.insert(named);
            }
            if spans.block.is_full() {
                close_block(transaction, &mut spans.block, closing)?;
            }
            continue;
        }
        let id = logs.push(transaction, source, record, 0)?;
        logs.block.words().add(&record.body);
        let used = usage
            .entry((i64::from(source), record.time_ns.div_euclid(60_000_000_000)))
            .or_default();
        used.0 += record.body.len() as i64;
        used.1 += 1;
        if let Some((reason, lines, bytes)) = loss(record) {
            insert_loss.execute(params![id, record.time_ns, source, reason, lines, bytes])?;
        }
        if logs.block.is_full() {
            close_block(transaction, &mut logs.block, closing)?;
        }
    }
    logs.flush(transaction, closing)?;
    spans.flush(transaction, closing)?;
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
    let kind = block.kind();
    let table = kind.table();
    block.close(closing, |closed: &ClosedBlock<'_>| {
        match kind {
            Kind::Logs => transaction
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
                ])?,
            Kind::Spans => transaction
                .prepare_cached(
                    "INSERT INTO span_blocks (id, last, min_time, max_time, max_duration, sources, terms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    closed.first,
                    closed.last,
                    closed.min_time,
                    closed.max_time,
                    closed.max_duration,
                    closed.sources,
                    closed.words,
                ])?,
        };
        transaction
            .prepare_cached(&format!(
                "INSERT INTO {table}_records (block, traces, records) VALUES (?1, ?2, ?3)"
            ))?
            .execute(params![
                closed.first,
                closed.traces.as_flattened(),
                closed.records
            ])?;
        let mut index_trace = transaction.prepare_cached(&format!(
            "INSERT OR IGNORE INTO {table}_traces (trace_id, block) VALUES (?1, ?2)"
        ))?;
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
