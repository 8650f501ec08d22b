//! The logs page: a search with the API's filters, a histogram of what
//! matches over time (each bar a link to its own span of time), the newest
//! records first with a link to the next page, a link from each record
//! with a trace id to its trace, and a live tail (with JavaScript).

use std::fmt::Write as _;

use weir_agent::record::Stream;
use weir_agent::sink::ndjson::SEVERITY;

use super::html::{self, esc, url};
use super::{LOOKBACKS, Page, svg};
use crate::api::logs::log_query;
use crate::api::{Asked, Failure};
use crate::store::{Store, container_of, node_of};

/// Bars in the histogram.
const BUCKETS: i64 = 60;

/// The parameters a search carries from link to link (and every `label`).
const KEPT: [&str; 9] = [
    "q",
    "node",
    "container",
    "stream",
    "severity",
    "trace_id",
    "lookback",
    "start",
    "end",
];

pub fn page(store: &dyn Store, asked: &Asked, _now_ns: i64) -> Result<Page, Failure> {
    let params = &asked.params;
    let query = log_query(asked).map_err(Failure::bad_request)?;
    let kept: Vec<(&str, &str)> = KEPT
        .iter()
        .filter_map(|k| params.text(k).map(|v| (*k, v)))
        .chain(params.all("label").map(|v| ("label", v)))
        .collect();
    let carried = |skip: &[&str]| {
        kept.iter()
            .filter(|(k, _)| !skip.contains(k))
            .map(|(k, v)| format!("{k}={}", url(v)))
            .collect::<Vec<_>>()
            .join("&")
    };
    let mut body = String::from("<h1>Logs</h1>");
    search_form(&mut body, asked);
    let step_ns = ((query.to_ns - query.from_ns) / BUCKETS).max(1);
    let counts = store.log_histogram(&query, step_ns)?;
    let counts: Vec<u64> = counts
        .iter()
        .take(BUCKETS as usize)
        .map(|b| b.count)
        .collect();
    let total: u64 = counts.iter().sum();
    let narrowed = carried(&["lookback", "start", "end"]);
    let from_ns = query.from_ns;
    let link = move |i: usize| {
        let start_ms = (from_ns + step_ns * i as i64) / 1_000_000;
        let end_ms = (from_ns + step_ns * (i as i64 + 1)) / 1_000_000 + 1;
        format!("/logs?{narrowed}&start={start_ms}&end={end_ms}")
    };
    let _ = write!(
        body,
        "<figure class=\"histogram\">{}<figcaption>{total} records match, from {} to {} (UTC)</figcaption></figure>",
        svg::bars(&counts, query.from_ns, step_ns, Some(&link)),
        html::time(query.from_ns),
        html::time(query.to_ns),
    );
    let page = store.logs(&query)?;
    let _ = write!(
        body,
        "<p class=\"tools\"><button id=\"tail\" hidden data-query=\"{}\">Live tail</button> <span id=\"tail-state\"></span></p>",
        esc(&carried(&["lookback", "start", "end"]))
    );
    body.push_str(
        "<table class=\"logs\" id=\"records\"><thead><tr><th>time (UTC)</th><th>source</th>\
         <th>stream</th><th>severity</th><th>message</th></tr></thead><tbody>",
    );
    for log in &page.records {
        let record = &log.record;
        let severity = record
            .severity
            .and_then(|s| SEVERITY.get(s as usize))
            .copied()
            .unwrap_or("");
        let source = [node_of(record), container_of(record)]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/");
        let source = if source.is_empty() {
            record.resource("service.name").unwrap_or("").to_owned()
        } else {
            source
        };
        let _ = write!(
            body,
            "<tr class=\"sev-{}\"><td class=\"t\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"body\">{}",
            record.severity.map_or(9, |s| s as i32),
            html::time(record.time_ns),
            esc(&source),
            stream_name(record.stream),
            severity,
            esc(&String::from_utf8_lossy(&record.body)),
        );
        if let Some(trace) = record.trace_id {
            let id = html::hex(&trace);
            let _ = write!(
                body,
                " <a class=\"trace\" href=\"/traces/{id}\" title=\"the trace of this record\">trace {}</a>",
                &id[..8]
            );
        }
        body.push_str("</td></tr>");
    }
    body.push_str("</tbody></table>");
    if page.records.is_empty() {
        body.push_str("<p class=\"empty\">No record matches.</p>");
    }
    if let Some(next) = page.next {
        let _ = write!(
            body,
            "<p class=\"pages\"><a href=\"/logs?{}&amp;cursor={}\">Older records →</a></p>",
            esc(&carried(&[])),
            url(&next.to_text())
        );
    }
    Ok(Page::new("Logs", "/logs", body))
}

fn stream_name(stream: Stream) -> &'static str {
    match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
        Stream::Other => "",
    }
}

fn search_form(out: &mut String, asked: &Asked) {
    let params = &asked.params;
    let value = |name: &str| esc(params.text(name).unwrap_or("")).to_string();
    let _ = write!(
        out,
        "<form class=\"search\" method=\"get\" action=\"/logs\">\
         <label>text <input name=\"q\" value=\"{}\" placeholder=\"words, &quot;a phrase&quot;, prefix*\" size=\"40\"></label>\
         <label>node <input name=\"node\" value=\"{}\" size=\"12\"></label>\
         <label>container <input name=\"container\" value=\"{}\" size=\"14\"></label>\
         <label>trace id <input name=\"trace_id\" value=\"{}\" size=\"16\"></label>",
        value("q"),
        value("node"),
        value("container"),
        value("trace_id"),
    );
    select(
        out,
        "stream",
        params.text("stream").unwrap_or(""),
        &[("", "any"), ("stdout", "stdout"), ("stderr", "stderr")],
    );
    let severities: Vec<(&str, &str)> = std::iter::once(("", "any"))
        .chain(SEVERITY.iter().map(|s| (*s, *s)))
        .collect();
    select(
        out,
        "severity",
        params.text("severity").unwrap_or(""),
        &severities,
    );
    let lookbacks: Vec<(&str, &str)> = LOOKBACKS.iter().map(|(n, _, l)| (*n, *l)).collect();
    select(
        out,
        "lookback",
        params.text("lookback").unwrap_or("1h"),
        &lookbacks,
    );
    out.push_str("<button type=\"submit\">Search</button></form>");
}

/// A `<select>` named `name` with `current` chosen.
pub fn select(out: &mut String, name: &str, current: &str, options: &[(&str, &str)]) {
    let _ = write!(out, "<label>{name} <select name=\"{name}\">");
    for (value, label) in options {
        let chosen = if *value == current { " selected" } else { "" };
        let _ = write!(
            out,
            "<option value=\"{}\"{chosen}>{}</option>",
            esc(value),
            esc(label)
        );
    }
    out.push_str("</select></label>");
}
