//! weir's own log API:
//!
//! - `GET /api/v1/logs`: a page of records, newest first, and the cursor
//!   of the next (`cursor=`);
//! - `GET /api/v1/logs/histogram`: how many records match, over time;
//! - `GET /api/v1/logs/tail`: records as they arrive, as Server-Sent
//!   Events (each event's id is the record's, so a client that reconnects
//!   with `Last-Event-ID` misses nothing);
//! - `GET /api/v1/usage`: bytes stored and dropped per node and container.
//!
//! Filters: `start`, `end` (epoch ms or RFC 3339; or `lookback`, default
//! 1h, before `end`, default now), `node`, `container`, `label=KEY=VALUE`
//! (repeatable), `stream`, `severity` (a name or 0–7: that or more severe),
//! `q` (full text), `trace_id`, `limit` (default 100).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Response;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use weir_agent::http_server::Body;
use weir_agent::record::Stream;
use weir_agent::sink::ndjson;

use super::params::{BadRequest, Params};
use super::{Asked, Failure, json, json_bytes};
use crate::store::{
    Cursor, LogQuery, MAX_LIMIT, MAX_RANGE_NS, SourceFilter, Store, StoredLog, TextQuery,
};

const HOUR_NS: i64 = 3_600_000_000_000;

/// The most steps `/api/v1/usage` answers with (the store's own bound).
const MAX_USAGE_BUCKETS: i64 = 10_000;

/// How often a live tail looks for new records.
const TAIL_POLL: Duration = Duration::from_millis(250);

/// A comment sent on a quiet tail, so proxies keep the stream open.
const TAIL_KEEPALIVE: Duration = Duration::from_secs(15);

