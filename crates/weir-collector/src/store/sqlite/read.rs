//! The SQLite store's listings of services and names, and its usage
//! query (logs: `logs`, spans: `spans`).

use std::collections::BTreeMap;

use rusqlite::Connection;
use weir_agent::record::LogRecord;

use super::sources::Sources;
use crate::store::{Scope, SourceFilter, SourceUsage, StoredLog, Usage};

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
