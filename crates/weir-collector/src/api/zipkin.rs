//! Zipkin's v2 query API, answered as Zipkin's own server does: names
//! lowercased and sorted, `endTs` and `lookback` in milliseconds and
//! durations in microseconds, the same 400 messages, 404 for a trace not
//! found, spans as stored (a client span and its shared server span apart).
//! One difference, where Zipkin leaves it open: every condition of a
//! `/traces` search must hold for one span, as its spec words it.

use std::collections::BTreeMap;

use hyper::Response;
use weir_agent::http_server::Body;
use weir_agent::zipkin;

use super::{Api, Asked, Failure, json};
use crate::store::{MAX_LIMIT, MAX_RANGE_NS, Spans, TraceQuery};
use crate::traces::dependencies;

/// Zipkin's default lookback: a day, in milliseconds.
const DEFAULT_LOOKBACK_MS: i64 = 86_400_000;

/// The most spans `/dependencies` links over.
const MAX_LINKED_SPANS: usize = 200_000;

/// The most values `/autocompleteValues` lists.
const MAX_VALUES: usize = 1000;

pub fn answer(api: &Api, endpoint: &str, asked: &Asked) -> Result<Response<Body>, Failure> {
    let store = api.store.as_ref();
    let params = &asked.params;
    let scope = &asked.scope;
    if let Some(id) = endpoint.strip_prefix("trace/") {
        let id = normalize_trace_id(id.trim()).map_err(Failure::bad_request)?;
        let found = store.traces_by_id(scope, &[id.bytes])?;
        return match found.first() {
            Some(spans) => Ok(json(&as_zipkin(spans))),
            None => Err(Failure::not_found(format!("{} not found", id.text))),
        };
    }
    match endpoint {
        "services" => Ok(json(&store.services(scope)?)),
        "spans" | "remoteServices" => {
            let service = params
                .required("serviceName")
                .map_err(Failure::bad_request)?;
            if service.is_empty() {
                return Ok(json(&Vec::<String>::new()));
            }
            let names = if endpoint == "spans" {
                store.span_names(scope, service)?
            } else {
                store.remote_services(scope, service)?
            };
            Ok(json(&names))
        }
        "traces" => {
            let query = trace_query(asked).map_err(Failure::bad_request)?;
            let traces = store.traces(&query)?;
            Ok(json(&traces.iter().map(as_zipkin).collect::<Vec<_>>()))
        }
        "traceMany" => {
            let ids = trace_ids(params.required("traceIds").map_err(Failure::bad_request)?)
                .map_err(Failure::bad_request)?;
            let traces = store.traces_by_id(scope, &ids)?;
            Ok(json(&traces.iter().map(as_zipkin).collect::<Vec<_>>()))
        }
        "dependencies" => {
            let end_ms: i64 = params
                .required("endTs")
                .and_then(|_| params.integer("endTs"))
                .map_err(Failure::bad_request)?
                .unwrap_or_default();
            let lookback_ms = params
                .integer("lookback")
                .map_err(Failure::bad_request)?
                .unwrap_or(DEFAULT_LOOKBACK_MS);
            check_window(end_ms, lookback_ms).map_err(Failure::bad_request)?;
            let traces = store.spans_between(
                scope,
                (end_ms - lookback_ms).saturating_mul(1_000_000),
                end_ms.saturating_mul(1_000_000),
                MAX_LINKED_SPANS,
            )?;
            let mut links = BTreeMap::new();
            dependencies::link(&traces, &mut links);
            Ok(json(&dependencies::list(links)))
        }
        "autocompleteKeys" => {
            let mut keys = api.autocomplete_keys.clone();
            keys.sort();
            Ok(json(&keys))
        }
        "autocompleteValues" => {
            let key = params.required("key").map_err(Failure::bad_request)?;
            if key.is_empty() {
                return Err(Failure::bad_request("key was empty"));
            }
            if !api.autocomplete_keys.iter().any(|k| k == key) {
                return Ok(json(&Vec::<String>::new()));
            }
            Ok(json(&store.tag_values(scope, key, MAX_VALUES)?))
        }
        _ => Err(Failure::not_found(format!("no /api/v2/{endpoint} here"))),
    }
}

