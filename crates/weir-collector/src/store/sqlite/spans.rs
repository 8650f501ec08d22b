//! Span queries over the blocks of `span_blocks`/`span_records`. A block's
//! filter holds its spans' terms: each lowercased name (`n`) and remote
//! service (`r`), each tag key (`k`) and key=value pair (`v`), and each
//! annotation (`k`: `annotationQuery=error` finds an `error` tag or
//! annotation alike). A search asks it for every term the query names,
//! and checks the spans of the blocks that may hold them one by one.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::ControlFlow;

use rusqlite::{Connection, Row};
use weir_agent::record::{LogRecord, Value};

use super::blocks::{self, BlockReader, Kind, damaged};
use super::read::stored;
use super::sources::{Allowed, Sources};
use crate::store::text::{WordFilter, may_contain, term_hash};
use crate::store::{MAX_LIMIT, MAX_TRACE_SPANS, Scope, Spans, TraceQuery};

/// The most spans `autocompleteValues` reads, the newest first.
const MAX_VALUE_SPANS: i64 = 100_000;

/// Tags weir adds when it maps Zipkin and OTLP spans, not the sender's.
fn is_internal(key: &str) -> bool {
    key.starts_with("zipkin.") || key.starts_with("otel.")
}

fn text_of(value: &Value) -> Cow<'_, str> {
    match value {
        Value::Str(text) => Cow::Borrowed(text.as_str()),
        other => Cow::Owned(other.to_string()),
    }
}

/// Adds the terms of `span` (its name and remote service lowercased) to
/// its block's filter.
pub fn add_terms(filter: &mut WordFilter, span: &LogRecord, name: &str, remote: &str) {
    filter.add_term(&[b"n", name.as_bytes()]);
    filter.add_term(&[b"r", remote.as_bytes()]);
    for (key, value) in &span.attributes {
        if is_internal(key) {
            continue;
        }
        filter.add_term(&[b"k", key.as_bytes()]);
        filter.add_term(&[b"v", key.as_bytes(), text_of(value).as_bytes()]);
    }
    if let Some(fields) = &span.span {
        for event in &fields.events {
            filter.add_term(&[b"k", event.name.as_bytes()]);
        }
    }
}

/// Whether `span` has tag `key` (with `value`, if one is given), or with
/// no value an annotation `key`.
fn has_annotation(span: &LogRecord, key: &str, value: Option<&str>) -> bool {
    let tagged = span
        .attributes
        .iter()
        .any(|(k, v)| k == key && !is_internal(k) && value.is_none_or(|value| text_of(v) == value));
    tagged
        || value.is_none()
            && span
                .span
                .as_ref()
                .is_some_and(|f| f.events.iter().any(|e| e.name == key))
}

/// A block's summary: one row of `span_blocks`.
struct Block {
    first: i64,
    max_time: i64,
    max_duration: i64,
    sources: Vec<u8>,
    terms: Vec<u8>,
}

impl Block {
    const COLUMNS: &str = "id, max_time, max_duration, sources, terms";

    fn read(row: &Row<'_>) -> rusqlite::Result<Block> {
        Ok(Block {
            first: row.get(0)?,
            max_time: row.get(1)?,
            max_duration: row.get(2)?,
            sources: row.get(3)?,
            terms: row.get(4)?,
        })
    }

    fn has_source_of(&self, allowed: &Allowed) -> bool {
        matches!(allowed, Allowed::All)
            || blocks::sources(&self.sources).any(|s| allowed.contains(s.into()))
    }
}

