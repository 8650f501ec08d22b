//! The traces pages: a search by service, operation, duration and tags;
//! a trace's waterfall (spans nested under their parents on one timeline,
//! each opening onto its tags and events, errors in red); and the graph of
//! which service calls which.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use weir_agent::record::{LogRecord, SpanKind, Value};

use super::html::{self, esc, url};
use super::logs::select;
use super::{Page, lookback_ns, lookback_picker};
use crate::api::zipkin::{TraceId, named_filters, normalize_trace_id};
use crate::api::{Asked, Failure};
use crate::store::{MAX_LIMIT, MAX_TRACE_SPANS, Store, TraceQuery};
use crate::traces::{dependencies, is_error};

/// The most spans the dependency graph is drawn from: about 100 ms of
/// reading on a 2-core machine, so the page stays quick; the page says when
/// there were more.
const MAX_LINKED_SPANS: usize = 50_000;

pub fn search(store: &dyn Store, asked: &Asked, now_ns: i64) -> Result<Page, Failure> {
    let params = &asked.params;
    let lookback = lookback_ns(params, "1h").map_err(Failure::bad_request)?;
    let limit = params
        .integer("limit")
        .map_err(Failure::bad_request)?
        .unwrap_or(20);
    if !(1..=MAX_LIMIT as i64).contains(&limit) {
        return Err(Failure::bad_request(format!(
            "limit={limit}: expected 1 to {MAX_LIMIT}"
        )));
    }
    let duration_us = |name: &str| {
        params
            .duration_ns(name)
            .map(|d| d.map(|ns| (ns / 1000).max(0) as u64))
            .map_err(Failure::bad_request)
    };
    let (min_duration_us, max_duration_us) =
        (duration_us("minDuration")?, duration_us("maxDuration")?);
    let services = store.services(&asked.scope)?;
    let query = TraceQuery {
        min_duration_us,
        max_duration_us,
        from_ns: now_ns - lookback.1,
        to_ns: now_ns,
        limit: limit as usize,
        ..named_filters(asked)
    };
    let service = query.service.clone();
    let traces = store.traces(&query)?;
    let mut body = String::from("<h1>Traces</h1>");
    let value = |name: &str| esc(params.text(name).unwrap_or("")).to_string();
    body.push_str("<form class=\"search\" method=\"get\" action=\"/traces\">");
    let options: Vec<(&str, &str)> = std::iter::once(("", "all services"))
        .chain(services.iter().map(|s| (s.as_str(), s.as_str())))
        .collect();
    select(
        &mut body,
        "serviceName",
        service.as_deref().unwrap_or(""),
        &options,
    );
    let _ = write!(
        body,
        "<label>operation <input name=\"spanName\" value=\"{}\" size=\"18\"></label>\
         <label>calls <input name=\"remoteServiceName\" value=\"{}\" placeholder=\"remote service\" size=\"14\"></label>\
         <label>tags <input name=\"annotationQuery\" value=\"{}\" placeholder=\"error and http.status_code=500\" size=\"28\"></label>\
         <label>min duration <input name=\"minDuration\" value=\"{}\" placeholder=\"100ms\" size=\"7\"></label>\
         <label>max duration <input name=\"maxDuration\" value=\"{}\" placeholder=\"2s\" size=\"7\"></label>\
         <label>limit <input name=\"limit\" value=\"{limit}\" size=\"4\"></label>\
         <input type=\"hidden\" name=\"lookback\" value=\"{}\"><button type=\"submit\">Find traces</button></form>",
        value("spanName"),
        value("remoteServiceName"),
        value("annotationQuery"),
        value("minDuration"),
        value("maxDuration"),
        lookback.0,
    );
    let keep: Vec<(&str, &str)> = [
        "serviceName",
        "spanName",
        "remoteServiceName",
        "annotationQuery",
        "minDuration",
        "maxDuration",
    ]
    .iter()
    .filter_map(|k| params.text(k).map(|v| (*k, v)))
    .collect();
    body.push_str(&lookback_picker("/traces", lookback.0, &keep));
    if traces.is_empty() {
        body.push_str("<p class=\"empty\">No trace matches in this time.</p>");
        return Ok(Page::new("Traces", "/traces", body));
    }
    let summaries: Vec<Summary> = traces.iter().filter_map(|t| summary(t)).collect();
    let longest = summaries
        .iter()
        .map(|s| s.duration_us)
        .max()
        .unwrap_or(1)
        .max(1);
    body.push_str(
        "<table class=\"traces\"><thead><tr><th>start (UTC)</th><th>root</th><th class=\"n\">spans</th>\
         <th>services</th><th class=\"n\">duration</th><th></th></tr></thead><tbody>",
    );
    for s in &summaries {
        let _ = write!(
            body,
            "<tr{}><td class=\"t\">{}</td><td><a href=\"/traces/{}\">{}: {}</a>{}</td><td class=\"n\">{}</td>\
             <td>{}</td><td class=\"n\">{}</td><td class=\"durbar\"><span style=\"width:{:.1}%\"></span></td></tr>",
            if s.errors > 0 { " class=\"err\"" } else { "" },
            html::time(s.start_ns),
            s.id,
            esc(&s.root_service),
            esc(&s.root_name),
            if s.errors > 0 {
                format!(" <span class=\"badge\">{} errors</span>", s.errors)
            } else {
                String::new()
            },
            s.spans,
            esc(&s.services.iter().cloned().collect::<Vec<_>>().join(", ")),
            html::duration_us(s.duration_us),
            100.0 * s.duration_us as f64 / longest as f64,
        );
    }
    body.push_str("</tbody></table>");
    Ok(Page::new("Traces", "/traces", body))
}