fn as_zipkin(spans: &Spans) -> Vec<zipkin::Span> {
    spans.iter().filter_map(zipkin::from_record).collect()
}

/// `/api/v2/traces`'s parameters, checked as Zipkin checks them, and
/// bounded: at most [`MAX_LIMIT`] traces over at most 31 days.
fn trace_query(asked: &Asked) -> Result<TraceQuery, String> {
    let params = &asked.params;
    let end_ms = params.integer("endTs")?.unwrap_or_else(|| {
        weir_monitor::format::timestamp::Timestamp::now().as_nanos() as i64 / 1_000_000
    });
    let lookback_ms = params.integer("lookback")?.unwrap_or(DEFAULT_LOOKBACK_MS);
    check_window(end_ms, lookback_ms)?;
    let limit = params.integer("limit")?.unwrap_or(10);
    if limit <= 0 {
        return Err("limit <= 0".into());
    }
    if limit > MAX_LIMIT as i64 {
        return Err(format!("limit={limit}: at most {MAX_LIMIT}"));
    }
    let min = params.integer("minDuration")?;
    let max = params.integer("maxDuration")?;
    match (min, max) {
        (Some(min), _) if min <= 0 => return Err("minDuration <= 0".into()),
        (Some(min), Some(max)) if max < min => return Err("maxDuration < minDuration".into()),
        (None, Some(_)) => return Err("maxDuration is only valid with minDuration".into()),
        _ => {}
    }
    Ok(TraceQuery {
        min_duration_us: min.map(|m| m as u64),
        max_duration_us: max.map(|m| m as u64),
        from_ns: (end_ms - lookback_ms).saturating_mul(1_000_000),
        to_ns: end_ms.saturating_mul(1_000_000),
        limit: limit as usize,
        ..named_filters(asked)
    })
}

/// What a trace search asks for by name, as Zipkin reads it (the API and
/// the traces page alike): `serviceName`, `remoteServiceName` and
/// `spanName` (`all` for any) lowercased, and `annotationQuery`. The rest
/// is left for the caller: any duration, no time, no traces.
pub fn named_filters(asked: &Asked) -> TraceQuery {
    let params = &asked.params;
    let lower = |name: &str| params.text(name).map(str::to_lowercase);
    TraceQuery {
        scope: asked.scope.clone(),
        service: lower("serviceName"),
        remote_service: lower("remoteServiceName"),
        span_name: lower("spanName").filter(|n| n != "all"),
        annotations: params
            .text("annotationQuery")
            .map(annotation_query)
            .unwrap_or_default(),
        min_duration_us: None,
        max_duration_us: None,
        from_ns: 0,
        to_ns: 0,
        limit: 0,
    }
}

fn check_window(end_ms: i64, lookback_ms: i64) -> Result<(), String> {
    if end_ms <= 0 {
        return Err("endTs <= 0".into());
    }
    if lookback_ms <= 0 {
        return Err("lookback <= 0".into());
    }
    let max_ms = MAX_RANGE_NS / 1_000_000;
    if lookback_ms > max_ms {
        return Err(format!(
            "lookback={lookback_ms}: at most {max_ms} ms (31 days)"
        ));
    }
    Ok(())
}

