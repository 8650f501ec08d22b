//! The SQLite store's queries of spans and of usage (logs: `logs`).

use std::collections::BTreeMap;

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, params_from_iter};
use weir_agent::record::LogRecord;

use super::sources::{Allowed, Sources};
use crate::store::{
    MAX_LIMIT, MAX_TRACE_SPANS, Scope, SourceFilter, SourceUsage, Spans, StoredLog, TraceQuery,
    Usage,
};

/// A WHERE clause being built, with its parameters.
struct Filter {
    sql: String,
    values: Vec<Sql>,
}

impl Filter {
    fn new() -> Filter {
        Filter {
            sql: String::from(" WHERE 1"),
            values: Vec::new(),
        }
    }

    fn and(&mut self, condition: &str, values: impl IntoIterator<Item = Sql>) {
        self.sql.push_str(" AND ");
        self.sql.push_str(condition);
        self.values.extend(values);
    }
}

/// A stored record with its resource put back.
pub(super) fn stored(
    sources: &Sources,
    id: i64,
    source: i64,
    blob: &[u8],
) -> rusqlite::Result<StoredLog> {
    let mut record = LogRecord::decode(blob).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })?;
    let source = sources.get(source);
    if let Some(source) = &source {
        record.resource = source.resource.clone();
    }
    Ok(StoredLog {
        id,
        tenant: source.map(|s| s.tenant.clone()).unwrap_or_default(),
        record,
    })
}

pub fn services(
    connection: &Connection,
    sources: &Sources,
    scope: &Scope,
) -> rusqlite::Result<Vec<String>> {
    let mut names = std::collections::BTreeSet::new();
    let mut has_spans =
        connection.prepare_cached("SELECT 1 FROM span_names WHERE source = ?1 LIMIT 1")?;
    for (id, source) in sources.all() {
        if source.service.is_empty()
            || !scope.allows(&source.tenant)
            || names.contains(&source.service)
        {
            continue;
        }
        if has_spans.exists([id])? {
            names.insert(source.service.clone());
        }
    }
    Ok(names.into_iter().collect())
}

/// The distinct non-empty `column` (`name` or `remote_service`) of the
/// spans of `service`, sorted.
pub fn span_column(
    connection: &Connection,
    sources: &Sources,
    scope: &Scope,
    service: &str,
    column: &str,
) -> rusqlite::Result<Vec<String>> {
    let allowed = sources.of_service(scope, Some(&service.to_lowercase()));
    if allowed.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT DISTINCT {column} FROM span_names WHERE {column} != ''{} ORDER BY 1",
        allowed.sql("source")
    );
    let mut statement = connection.prepare(&sql)?;
    let names = statement.query_map([], |row| row.get(0))?;
    names.collect()
}

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
    let mut filter = Filter::new();
    filter.and(
        "start_ns BETWEEN ? AND ?",
        [Sql::Integer(query.from_ns), Sql::Integer(query.to_ns)],
    );
    filter.sql.push_str(&allowed.sql("source"));
    if let Some(name) = &query.span_name {
        filter.and("name = ?", [Sql::Text(name.to_lowercase())]);
    }
    if let Some(remote) = &query.remote_service {
        filter.and("remote_service = ?", [Sql::Text(remote.to_lowercase())]);
    }
    if let Some(min) = query.min_duration_us {
        filter.and(
            "duration_us >= ?",
            [Sql::Integer(min.min(i64::MAX as u64) as i64)],
        );
    }
    if let Some(max) = query.max_duration_us {
        filter.and(
            "duration_us <= ?",
            [Sql::Integer(max.min(i64::MAX as u64) as i64)],
        );
    }
    for (key, value) in &query.annotations {
        match value {
            Some(value) => filter.and(
                "id IN (SELECT span FROM span_tags WHERE key = ? AND value = ?)",
                [Sql::Text(key.clone()), Sql::Text(value.clone())],
            ),
            None => filter.and(
                "id IN (SELECT span FROM span_tags WHERE key = ?)",
                [Sql::Text(key.clone())],
            ),
        }
    }
    let sql = format!(
        "SELECT trace_id, max(start_ns) AS newest FROM spans{} GROUP BY trace_id ORDER BY newest DESC LIMIT {}",
        filter.sql,
        query.limit.clamp(1, MAX_LIMIT)
    );
    let ids: Vec<[u8; 16]> = {
        let mut statement = connection.prepare(&sql)?;
        let rows = statement.query_map(params_from_iter(&filter.values), |row| {
            let id: Vec<u8> = row.get(0)?;
            Ok(<[u8; 16]>::try_from(id.as_slice()).unwrap_or_default())
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    traces_by_id(connection, sources, &query.scope, &ids)
}

pub fn traces_by_id(
    connection: &Connection,
    sources: &Sources,
    scope: &Scope,
    ids: &[[u8; 16]],
) -> rusqlite::Result<Vec<Spans>> {
    let mut statement = connection.prepare_cached(
        "SELECT id, source, record FROM spans WHERE trace_id = ?1 ORDER BY start_ns, id LIMIT ?2",
    )?;
    let mut traces = Vec::new();
    for id in ids {
        let mut spans = Vec::new();
        let mut rows = statement.query(rusqlite::params![&id[..], MAX_TRACE_SPANS as i64])?;
        while let Some(row) = rows.next()? {
            let span = stored(
                sources,
                row.get(0)?,
                row.get(1)?,
                row.get_ref(2)?.as_blob()?,
            )?;
            if scope.allows(&span.tenant) {
                spans.push(span.record);
            }
        }
        if !spans.is_empty() {
            traces.push(spans);
        }
    }
    Ok(traces)
}

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
    let sql = format!(
        "SELECT id, source, record, trace_id FROM spans WHERE start_ns BETWEEN ?1 AND ?2{} LIMIT {max_spans}",
        allowed.sql("source")
    );
    let mut statement = connection.prepare(&sql)?;
    let mut rows = statement.query([from_ns, to_ns])?;
    let mut traces: BTreeMap<Vec<u8>, Spans> = BTreeMap::new();
    while let Some(row) = rows.next()? {
        let span = stored(
            sources,
            row.get(0)?,
            row.get(1)?,
            row.get_ref(2)?.as_blob()?,
        )?;
        traces.entry(row.get(3)?).or_default().push(span.record);
    }
    Ok(traces.into_values().collect())
}

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
    let scoped = match &allowed {
        Allowed::All => String::new(),
        Allowed::Only(_) => format!(
            " AND EXISTS (SELECT 1 FROM spans WHERE spans.id = span_tags.span{})",
            allowed.sql("spans.source")
        ),
    };
    let sql = format!(
        "SELECT DISTINCT value FROM span_tags WHERE key = ?1 AND value != ''{scoped} ORDER BY 1 LIMIT {limit}"
    );
    let mut statement = connection.prepare(&sql)?;
    let values = statement.query_map([key], |row| row.get(0))?;
    values.collect()
}