/// What the search list shows of a trace.
struct Summary {
    id: String,
    start_ns: i64,
    duration_us: i64,
    root_service: String,
    root_name: String,
    spans: usize,
    errors: usize,
    services: BTreeSet<String>,
}

fn summary(spans: &[LogRecord]) -> Option<Summary> {
    let first = spans.first()?;
    let ids: BTreeSet<[u8; 8]> = spans.iter().filter_map(|s| s.span_id).collect();
    let root = spans
        .iter()
        .filter(|s| {
            s.span
                .as_ref()
                .and_then(|f| f.parent_span_id)
                .is_none_or(|p| !ids.contains(&p))
        })
        .min_by_key(|s| s.time_ns)
        .unwrap_or(first);
    let start_ns = spans.iter().map(|s| s.time_ns).min()?;
    let end_ns = spans.iter().map(end_of).max()?;
    Some(Summary {
        id: html::hex(&first.trace_id.unwrap_or_default()),
        start_ns,
        duration_us: (end_ns - start_ns) / 1000,
        root_service: service_of(root).to_owned(),
        root_name: root
            .span
            .as_ref()
            .map(|f| f.name.clone())
            .unwrap_or_default(),
        spans: spans.len(),
        errors: spans.iter().filter(|s| is_error(s)).count(),
        services: spans.iter().map(|s| service_of(s).to_owned()).collect(),
    })
}

fn end_of(span: &LogRecord) -> i64 {
    span.span
        .as_ref()
        .map_or(span.time_ns, |f| f.end_ns.max(span.time_ns))
}

fn service_of(span: &LogRecord) -> &str {
    span.resource("service.name").unwrap_or("unknown")
}

