//! The operations endpoint: `/metrics` in the Prometheus text format and
//! `/health`, which answers 503 when a sink has made no progress for the
//! configured time while records wait for it, so a hang is visible.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use crate::buffer::{Buffer, Counts};
use crate::http_server;
use crate::metrics::{SinkMetrics, SourceMetrics};
use crate::transform::TransformMetrics;

/// The registry the endpoint reads, replaced whole on a reload.
pub type SharedRegistry = Arc<std::sync::Mutex<Arc<Registry>>>;

/// What the endpoint reports on.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// Each source's lanes, by their labels: `source="app"`, and
    /// `source="app",lane="SINK"` for the lane of a sink that waits.
    pub sources: Vec<(String, Arc<SourceMetrics>)>,
    pub transforms: Vec<(String, Arc<TransformMetrics>)>,
    pub sinks: Vec<(String, Arc<SinkMetrics>, Arc<Buffer>)>,
    pub stall_after: Duration,
}

impl Registry {
    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        };
        let sink = |n: &str| format!("sink=\"{n}\"");
        family(
            "weir_source_records_total",
            "counter",
            "Records read by each source.",
            self.sources
                .iter()
                .map(|(n, m)| (n.clone(), m.read.get().0 as f64))
                .collect(),
        );
        family(
            "weir_source_bytes_total",
            "counter",
            "Bytes read by each source.",
            self.sources
                .iter()
                .map(|(n, m)| (n.clone(), m.read.get().1 as f64))
                .collect(),
        );
        family(
            "weir_source_malformed_records_total",
            "counter",
            "Lines not in the source's format, kept as plain records.",
            self.sources
                .iter()
                .map(|(n, m)| (n.clone(), m.malformed.get().0 as f64))
                .collect(),
        );
        family(
            "weir_source_malformed_bytes_total",
            "counter",
            "Bytes of what was malformed: lines kept as plain records, and messages, requests or unfinished messages a listener could not take.",
            self.sources
                .iter()
                .map(|(n, m)| (n.clone(), m.malformed.get().1 as f64))
                .collect(),
        );
        family(
            "weir_source_refused_records_total",
            "counter",
            "Records a sink's buffer refused from this source: full under drop_newest (also under weir_dropped_records_total), or an error appending.",
            self.sources
                .iter()
                .map(|(n, m)| (n.clone(), m.refused.get().0 as f64))
                .collect(),
        );
        family(
            "weir_source_shed_records_total",
            "counter",
            "Datagrams a listener received while the pipeline was behind, and could not pass on.",
            self.sources
                .iter()
                .map(|(n, m)| (n.clone(), m.shed.get().0 as f64))
                .collect(),
        );
        family(
            "weir_source_cut_records_total",
            "counter",
            "Messages longer than the listener's max_message, cut there.",
            self.sources
                .iter()
                .map(|(n, m)| (n.clone(), m.cut.get().0 as f64))
                .collect(),
        );
        family(
            "weir_source_cut_bytes_total",
            "counter",
            "Bytes of cut messages past the listener's max_message, passed by unread.",
            self.sources
                .iter()
                .map(|(n, m)| (n.clone(), m.cut_off_bytes.load(Ordering::Relaxed) as f64))
                .collect(),
        );
        family(
            "weir_source_connections_closed_total",
            "counter",
            "Connections a listener closed: over max_connections, quiet past read_timeout, or with broken framing.",
            self.sources
                .iter()
                .flat_map(|(n, m)| {
                    [
                        ("max_connections", &m.refused_connections),
                        ("read_timeout", &m.timed_out_connections),
                        ("broken_framing", &m.broken_streams),
                        ("failed_auth", &m.failed_auth),
                    ]
                    .map(|(reason, count)| {
                        (
                            format!("{n},reason=\"{reason}\""),
                            count.load(Ordering::Relaxed) as f64,
                        )
                    })
                })
                .collect(),
        );
        family(
            "weir_source_oversized_total",
            "counter",
            "Messages or requests refused as too large: past the listener's max_message, or asking more memory than a request may take.",
            self.sources
                .iter()
                .map(|(n, m)| (n.clone(), m.oversized.load(Ordering::Relaxed) as f64))
                .collect(),
        );
        family(
            "weir_source_deferred_requests_total",
            "counter",
            "Requests answered 503 with Retry-After, for the client to send again: the pipeline was behind, or the source's requests under way held its max_memory.",
            self.sources
                .iter()
                .map(|(n, m)| (n.clone(), m.deferred.load(Ordering::Relaxed) as f64))
                .collect(),
        );
        family(
            "weir_source_memory_held_bytes",
            "gauge",
            "What an HTTP source's requests under way hold of its max_memory: bodies, unpacked and decoded.",
            self.sources
                .iter()
                .map(|(n, m)| (n.clone(), m.memory_held.load(Ordering::Relaxed) as f64))
                .collect(),
        );
        family(
            "weir_transform_records_total",
            "counter",
            "Records into each transform.",
            self.transforms
                .iter()
                .map(|(n, m)| {
                    (
                        format!("transform=\"{n}\""),
                        m.records_in.load(Ordering::Relaxed) as f64,
                    )
                })
                .collect(),
        );
        family(
            "weir_transform_records_out_total",
            "counter",
            "Records out of each transform (in, less what it filtered or throttled).",
            self.transforms
                .iter()
                .map(|(n, m)| {
                    let left_out = m.filtered.get().0 + m.throttled.get().0;
                    let records_in = m.records_in.load(Ordering::Relaxed);
                    (
                        format!("transform=\"{n}\""),
                        records_in.saturating_sub(left_out) as f64,
                    )
                })
                .collect(),
        );
        family(
            "weir_transform_dropped_records_total",
            "counter",
            "Records a transform left out, by reason: filtered (not wanted) or throttled (over its limit).",
            self.transforms
                .iter()
                .flat_map(|(n, m)| {
                    [
                        (
                            format!("transform=\"{n}\",reason=\"filtered\""),
                            m.filtered.get().0 as f64,
                        ),
                        (
                            format!("transform=\"{n}\",reason=\"throttled\""),
                            m.throttled.get().0 as f64,
                        ),
                    ]
                })
                .collect(),
        );
        family(
            "weir_transform_unparsed_records_total",
            "counter",
            "Records whose body was not in the format a parse transform expects (kept as they were).",
            self.transforms
                .iter()
                .map(|(n, m)| (format!("transform=\"{n}\""), m.unparsed.get().0 as f64))
                .collect(),
        );
        family(
            "weir_sink_received_records_total",
            "counter",
            "Records into each sink's buffer since start (with those found in a disk buffer at start).",
            self.sinks
                .iter()
                .map(|(n, _, b)| {
                    let stats = b.stats();
                    (
                        sink(n),
                        (stats.appended.records + stats.recovered.records) as f64,
                    )
                })
                .collect(),
        );
        family(
            "weir_sink_received_bytes_total",
            "counter",
            "Payload bytes into each sink's buffer since start (as the buffer holds records).",
            self.sinks
                .iter()
                .map(|(n, _, b)| {
                    let stats = b.stats();
                    (
                        sink(n),
                        (stats.appended.bytes + stats.recovered.bytes) as f64,
                    )
                })
                .collect(),
        );
        family(
            "weir_sink_records_total",
            "counter",
            "Records each sink's destination acknowledged.",
            self.sinks
                .iter()
                .map(|(n, m, _)| (sink(n), m.delivered.get().0 as f64))
                .collect(),
        );
        family(
            "weir_sink_bytes_total",
            "counter",
            "Body bytes each sink's destination acknowledged.",
            self.sinks
                .iter()
                .map(|(n, m, _)| (sink(n), m.delivered.get().1 as f64))
                .collect(),
        );
        family(
            "weir_sink_retries_total",
            "counter",
            "Batches sent again after a retryable failure.",
            self.sinks
                .iter()
                .map(|(n, m, _)| (sink(n), m.retries.load(Ordering::Relaxed) as f64))
                .collect(),
        );
        family(
            "weir_sink_batches_in_flight",
            "gauge",
            "Batches sent and not yet acknowledged.",
            self.sinks
                .iter()
                .map(|(n, m, _)| (sink(n), m.in_flight.load(Ordering::Relaxed) as f64))
                .collect(),
        );
        let mut dropped = Vec::new();
        for (n, m, buffer) in &self.sinks {
            let stats = buffer.stats();
            let reasons: [(&str, Counts); 7] = [
                ("buffer_full_newest", stats.dropped_newest),
                ("buffer_full_oldest", stats.dropped_oldest),
                ("buffer_damaged", sum(stats.cut_read, stats.cut_at_open)),
                (
                    "undecodable",
                    Counts {
                        records: m.undecodable.get().0,
                        bytes: m.undecodable.get().1,
                    },
                ),
                (
                    "sink_rejected",
                    Counts {
                        records: m.dead_lettered.get().0,
                        bytes: m.dead_lettered.get().1,
                    },
                ),
                (
                    "destination_refused",
                    Counts {
                        records: m.refused_by_destination.get().0,
                        bytes: m.refused_by_destination.get().1,
                    },
                ),
                (
                    "left_by_reload",
                    Counts {
                        records: m.left_by_reload.get().0,
                        bytes: m.left_by_reload.get().1,
                    },
                ),
            ];
            for (reason, counts) in reasons {
                dropped.push((
                    format!("sink=\"{n}\",reason=\"{reason}\""),
                    counts.records as f64,
                ));
            }
        }
        family(
            "weir_dropped_records_total",
            "counter",
            "Records not delivered, by reason (sink_rejected ones are in the dead-letter file; destination_refused ones the destination took and then refused, OTLP partial_success; left_by_reload ones a reload's move to a disk buffer did not finish in time).",
            dropped,
        );
        family(
            "weir_buffer_records",
            "gauge",
            "Records waiting in each sink's buffer.",
            self.sinks
                .iter()
                .map(|(n, _, b)| (sink(n), b.stats().held.records as f64))
                .collect(),
        );
        family(
            "weir_buffer_bytes",
            "gauge",
            "Payload bytes waiting in each sink's buffer.",
            self.sinks
                .iter()
                .map(|(n, _, b)| (sink(n), b.stats().held.bytes as f64))
                .collect(),
        );
        let now_ns = weir_monitor::format::timestamp::Timestamp::now().as_nanos() as f64;
        family(
            "weir_buffer_oldest_record_age_seconds",
            "gauge",
            "Age of the oldest record not yet acknowledged (0 when none waits).",
            self.sinks
                .iter()
                .map(|(n, m, _)| {
                    let observed = m.oldest_unacked_observed_ns.load(Ordering::Relaxed);
                    let age = if observed == 0 {
                        0.0
                    } else {
                        ((now_ns - observed as f64) / 1e9).max(0.0)
                    };
                    (sink(n), age)
                })
                .collect(),
        );
        out
    }

    /// Sinks that made no progress for `stall_after` while records wait.
    pub fn stalled(&self) -> Vec<String> {
        self.sinks
            .iter()
            .filter(|(_, m, b)| {
                b.stats().held.records > 0
                    && m.seconds_without_progress() >= self.stall_after.as_secs_f64()
            })
            .map(|(n, m, _)| format!("{n}: no progress for {:.0} s", m.seconds_without_progress()))
            .collect()
    }
}

fn sum(a: Counts, b: Counts) -> Counts {
    Counts {
        records: a.records + b.records,
        bytes: a.bytes + b.bytes,
    }
}

/// Connections the endpoint serves at once (scrapers and health checks).
const MAX_CONNECTIONS: usize = 16;

/// Serves the endpoint at `address` on a thread of its own.
pub fn serve(address: SocketAddr, registry: SharedRegistry) -> std::io::Result<JoinHandle<()>> {
    let listener = std::net::TcpListener::bind(address)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {address}: {e}")))?;
    listener.set_nonblocking(true)?;
    http_server::serve(listener, "weir-ops", MAX_CONNECTIONS, move |request| {
        let registry = Arc::clone(&registry.lock().unwrap_or_else(|e| e.into_inner()));
        let response = answer(&registry, request.uri().path());
        async move { response }
    })
}

fn answer(registry: &Registry, path: &str) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            registry.render(),
        ),
        "/health" => {
            let stalled = registry.stalled();
            if stalled.is_empty() {
                (StatusCode::OK, "text/plain", "ok\n".to_owned())
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("stalled: {}\n", stalled.join("; ")),
                )
            }
        }
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics or /health\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}