pub fn usage(
    connection: &Connection,
    sources: &Sources,
    filter: &SourceFilter,
    from_ns: i64,
    to_ns: i64,
    step_ns: i64,
) -> rusqlite::Result<Usage> {
    const MINUTE: i64 = 60_000_000_000;
    let step_ns = step_ns.max(MINUTE) / MINUTE * MINUTE;
    let from_ns = from_ns.div_euclid(MINUTE).saturating_mul(MINUTE);
    let buckets = ((to_ns - from_ns) / step_ns).clamp(0, 10_000) as usize + 1;
    let allowed = sources.allowed(filter);
    let mut by_source: BTreeMap<(String, String), SourceUsage> = BTreeMap::new();
    if allowed.is_empty() {
        return Ok(Usage {
            from_ns,
            step_ns,
            sources: Vec::new(),
        });
    }
    let sql = format!(
        "SELECT source, minute, bytes, records FROM usage
         WHERE minute >= ?1 AND minute < ?2{}",
        allowed.sql("source")
    );
    let mut statement = connection.prepare(&sql)?;
    let mut rows = statement.query([
        from_ns.div_euclid(MINUTE),
        to_ns.div_euclid(MINUTE).saturating_add(1),
    ])?;
    while let Some(row) = rows.next()? {
        let (source, minute, bytes, records): (i64, i64, i64, i64) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        let usage = usage_of(&mut by_source, sources, source, buckets);
        let bucket = ((minute * MINUTE - from_ns) / step_ns) as usize;
        if bucket < buckets {
            usage.bytes[bucket] += bytes as u64;
            usage.records[bucket] += records as u64;
        }
    }
    let sql = format!(
        "SELECT source, time_ns, reason, bytes FROM losses WHERE time_ns >= ?1 AND time_ns < ?2{}",
        allowed.sql("source")
    );
    let mut statement = connection.prepare(&sql)?;
    let mut rows = statement.query([from_ns, to_ns])?;
    while let Some(row) = rows.next()? {
        let (source, time, reason, bytes): (i64, i64, String, i64) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        let usage = usage_of(&mut by_source, sources, source, buckets);
        let bucket = ((time - from_ns) / step_ns) as usize;
        let slot = match usage.dropped.iter().position(|(r, _)| *r == reason) {
            Some(i) => i,
            None => {
                usage.dropped.push((reason, vec![0; buckets]));
                usage.dropped.len() - 1
            }
        };
        if bucket < buckets {
            usage.dropped[slot].1[bucket] += bytes.max(0) as u64;
        }
    }
    Ok(Usage {
        from_ns,
        step_ns,
        sources: by_source.into_values().collect(),
    })
}

/// The usage of `source`'s node and container, made on first sight.
fn usage_of<'a>(
    map: &'a mut BTreeMap<(String, String), SourceUsage>,
    sources: &Sources,
    source: i64,
    buckets: usize,
) -> &'a mut SourceUsage {
    let found = sources.get(source);
    let (node, container) = found
        .as_ref()
        .map(|s| (s.node.clone(), s.container.clone()))
        .unwrap_or_default();
    let stated = |key: &str| {
        found
            .as_ref()
            .and_then(|s| s.resource.iter().find(|(k, _)| k == key))
            .map(|(_, v)| v.to_string())
    };
    let (budget, policy) = (
        stated("weir.budget").and_then(|b| b.parse().ok()),
        stated("weir.policy"),
    );
    let usage = map
        .entry((node.clone(), container.clone()))
        .or_insert_with(|| SourceUsage {
            node,
            container,
            budget: None,
            policy: None,
            bytes: vec![0; buckets],
            records: vec![0; buckets],
            dropped: Vec::new(),
        });
    // A container run again under another budget: the latest source seen.
    if budget.is_some() {
        usage.budget = budget;
    }
    if policy.is_some() {
        usage.policy = policy;
    }
    usage
}