pub fn trace(store: &dyn Store, asked: &Asked, id: &str) -> Result<Page, Failure> {
    let TraceId { text, bytes } =
        normalize_trace_id(&id.trim().to_ascii_lowercase()).map_err(Failure::bad_request)?;
    let mut found = store.traces_by_id(&asked.scope, &[bytes])?;
    let Some(mut spans) = found.pop().filter(|s| !s.is_empty()) else {
        return Err(Failure::not_found(format!("trace {text} not found")));
    };
    spans.sort_by_key(|s| s.time_ns);
    let rows = waterfall_order(&spans);
    let start_ns = spans.iter().map(|s| s.time_ns).min().unwrap_or(0);
    let end_ns = spans.iter().map(end_of).max().unwrap_or(start_ns);
    let total = (end_ns - start_ns).max(1) as f64;
    let services: BTreeSet<&str> = spans.iter().map(service_of).collect();
    let errors = spans.iter().filter(|s| is_error(s)).count();
    let depth = rows.iter().map(|(_, d)| *d).max().unwrap_or(0) + 1;
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>Trace <code>{}</code></h1><div class=\"cards\"><div><b>{}</b>duration</div><div><b>{}</b>spans</div>\
         <div><b>{}</b>services</div><div><b>{depth}</b>levels</div><div class=\"{}\"><b>{errors}</b>errors</div>\
         <div><b>{}</b>started (UTC)</div></div>\
         <p class=\"tools\"><a href=\"/logs?trace_id={}&amp;start={}&amp;end={}\">Logs of this trace</a> · \
         <a href=\"/api/v2/trace/{}\">JSON</a></p>",
        html::hex(&bytes),
        html::duration_us((end_ns - start_ns) / 1000),
        spans.len(),
        services.len(),
        if errors > 0 { "bad" } else { "" },
        html::time(start_ns),
        html::hex(&bytes),
        (start_ns / 1_000_000 - 3_600_000),
        (end_ns / 1_000_000 + 3_600_000),
        html::hex(&bytes),
    );
    if spans.len() >= MAX_TRACE_SPANS {
        let _ = write!(
            body,
            "<p class=\"note\">This trace has more spans than a page shows: these are its first {MAX_TRACE_SPANS}, by start.</p>"
        );
    }
    body.push_str("<div class=\"waterfall\"><div class=\"ruler\"><span>0</span>");
    for quarter in 1..=4 {
        let _ = write!(
            body,
            "<span style=\"left:{}%\">{}</span>",
            quarter * 25,
            html::duration_us((total * quarter as f64 / 4.0 / 1000.0) as i64)
        );
    }
    body.push_str("</div>");
    let colours: HashMap<&str, usize> = services.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    for (index, depth) in rows {
        span_row(
            &mut body,
            &spans[index],
            depth,
            start_ns,
            total,
            colours.get(service_of(&spans[index])).copied().unwrap_or(0),
        );
    }
    body.push_str("</div>");
    Ok(Page::new(format!("Trace {}", &text), "/traces", body))
}

/// The spans in waterfall order, each with its depth: every span under its
/// parent, siblings by start. A shared server span (Zipkin's, with its
/// client's id) goes under the client; spans whose parent is missing are
/// roots.
fn waterfall_order(spans: &[LogRecord]) -> Vec<(usize, usize)> {
    let kind = |i: usize| {
        spans[i]
            .span
            .as_ref()
            .map_or(SpanKind::Unspecified, |f| f.kind)
    };
    let mut by_id: HashMap<[u8; 8], Vec<usize>> = HashMap::new();
    for (i, span) in spans.iter().enumerate() {
        if let Some(id) = span.span_id {
            by_id.entry(id).or_default().push(i);
        }
    }
    // The span a child with parent id `p` hangs under: the server side of
    // a shared id, which made the child.
    let holder = |p: &[u8; 8]| -> Option<usize> {
        let same = by_id.get(p)?;
        same.iter()
            .copied()
            .find(|i| kind(*i) == SpanKind::Server)
            .or_else(|| same.first().copied())
    };
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        let shared_with = span.span_id.and_then(|id| {
            by_id
                .get(&id)
                .and_then(|same| {
                    same.iter()
                        .copied()
                        .find(|j| *j != i && kind(*j) != SpanKind::Server)
                })
                .filter(|_| kind(i) == SpanKind::Server)
        });
        let parent = shared_with.or_else(|| {
            span.span
                .as_ref()
                .and_then(|f| f.parent_span_id)
                .and_then(|p| holder(&p))
                .filter(|p| *p != i)
        });
        match parent {
            Some(p) => children[p].push(i),
            None => roots.push(i),
        }
    }
    let mut order = Vec::with_capacity(spans.len());
    let mut seen = vec![false; spans.len()];
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|r| (*r, 0)).collect();
    while let Some((i, depth)) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        order.push((i, depth));
        for child in children[i].iter().rev() {
            stack.push((*child, depth + 1));
        }
    }
    // Spans in a parent loop are reachable from no root: show them too.
    order.extend(
        seen.iter()
            .enumerate()
            .filter(|(_, seen)| !**seen)
            .map(|(i, _)| (i, 0)),
    );
    order
}