/// Zipkin's `annotationQuery`: terms joined by ` and `; `key` matches an
/// annotation or a tag of that name, `key=value` a tag. A later `key=value`
/// overrides an earlier one; a bare `key` does not override.
fn annotation_query(text: &str) -> Vec<(String, Option<String>)> {
    let mut terms: Vec<(String, Option<String>)> = Vec::new();
    for part in text.split(" and ").take(100) {
        let (key, value) = match part.split_once('=') {
            Some((k, v)) if !v.trim().is_empty() => (k.trim(), Some(v.trim().to_owned())),
            Some((k, _)) => (k.trim(), None),
            None => (part.trim(), None),
        };
        if key.is_empty() {
            continue;
        }
        match terms.iter_mut().find(|(k, _)| k == key) {
            Some(term) if value.is_some() => term.1 = value,
            Some(_) => {}
            None => terms.push((key.to_owned(), value)),
        }
    }
    terms
}

/// A trace id as Zipkin normalises it, and its 128-bit form.
#[derive(Debug)]
pub(crate) struct TraceId {
    pub text: String,
    pub bytes: [u8; 16],
}

pub(crate) fn normalize_trace_id(id: &str) -> Result<TraceId, String> {
    if id.is_empty() {
        return Err("traceId is empty".into());
    }
    if id.len() > 32 {
        return Err("traceId.length > 32".into());
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!("{id} should be lower-hex encoded with no prefix"));
    }
    if id.bytes().all(|b| b == b'0') {
        return Err("traceId is all zeros".into());
    }
    let width = if id.len() <= 16 { 16 } else { 32 };
    let mut text = format!("{id:0>width$}");
    if text.len() == 32 && text[..16].bytes().all(|b| b == b'0') {
        text = text[16..].to_owned();
    }
    let bytes = weir_agent::zipkin::parse_id::<16>(&text)
        .ok_or_else(|| format!("{id} should be lower-hex encoded with no prefix"))?;
    Ok(TraceId { text, bytes })
}

fn trace_ids(list: &str) -> Result<Vec<[u8; 16]>, String> {
    if list.is_empty() {
        return Err("traceIds parameter is empty".into());
    }
    let mut ids: Vec<[u8; 16]> = Vec::new();
    if list.split(',').count() > MAX_LIMIT {
        return Err(format!("traceIds: at most {MAX_LIMIT} ids"));
    }
    for part in list.split(',') {
        let id = normalize_trace_id(part)?;
        if ids.contains(&id.bytes) {
            return Err(format!("redundant traceId: {part}"));
        }
        ids.push(id.bytes);
    }
    if ids.len() == 1 {
        return Err("Use /api/v2/trace/{traceId} endpoint to retrieve a single trace".into());
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_queries_parse_as_zipkin_parses_them() {
        assert_eq!(
            annotation_query("error and http.method=GET and  foo = bar "),
            [
                ("error".to_owned(), None),
                ("http.method".to_owned(), Some("GET".to_owned())),
                ("foo".to_owned(), Some("bar".to_owned())),
            ]
        );
        assert_eq!(
            annotation_query("k=1 and k and k=2"),
            [("k".to_owned(), Some("2".to_owned()))]
        );
        assert_eq!(annotation_query("a AND b"), [("a AND b".to_owned(), None)]);
    }

    #[test]
    fn trace_ids_normalise_as_zipkin_does() {
        assert_eq!(normalize_trace_id("abc").unwrap().text, "0000000000000abc");
        let long = normalize_trace_id("0000000000000000000000000000abcd").unwrap();
        assert_eq!(long.text, "000000000000abcd");
        assert_eq!(long.bytes[14..], [0xab, 0xcd]);
        assert_eq!(
            normalize_trace_id("1abc0000000000000").unwrap().text.len(),
            32
        );
        assert!(normalize_trace_id("ABC").unwrap_err().contains("lower-hex"));
        assert_eq!(
            normalize_trace_id("000").unwrap_err(),
            "traceId is all zeros"
        );
        assert_eq!(
            trace_ids("a").unwrap_err(),
            "Use /api/v2/trace/{traceId} endpoint to retrieve a single trace"
        );
        assert_eq!(trace_ids("a,0a").unwrap_err(), "redundant traceId: 0a");
    }
}