/// The ids of the newest traces with a span that matches `query`, newest
/// first, then their spans.
pub fn traces(
    connection: &Connection,
    sources: &Sources,
    query: &TraceQuery,
) -> rusqlite::Result<Vec<Spans>> {
    let service = query.service.as_ref().map(|s| s.to_lowercase());
    let allowed = sources.of_service(&query.scope, service.as_deref());
    if allowed.is_empty() {
        return Ok(Vec::new());
    }
    let limit = query.limit.clamp(1, MAX_LIMIT);
    let name = query.span_name.as_ref().map(|n| n.to_lowercase());
    let remote = query.remote_service.as_ref().map(|r| r.to_lowercase());
    let mut terms = Vec::new();
    if let Some(name) = &name {
        terms.push(term_hash(&[b"n", name.as_bytes()]));
    }
    if let Some(remote) = &remote {
        terms.push(term_hash(&[b"r", remote.as_bytes()]));
    }
    for (key, value) in &query.annotations {
        terms.push(match value {
            Some(value) => term_hash(&[b"v", key.as_bytes(), value.as_bytes()]),
            None => term_hash(&[b"k", key.as_bytes()]),
        });
    }
    let min_duration = query
        .min_duration_us
        .map_or(0, |d| d.min(i64::MAX as u64) as i64);
    let max_duration = query
        .max_duration_us
        .map_or(i64::MAX, |d| d.min(i64::MAX as u64) as i64);
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {} FROM span_blocks WHERE max_time >= ?1 AND min_time <= ?2 ORDER BY max_time DESC",
        Block::COLUMNS
    ))?;
    let mut read_records = BlockReader::new(connection, Kind::Spans)?;
    let mut rows = statement.query([query.from_ns, query.to_ns])?;
    // Each matching trace's newest matching span's start.
    let mut newest: HashMap<[u8; 16], i64> = HashMap::new();
    // The start of the oldest trace on a full page: nothing older gets on.
    let mut floor: Option<i64> = None;
    let mut span = LogRecord::default();
    while let Some(row) = rows.next()? {
        let block = Block::read(row)?;
        if floor.is_some_and(|floor| block.max_time < floor) {
            break;
        }
        if block.max_duration < min_duration
            || !block.has_source_of(&allowed)
            || !terms.iter().all(|&t| may_contain(&block.terms, t))
        {
            continue;
        }
        read_records.each(block.first, |_, entry| {
            let wanted = (query.from_ns..=query.to_ns).contains(&entry.time_ns)
                && (min_duration..=max_duration).contains(&entry.duration_us)
                // A span at the floor's very start may still make its
                // trace win a tie (traces of one start go by id).
                && floor.is_none_or(|floor| entry.time_ns >= floor)
                && allowed.contains(entry.source.into());
            if !wanted {
                return Ok(ControlFlow::Continue(()));
            }
            span.decode_into(entry.record).map_err(damaged)?;
            let Some(fields) = &span.span else {
                return Ok(ControlFlow::Continue(()));
            };
            let matches = name
                .as_ref()
                .is_none_or(|n| fields.name.to_lowercase() == *n)
                && remote
                    .as_ref()
                    .is_none_or(|r| crate::traces::remote_service(&span).to_lowercase() == *r)
                && query
                    .annotations
                    .iter()
                    .all(|(k, v)| has_annotation(&span, k, v.as_deref()));
            if matches {
                let start = newest
                    .entry(span.trace_id.unwrap_or_default())
                    .or_insert(i64::MIN);
                *start = (*start).max(entry.time_ns);
            }
            Ok(ControlFlow::Continue(()))
        })?;
        if newest.len() >= limit {
            let mut starts: Vec<i64> = newest.values().copied().collect();
            starts.sort_unstable_by(|a, b| b.cmp(a));
            let kth = starts[limit - 1];
            newest.retain(|_, start| *start >= kth);
            floor = Some(kth);
        }
    }
    let mut ids: Vec<([u8; 16], i64)> = newest.into_iter().collect();
    ids.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ids.truncate(limit);
    let ids: Vec<[u8; 16]> = ids.into_iter().map(|(id, _)| id).collect();
    traces_by_id(connection, sources, &query.scope, &ids)
}