fn span_row(
    out: &mut String,
    span: &LogRecord,
    depth: usize,
    start_ns: i64,
    total: f64,
    colour: usize,
) {
    let Some(fields) = span.span.as_ref() else {
        return;
    };
    let left = 100.0 * (span.time_ns - start_ns) as f64 / total;
    let width = (100.0 * (end_of(span) - span.time_ns) as f64 / total).max(0.2);
    let error = is_error(span);
    let _ = write!(
        out,
        "<details class=\"span{}\" style=\"--depth:{}\"><summary><span class=\"label\"><b class=\"c{}\">{}</b> {}</span>\
         <span class=\"lane\"><span class=\"bar c{}\" style=\"left:{left:.2}%;width:{width:.2}%\"></span></span>\
         <span class=\"dur\">{}</span></summary><div class=\"info\"><table>",
        if error { " err" } else { "" },
        depth.min(40),
        colour % 8,
        esc(service_of(span)),
        esc(&fields.name),
        colour % 8,
        html::duration_us((end_of(span) - span.time_ns) / 1000),
    );
    let ids = format!(
        "{}{}",
        span.span_id.map(|s| html::hex(&s)).unwrap_or_default(),
        fields
            .parent_span_id
            .map(|p| format!(" (parent {})", html::hex(&p)))
            .unwrap_or_default()
    );
    let mut row = |key: &str, value: &str| {
        let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", esc(key), esc(value));
    };
    row("span id", &ids);
    row("kind", fields.kind.as_str());
    row("start (UTC)", &html::time(span.time_ns));
    if fields.status.code != 0 || !fields.status.message.is_empty() {
        let status = match fields.status.code {
            1 => "ok",
            2 => "error",
            _ => "unset",
        };
        row("status", &format!("{status} {}", fields.status.message));
    }
    for (key, value) in &span.attributes {
        let text = match value {
            Value::Str(s) => s.to_string(),
            other => other.to_string(),
        };
        row(key, &text);
    }
    out.push_str("</table>");
    if !fields.events.is_empty() {
        out.push_str("<ul class=\"events\">");
        for event in &fields.events {
            let _ = write!(
                out,
                "<li><span class=\"t\">+{}</span> {}</li>",
                html::duration_us((event.time_ns - start_ns) / 1000),
                esc(&event.name)
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</div></details>");
}

pub fn dependencies(store: &dyn Store, asked: &Asked, now_ns: i64) -> Result<Page, Failure> {
    let lookback = lookback_ns(&asked.params, "1h").map_err(Failure::bad_request)?;
    let traces =
        store.spans_between(&asked.scope, now_ns - lookback.1, now_ns, MAX_LINKED_SPANS)?;
    let read: usize = traces.iter().map(Vec::len).sum();
    let mut links = BTreeMap::new();
    dependencies::link(&traces, &mut links);
    let links = dependencies::list(links);
    let mut body = String::from("<h1>Service dependencies</h1>");
    body.push_str(&lookback_picker("/dependencies", lookback.0, &[]));
    if read >= MAX_LINKED_SPANS {
        let _ = write!(
            body,
            "<p class=\"note\">Drawn from the first {MAX_LINKED_SPANS} spans of this time only: choose a shorter time for all of them.</p>"
        );
    }
    if links.is_empty() {
        body.push_str("<p class=\"empty\">No service called another in this time.</p>");
        return Ok(Page::new("Dependencies", "/dependencies", body));
    }
    body.push_str(&graph(&links));
    body.push_str(
        "<table class=\"links\"><thead><tr><th>caller</th><th>callee</th><th class=\"n\">calls</th>\
         <th class=\"n\">errors</th></tr></thead><tbody>",
    );
    for link in &links {
        let _ = write!(
            body,
            "<tr{}><td><a href=\"/traces?serviceName={}&amp;lookback={}\">{}</a></td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            if link.error_count > 0 {
                " class=\"err\""
            } else {
                ""
            },
            url(&link.parent),
            lookback.0,
            esc(&link.parent),
            esc(&link.child),
            link.call_count,
            link.error_count,
        );
    }
    body.push_str("</tbody></table>");
    Ok(Page::new("Dependencies", "/dependencies", body))
}

/// The links as a left-to-right graph: each service in the column of its
/// longest chain of callers, arrows labelled with calls (and errors).
fn graph(links: &[dependencies::Link]) -> String {
    let mut services: BTreeSet<&str> = BTreeSet::new();
    for link in links {
        services.insert(&link.parent);
        services.insert(&link.child);
    }
    let mut column: BTreeMap<&str, usize> = services.iter().map(|s| (*s, 0)).collect();
    // Longest path from a caller; at most one pass per service, so a cycle
    // stops growing.
    for _ in 0..services.len() {
        let mut moved = false;
        for link in links.iter().filter(|l| l.parent != l.child) {
            let next = column[link.parent.as_str()] + 1;
            if next < services.len() && column[link.child.as_str()] < next {
                column.insert(&link.child, next);
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let mut rows: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for (service, c) in &column {
        rows.entry(*c).or_default().push(service);
    }
    let (col_w, row_h, box_w, box_h) = (220.0, 70.0, 160.0, 34.0);
    let columns = rows.len().max(1);
    let tallest = rows.values().map(Vec::len).max().unwrap_or(1);
    let (width, height) = (columns as f64 * col_w + 20.0, tallest as f64 * row_h + 20.0);
    let mut place: HashMap<&str, (f64, f64)> = HashMap::new();
    for (c, names) in &rows {
        for (r, name) in names.iter().enumerate() {
            place.insert(name, (10.0 + *c as f64 * col_w, 10.0 + r as f64 * row_h));
        }
    }
    let mut out = format!(
        "<svg class=\"graph\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" role=\"img\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\">\
         <path d=\"M0,0 L10,5 L0,10 z\" fill=\"#777\"/></marker></defs>"
    );
    for link in links {
        let (Some(&(px, py)), Some(&(cx, cy))) = (
            place.get(link.parent.as_str()),
            place.get(link.child.as_str()),
        ) else {
            continue;
        };
        let (x1, y1) = (px + box_w, py + box_h / 2.0);
        let (x2, y2) = (cx, cy + box_h / 2.0);
        let bend = ((x2 - x1).abs() / 2.0).max(40.0);
        let class = if link.error_count > 0 {
            "edge err"
        } else {
            "edge"
        };
        let _ = write!(
            out,
            "<path class=\"{class}\" d=\"M{x1:.0},{y1:.0} C{:.0},{y1:.0} {:.0},{y2:.0} {x2:.0},{y2:.0}\" marker-end=\"url(#arrow)\">\
             <title>{} → {}: {} calls, {} errors</title></path>\
             <text class=\"edge-label\" x=\"{:.0}\" y=\"{:.0}\">{}{}</text>",
            x1 + bend,
            x2 - bend,
            esc(&link.parent),
            esc(&link.child),
            link.call_count,
            link.error_count,
            (x1 + x2) / 2.0,
            (y1 + y2) / 2.0 - 4.0,
            link.call_count,
            if link.error_count > 0 {
                format!(" ({} err)", link.error_count)
            } else {
                String::new()
            },
        );
    }
    for (name, (x, y)) in &place {
        let _ = write!(
            out,
            "<a href=\"/traces?serviceName={}\"><rect class=\"service\" x=\"{x:.0}\" y=\"{y:.0}\" width=\"{box_w}\" height=\"{box_h}\" rx=\"6\"/>\
             <text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\">{}</text></a>",
            url(name),
            x + box_w / 2.0,
            y + box_h / 2.0 + 5.0,
            esc(name),
        );
    }
    out.push_str("</svg>");
    out
}
