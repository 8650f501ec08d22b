//! The overview: who is eating the log bandwidth, and who is being
//! dropped. Each node and container with its rate over time against its
//! budget, its policy, and its drops by reason.

use std::fmt::Write as _;

use super::html::{self, esc, url};
use super::svg::{self, DROPPED, PALETTE, Series};
use super::{Page, lookback_ns, lookback_picker};
use crate::api::{Asked, Failure};
use crate::store::{Scope, SourceFilter, SourceUsage, Store};

/// Sources drawn in the chart; the rest are in the table only.
const CHARTED: usize = 8;

pub fn page(store: &dyn Store, asked: &Asked, now_ns: i64) -> Result<Page, Failure> {
    let params = &asked.params;
    let lookback = lookback_ns(params, "1h").map_err(Failure::bad_request)?;
    let from_ns = now_ns - lookback.1;
    let step_ns = (lookback.1 / 60).max(60_000_000_000);
    let filter = SourceFilter {
        scope: asked.scope.clone(),
        node: params.text("node").map(str::to_owned),
        container: params.text("container").map(str::to_owned),
        labels: Vec::new(),
    };
    let usage = store.usage(&filter, from_ns, now_ns, step_ns)?;
    // What the whole store holds is everyone's business only when the
    // reader may see everyone's records.
    let stats = match asked.scope {
        Scope::All => Some(store.stats()?),
        Scope::Tenant(_) => None,
    };
    let step_s = usage.step_ns as f64 / 1e9;
    let mut sources: Vec<&SourceUsage> = usage.sources.iter().collect();
    let stored_of = |s: &SourceUsage| s.bytes.iter().sum::<u64>();
    let dropped_of = |s: &SourceUsage| {
        s.dropped
            .iter()
            .map(|(_, b)| b.iter().sum::<u64>())
            .sum::<u64>()
    };
    sources.sort_by_cached_key(|s| std::cmp::Reverse(stored_of(s) + dropped_of(s)));
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>Log bandwidth</h1><p class=\"lead\">Bytes per second each node and container logged in the last {}, against its budget; what the gate dropped, in red.</p>",
        esc(lookback.0)
    );
    let keep: Vec<(&str, &str)> = ["node", "container"]
        .iter()
        .filter_map(|k| params.text(k).map(|v| (*k, v)))
        .collect();
    body.push_str(&lookback_picker("/", lookback.0, &keep));
    let total_stored: u64 = sources.iter().map(|s| stored_of(s)).sum();
    let total_dropped: u64 = sources.iter().map(|s| dropped_of(s)).sum();
    let _ = write!(
        body,
        "<div class=\"cards\"><div><b>{}</b>stored</div><div class=\"{}\"><b>{}</b>dropped</div>\
         <div><b>{}</b>sources</div>",
        html::bytes(total_stored as f64),
        if total_dropped > 0 { "bad" } else { "" },
        html::bytes(total_dropped as f64),
        sources.len(),
    );
    if let Some(stats) = stats {
        let _ = write!(
            body,
            "<div><b>{}</b>log records held</div><div><b>{}</b>spans held</div><div><b>{}</b>store size</div>",
            stats.logs,
            stats.spans,
            html::bytes(stats.bytes as f64),
        );
    }
    body.push_str("</div>");
    if sources.is_empty() {
        body.push_str("<p class=\"empty\">Nothing was stored in this time. Send logs to the collector (OTLP on :4318, Forward on :24224) or widen the time.</p>");
        return Ok(Page::new("Overview", "/", body));
    }
    let rates: Vec<Vec<f64>> = sources
        .iter()
        .take(CHARTED)
        .map(|s| s.bytes.iter().map(|b| *b as f64 / step_s).collect())
        .collect();
    let labels: Vec<String> = sources.iter().take(CHARTED).map(|s| name_of(s)).collect();
    let dropped: Vec<f64> = (0..usage.sources.first().map_or(0, |s| s.bytes.len()))
        .map(|i| {
            sources
                .iter()
                .flat_map(|s| s.dropped.iter().map(move |(_, b)| b[i]))
                .sum::<u64>() as f64
                / step_s
        })
        .collect();
    let mut series: Vec<Series<'_>> = rates
        .iter()
        .zip(&labels)
        .enumerate()
        .map(|(i, (values, label))| Series {
            label,
            colour: PALETTE[i % PALETTE.len()],
            values,
            dashed: false,
        })
        .collect();
    if total_dropped > 0 {
        series.push(Series {
            label: "dropped, all sources",
            colour: DROPPED,
            values: &dropped,
            dashed: true,
        });
    }
    body.push_str("<figure>");
    body.push_str(&svg::lines(&series, usage.from_ns, usage.step_ns, |v| {
        format!("{}/s", html::bytes(v))
    }));
    body.push_str("<figcaption>");
    for s in &series {
        let _ = write!(
            body,
            "<span class=\"key\"><i style=\"background:{}\"></i>{}</span>",
            s.colour,
            esc(s.label)
        );
    }
    body.push_str("</figcaption></figure>");
    body.push_str(
        "<table class=\"usage\"><thead><tr><th>node</th><th>container</th><th>policy</th>\
         <th class=\"n\">budget</th><th class=\"n\">average</th><th class=\"n\">peak</th>\
         <th class=\"n\">stored</th><th class=\"n\">records</th><th class=\"n\">dropped</th>\
         <th>over time</th></tr></thead><tbody>",
    );
    for s in &sources {
        let rate: Vec<f64> = s.bytes.iter().map(|b| *b as f64 / step_s).collect();
        let lost: Vec<f64> = (0..s.bytes.len())
            .map(|i| s.dropped.iter().map(|(_, b)| b[i]).sum::<u64>() as f64 / step_s)
            .collect();
        let stored = stored_of(s);
        let peak = rate.iter().copied().fold(0.0, f64::max);
        let mut reasons = String::new();
        for (reason, bytes) in &s.dropped {
            let _ = write!(
                reasons,
                "<div>{} <small>{}</small></div>",
                html::bytes(bytes.iter().sum::<u64>() as f64),
                esc(reason)
            );
        }
        let over = s.budget.is_some_and(|b| peak > b * 1.02);
        let _ = write!(
            body,
            "<tr{}><td>{}</td><td><a href=\"/logs?container={}&amp;node={}&amp;lookback={}\">{}</a></td>\
             <td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}/s</td><td class=\"n\">{}/s</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n dropped\">{}</td><td>{}</td></tr>",
            if dropped_of(s) > 0 || over {
                " class=\"hot\""
            } else {
                ""
            },
            esc(or_dash(&s.node)),
            url(&s.container),
            url(&s.node),
            url(lookback.0),
            esc(or_dash(&s.container)),
            esc(s.policy.as_deref().unwrap_or("—")),
            s.budget
                .map_or("—".to_owned(), |b| format!("{}/s", html::bytes(b))),
            html::bytes(stored as f64 / (lookback.1 as f64 / 1e9)),
            html::bytes(peak),
            html::bytes(stored as f64),
            s.records.iter().sum::<u64>(),
            if reasons.is_empty() {
                "—".to_owned()
            } else {
                reasons
            },
            svg::sparkline(&rate, &lost, s.budget),
        );
    }
    body.push_str("</tbody></table>");
    Ok(Page::new("Overview", "/", body))
}

fn name_of(s: &SourceUsage) -> String {
    match (s.node.is_empty(), s.container.is_empty()) {
        (false, false) => format!("{}/{}", s.node, s.container),
        (true, false) => s.container.clone(),
        (false, true) => s.node.clone(),
        (true, true) => "(unnamed)".to_owned(),
    }
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() { "—" } else { text }
}