pub fn search(store: &dyn Store, asked: &Asked) -> Result<Response<Body>, Failure> {
    let query = log_query(asked).map_err(Failure::bad_request)?;
    let page = store.logs(&query)?;
    let mut out = Vec::with_capacity(page.records.len() * 256);
    out.extend_from_slice(b"{\"records\":[");
    for (i, log) in page.records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        record_json(log, &mut out);
    }
    out.extend_from_slice(b"],\"next\":");
    match page.next {
        Some(cursor) => {
            out.push(b'"');
            out.extend_from_slice(cursor.to_text().as_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
    Ok(json_bytes(out))
}

pub fn histogram(store: &dyn Store, asked: &Asked) -> Result<Response<Body>, Failure> {
    let query = log_query(asked).map_err(Failure::bad_request)?;
    let buckets = asked
        .params
        .integer("buckets")
        .map_err(Failure::bad_request)?
        .unwrap_or(60);
    if !(1..=1000).contains(&buckets) {
        return Err(Failure::bad_request(format!(
            "buckets={buckets}: expected 1 to 1000"
        )));
    }
    let step_ns = ((query.to_ns - query.from_ns) / buckets).max(1);
    let counts = store.log_histogram(&query, step_ns)?;
    Ok(json(&serde_json::json!({
        "from_ns": query.from_ns,
        "step_ns": step_ns,
        "counts": counts.iter().take(buckets as usize).map(|b| b.count).collect::<Vec<_>>(),
    })))
}

pub fn usage(store: &dyn Store, asked: &Asked) -> Result<Response<Body>, Failure> {
    let params = &asked.params;
    let (from_ns, to_ns) = time_range(params).map_err(Failure::bad_request)?;
    let step_ns = params
        .duration_ns("step")
        .map_err(Failure::bad_request)?
        .unwrap_or(((to_ns - from_ns) / 60).max(60_000_000_000));
    if step_ns <= 0 || (to_ns - from_ns) / step_ns > MAX_USAGE_BUCKETS {
        return Err(Failure::bad_request(format!(
            "step: at most {MAX_USAGE_BUCKETS} steps fit between start and end"
        )));
    }
    let sources = source_filter(asked).map_err(Failure::bad_request)?;
    let usage = store.usage(&sources, from_ns, to_ns, step_ns)?;
    let sources: Vec<serde_json::Value> = usage
        .sources
        .iter()
        .map(|s| {
            serde_json::json!({
                "node": s.node,
                "container": s.container,
                "budget": s.budget,
                "policy": s.policy,
                "bytes": s.bytes,
                "records": s.records,
                "dropped": s.dropped.iter()
                    .map(|(reason, bytes)| (reason.clone(), serde_json::json!(bytes)))
                    .collect::<serde_json::Map<String, serde_json::Value>>(),
            })
        })
        .collect();
    Ok(json(&serde_json::json!({
        "from_ns": usage.from_ns,
        "step_ns": usage.step_ns,
        "sources": sources,
    })))
}

/// The most live tails at once: each asks the store four times a second.
const MAX_TAILS: usize = 32;

/// Live tails running now.
static TAILS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A place among the live tails, given back when the tail ends.
struct TailSlot;

impl TailSlot {
    fn take() -> Option<TailSlot> {
        use std::sync::atomic::Ordering::Relaxed;
        TAILS
            .fetch_update(Relaxed, Relaxed, |n| (n < MAX_TAILS).then_some(n + 1))
            .ok()
            .map(|_| TailSlot)
    }
}

impl Drop for TailSlot {
    fn drop(&mut self) {
        TAILS.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A live tail: a stream of Server-Sent Events, one per record.
pub fn tail(store: Arc<dyn Store>, asked: Asked) -> Response<Body> {
    let mut query = match log_query(&asked) {
        Ok(query) => query,
        Err(message) => return super::failure(Failure::bad_request(message)),
    };
    let Some(slot) = TailSlot::take() else {
        return super::failure(Failure {
            status: hyper::StatusCode::SERVICE_UNAVAILABLE,
            message: format!("{MAX_TAILS} live tails are open already; try again later"),
        });
    };
    // A tail follows what arrives, whatever its time.
    query.from_ns = i64::MIN;
    query.to_ns = i64::MAX;
    let resume = asked
        .last_event_id
        .as_deref()
        .and_then(|id| id.parse::<i64>().ok());
    let (sender, body) = stream::channel();
    tokio::spawn(async move {
        let _slot = slot;
        let mut after = match resume {
            Some(id) => id,
            None => {
                let store = Arc::clone(&store);
                match tokio::task::spawn_blocking(move || store.last_log_id()).await {
                    Ok(Ok(id)) => id,
                    _ => return,
                }
            }
        };
        // `ready` says where the tail starts; as an id, it is where a
        // client that reconnects picks up.
        let ready = format!("retry: 1000\nid: {after}\nevent: ready\ndata: {after}\n\n");
        if sender.send(Bytes::from(ready)).await.is_err() {
            return;
        }
        let mut quiet = Duration::ZERO;
        loop {
            if sender.is_closed() {
                // The client went: its place among the tails is free.
                return;
            }
            let (store, asking) = (Arc::clone(&store), query.clone());
            let found = tokio::task::spawn_blocking(move || store.logs_after(&asking, after)).await;
            let step = match found {
                Ok(Ok(step)) => step,
                Ok(Err(e)) => {
                    let _ = sender
                        // One data line: a line break would end the event.
                        .send(Bytes::from(format!(
                            "event: error\ndata: {}\n\n",
                            e.to_string().replace(['\r', '\n'], " ")
                        )))
                        .await;
                    return;
                }
                Err(_) => return,
            };
            let mut events = Vec::new();
            for log in &step.records {
                events.extend_from_slice(format!("id: {}\ndata: ", log.id).as_bytes());
                record_json(log, &mut events);
                events.extend_from_slice(b"\n\n");
            }
            after = step.read_to;
            if step.records.is_empty() {
                quiet += TAIL_POLL;
                if quiet >= TAIL_KEEPALIVE {
                    events.extend_from_slice(b": still here\n\n");
                    quiet = Duration::ZERO;
                }
            } else {
                quiet = Duration::ZERO;
            }
            if !events.is_empty() && sender.send(Bytes::from(events)).await.is_err() {
                return;
            }
            if !step.more {
                tokio::time::sleep(TAIL_POLL).await;
            }
        }
    });
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A record as JSON: its id, tenant, then the NDJSON sink's fields.
fn record_json(log: &StoredLog, out: &mut Vec<u8>) {
    use std::io::Write;
    let _ = write!(out, "{{\"id\":{},", log.id);
    if !log.tenant.is_empty() {
        out.extend_from_slice(b"\"tenant\":");
        ndjson::string(&log.tenant, out);
        out.push(b',');
    }
    ndjson::encode_fields(&log.record, out);
    out.push(b'}');
}

pub(crate) fn log_query(asked: &Asked) -> Result<LogQuery, BadRequest> {
    let params = &asked.params;
    let (from_ns, to_ns) = time_range(params)?;
    let limit = params.integer("limit")?.unwrap_or(100);
    if !(1..=MAX_LIMIT as i64).contains(&limit) {
        return Err(format!("limit={limit}: expected 1 to {MAX_LIMIT}"));
    }
    Ok(LogQuery {
        sources: source_filter(asked)?,
        from_ns,
        to_ns,
        stream: match params.text("stream") {
            None => None,
            Some("stdout") => Some(Stream::Stdout),
            Some("stderr") => Some(Stream::Stderr),
            Some("other") => Some(Stream::Other),
            Some(other) => {
                return Err(format!(
                    "stream={other:?}: expected stdout, stderr or other"
                ));
            }
        },
        severity_at_most: match params.text("severity") {
            None => None,
            Some(s) => Some(
                ndjson::SEVERITY
                    .iter()
                    .position(|name| name.eq_ignore_ascii_case(s))
                    .map(|i| i as u8)
                    .or_else(|| s.parse::<u8>().ok().filter(|n| *n <= 7))
                    .ok_or_else(|| {
                        format!("severity={s:?}: expected 0 to 7 or a name (error, warning, info…)")
                    })?,
            ),
        },
        text: params
            .text("q")
            .map(|q| TextQuery::parse(q).map_err(|e| format!("q={q:?}: {e}")))
            .transpose()?,
        trace_id: params
            .text("trace_id")
            .map(|t| {
                weir_agent::zipkin::parse_id::<16>(t)
                    .ok_or_else(|| format!("trace_id={t:?}: expected 32 (or 16) hex digits"))
            })
            .transpose()?,
        before: params
            .text("cursor")
            .map(|c| {
                Cursor::parse(c).ok_or_else(|| format!("cursor={c:?}: not a cursor this API gave"))
            })
            .transpose()?,
        limit: limit as usize,
    })
}

fn source_filter(asked: &Asked) -> Result<SourceFilter, BadRequest> {
    let params = &asked.params;
    let labels = params
        .all("label")
        .map(|label| {
            label
                .split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| format!("label={label:?}: expected KEY=VALUE"))
        })
        .collect::<Result<_, _>>()?;
    Ok(SourceFilter {
        scope: asked.scope.clone(),
        node: params.text("node").map(str::to_owned),
        container: params.text("container").map(str::to_owned),
        labels,
    })
}

/// `start`..`end`, or `lookback` before `end`; at most 31 days.
fn time_range(params: &Params) -> Result<(i64, i64), BadRequest> {
    let end = params
        .time_ns("end")?
        .unwrap_or_else(|| weir_monitor::format::timestamp::Timestamp::now().as_nanos() as i64 + 1);
    let start = match (params.time_ns("start")?, params.duration_ns("lookback")?) {
        (Some(_), Some(_)) => return Err("start and lookback: give one of them".into()),
        (Some(start), None) => start,
        (None, lookback) => end.saturating_sub(lookback.unwrap_or(HOUR_NS)),
    };
    if start >= end {
        return Err("start: must be before end".into());
    }
    if end.saturating_sub(start) > MAX_RANGE_NS {
        return Err("start: the range is longer than 31 days".into());
    }
    Ok((start, end))
}

/// A response body fed by a channel, for streams that last.
mod stream {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use http_body_util::BodyExt;
    use hyper::body::Frame;
    use tokio::sync::mpsc;
    use weir_agent::http_server::Body;

    struct Channel(mpsc::Receiver<Bytes>);

    impl hyper::body::Body for Channel {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0
                .poll_recv(cx)
                .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
        }
    }

    /// A sender and the body it feeds; the body ends when the sender goes,
    /// and a send fails once the client has gone.
    pub fn channel() -> (mpsc::Sender<Bytes>, Body) {
        let (sender, receiver) = mpsc::channel(4);
        (sender, Channel(receiver).boxed())
    }
}