pub fn traces_by_id(
    connection: &Connection,
    sources: &Sources,
    scope: &Scope,
    ids: &[[u8; 16]],
) -> rusqlite::Result<Vec<Spans>> {
    let mut blocks_of =
        connection.prepare_cached("SELECT block FROM span_traces WHERE trace_id = ?1")?;
    let mut read_records = BlockReader::new(connection, Kind::Spans)?;
    let mut core = LogRecord::default();
    let mut traces = Vec::new();
    for id in ids {
        let blocks: Vec<i64> = blocks_of
            .query_map([&id[..]], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        // (start, id, span): a trace's spans in start order.
        let mut spans: Vec<(i64, i64, LogRecord)> = Vec::new();
        for block in blocks {
            read_records.each(block, |span_id, entry| {
                core.decode_core_into(entry.record).map_err(damaged)?;
                if core.trace_id != Some(*id) {
                    return Ok(ControlFlow::Continue(()));
                }
                let span = stored(sources, span_id, entry.source.into(), entry.record)?;
                if scope.allows(&span.tenant) {
                    spans.push((entry.time_ns, span_id, span.record));
                }
                Ok(ControlFlow::Continue(()))
            })?;
            if spans.len() > 2 * MAX_TRACE_SPANS {
                keep_first_spans(&mut spans);
            }
        }
        keep_first_spans(&mut spans);
        if !spans.is_empty() {
            traces.push(spans.into_iter().map(|(_, _, span)| span).collect());
        }
    }
    Ok(traces)
}

/// Sorts a trace's spans by start and keeps the first
/// [`MAX_TRACE_SPANS`].
fn keep_first_spans(spans: &mut Vec<(i64, i64, LogRecord)>) {
    spans.sort_unstable_by_key(|(start, id, _)| (*start, *id));
    spans.truncate(MAX_TRACE_SPANS);
}

/// The spans that start within `[from_ns, to_ns]`, by trace, up to
/// `max_spans` of them in arrival order.
pub fn spans_between(
    connection: &Connection,
    sources: &Sources,
    scope: &Scope,
    from_ns: i64,
    to_ns: i64,
    max_spans: usize,
) -> rusqlite::Result<Vec<Spans>> {
    let allowed = sources.of_service(scope, None);
    if allowed.is_empty() {
        return Ok(Vec::new());
    }
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {} FROM span_blocks WHERE max_time >= ?1 AND min_time <= ?2 ORDER BY id",
        Block::COLUMNS
    ))?;
    let mut read_records = BlockReader::new(connection, Kind::Spans)?;
    let mut rows = statement.query([from_ns, to_ns])?;
    let mut traces: BTreeMap<[u8; 16], Spans> = BTreeMap::new();
    let mut taken = 0;
    while let Some(row) = rows.next()? {
        let block = Block::read(row)?;
        if taken >= max_spans {
            break;
        }
        if !block.has_source_of(&allowed) {
            continue;
        }
        read_records.each(block.first, |id, entry| {
            if taken >= max_spans {
                return Ok(ControlFlow::Break(()));
            }
            if (from_ns..=to_ns).contains(&entry.time_ns) && allowed.contains(entry.source.into()) {
                let span = stored(sources, id, entry.source.into(), entry.record)?.record;
                traces
                    .entry(span.trace_id.unwrap_or_default())
                    .or_default()
                    .push(span);
                taken += 1;
            }
            Ok(ControlFlow::Continue(()))
        })?;
    }
    Ok(traces.into_values().collect())
}

/// The distinct values of tag `key` among the newest spans, sorted.
pub fn tag_values(
    connection: &Connection,
    sources: &Sources,
    scope: &Scope,
    key: &str,
    limit: usize,
) -> rusqlite::Result<Vec<String>> {
    let allowed = sources.of_service(scope, None);
    if allowed.is_empty() {
        return Ok(Vec::new());
    }
    let term = term_hash(&[b"k", key.as_bytes()]);
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {}, last FROM span_blocks ORDER BY id DESC",
        Block::COLUMNS
    ))?;
    let mut read_records = BlockReader::new(connection, Kind::Spans)?;
    let mut rows = statement.query([])?;
    let mut values = BTreeSet::new();
    let mut read = 0;
    let mut span = LogRecord::default();
    while let Some(row) = rows.next()? {
        let block = Block::read(row)?;
        let last: i64 = row.get(5)?;
        if read >= MAX_VALUE_SPANS {
            break;
        }
        read += last - block.first + 1;
        if !block.has_source_of(&allowed) || !may_contain(&block.terms, term) {
            continue;
        }
        read_records.each(block.first, |_, entry| {
            if allowed.contains(entry.source.into()) {
                span.decode_into(entry.record).map_err(damaged)?;
                for (k, v) in &span.attributes {
                    let value = text_of(v);
                    if k == key && !is_internal(k) && !value.is_empty() {
                        values.insert(value.into_owned());
                    }
                }
            }
            Ok(ControlFlow::Continue(()))
        })?;
    }
    Ok(values.into_iter().take(limit).collect())
}
