//! The `otlp` source: OTLP/HTTP, as OpenTelemetry SDKs and collectors
//! export it. `POST /v1/logs` takes an `ExportLogsServiceRequest` and
//! `POST /v1/traces` an `ExportTraceServiceRequest`, in protobuf
//! (`application/x-protobuf`) or JSON (`application/json`), gzipped or
//! not, and answers in the same encoding once the records are in the
//! sinks' buffers; spans without valid ids are refused in the answer's
//! partial success, the rest taken.
//!
//! The answers follow the OTLP/HTTP specification: 200 when taken; 503
//! with `Retry-After` while the pipeline is behind (a sink's buffer is full
//! and waiting), so clients back off and keep their data instead of losing
//! it; 400 for a body that does not decode, 413 past `max_message`, 415
//! for an encoding it does not speak, 401 without the configured bearer
//! token. Nothing is taken from a request that is refused.

use std::io;
use std::thread::JoinHandle;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use super::Wiring;
use super::http_intake::{self, Encoding, Intake, Refusal, decode};
use super::net::Emitter;
use crate::http_server::Body;
use crate::otlp::{decode_cost, logs, proto, traces};

/// The port where a configuration names none.
pub const DEFAULT_PORT: u16 = 4318;

/// The largest request body where a configuration names none.
pub const DEFAULT_MAX_MESSAGE: usize = 8 << 20;

/// The source's listener.
pub type OtlpConfig = http_intake::HttpSourceConfig;

/// Binds the listener and starts the source; it runs until it is stopped.
pub fn start(name: &str, config: OtlpConfig, wiring: Wiring) -> io::Result<JoinHandle<()>> {
    http_intake::start(
        name,
        config,
        wiring,
        |request, emitter, intake| async move { take(request, &emitter, &intake).await },
    )
}

async fn take(
    request: Request<Incoming>,
    emitter: &Emitter,
    intake: &Intake,
) -> Result<Response<Body>, Refusal> {
    let config = &intake.config;
    let metrics = &emitter.metrics;
    let signal = match (request.method(), request.uri().path()) {
        (&Method::POST, "/v1/logs") => Signal::Logs,
        (&Method::POST, "/v1/traces") => Signal::Traces,
        (_, path) => {
            return Err((
                StatusCode::NOT_FOUND,
                format!("no {path} here: POST /v1/logs or /v1/traces"),
            ));
        }
    };
    let tenant = http_intake::check_token(&request, intake, metrics)?;
    let encoding = http_intake::encoding(&request)?;
    http_intake::check_room(emitter)?;
    let mut received = http_intake::body(request, &config.limits, &intake.memory, metrics).await?;
    let root = match signal {
        Signal::Logs => &decode_cost::LOGS_REQUEST,
        Signal::Traces => &decode_cost::TRACES_REQUEST,
    };
    http_intake::check_decode_cost(
        encoding,
        &mut received,
        root,
        decode_cost::JSON_OBJECTS,
        &config.limits,
        metrics,
    )?;
    let (body, size) = (&received.bytes, received.size);
    let malformed = |what: String| {
        metrics.malformed.add(1, size);
        (StatusCode::BAD_REQUEST, what)
    };
    let (mut records, rejected) = match signal {
        Signal::Logs => {
            let request: proto::ExportLogsServiceRequest =
                decode(encoding, body, "ExportLogsServiceRequest").map_err(malformed)?;
            let shared = request.resource_logs.iter().flat_map(|r| {
                let resource = r.resource.as_ref().map_or(0, prost::Message::encoded_len);
                r.scope_logs.iter().map(move |s| {
                    let scope = s.scope.as_ref().map_or(0, prost::Message::encoded_len);
                    (s.log_records.len(), resource + scope)
                })
            });
            let needed = check_expansion(shared, body.len(), config.limits.max_message, metrics)?;
            received.hold(needed - body.len(), metrics)?;
            (logs::to_records(request, now_ns()), 0)
        }
        Signal::Traces => {
            let request: proto::ExportTraceServiceRequest =
                decode(encoding, body, "ExportTraceServiceRequest").map_err(malformed)?;
            let shared = request.resource_spans.iter().flat_map(|r| {
                let resource = r.resource.as_ref().map_or(0, prost::Message::encoded_len);
                r.scope_spans.iter().map(move |s| {
                    let scope = s.scope.as_ref().map_or(0, prost::Message::encoded_len);
                    (s.spans.len(), resource + scope)
                })
            });
            let needed = check_expansion(shared, body.len(), config.limits.max_message, metrics)?;
            received.hold(needed - body.len(), metrics)?;
            traces::to_records(request, now_ns())
        }
    };
    tenant.apply(&mut records);
    metrics.read.add(records.len() as u64, size);
    if rejected > 0 {
        metrics.malformed.add(rejected as u64, 0);
    }
    if !records.is_empty() && !emitter.send_and_wait(records).await {
        return Err(http_intake::stopping(metrics));
    }
    let (content_type, body) = answer(signal, encoding, rejected);
    Ok(http_intake::answer(StatusCode::OK, content_type, body))
}

/// What a record takes in memory besides its own fields and the resource
/// and scope it carries a copy of, about.
const RECORD_COST: usize = 256;

/// What a request's records take in memory, or a refusal (413, counted
/// as oversized) if that is too much ([`http_intake::check_memory`]): each
/// record carries a copy of its resource and scope, so a small body with
/// one large resource and many empty records would otherwise ask for
/// memory without bound. `groups` gives each scope's record count and the
/// bytes of its resource and scope.
fn check_expansion(
    groups: impl Iterator<Item = (usize, usize)>,
    body: usize,
    max_message: usize,
    metrics: &crate::metrics::SourceMetrics,
) -> Result<usize, Refusal> {
    let needed = groups.fold(body, |total, (records, shared)| {
        total.saturating_add(records.saturating_mul(shared.saturating_add(RECORD_COST)))
    });
    http_intake::check_memory(
        needed,
        "its records, each with its resource and scope, would take",
        body,
        max_message,
        metrics,
    )?;
    Ok(needed)
}

/// Which signal a request carries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Signal {
    Logs,
    Traces,
}

/// The export response, with partial success if anything was refused.
fn answer(signal: Signal, encoding: Encoding, rejected: usize) -> (&'static str, Vec<u8>) {
    fn encoded<T: prost::Message + serde::Serialize>(
        encoding: Encoding,
        answer: T,
    ) -> (&'static str, Vec<u8>) {
        match encoding {
            Encoding::Protobuf => ("application/x-protobuf", answer.encode_to_vec()),
            Encoding::Json => (
                "application/json",
                serde_json::to_vec(&answer).unwrap_or_else(|_| b"{}".to_vec()),
            ),
        }
    }
    match signal {
        Signal::Logs => encoded(encoding, proto::ExportLogsServiceResponse::default()),
        Signal::Traces => encoded(
            encoding,
            proto::ExportTraceServiceResponse {
                partial_success: (rejected > 0).then(|| proto::ExportTracePartialSuccess {
                    rejected_spans: rejected as i64,
                    error_message: format!("{rejected} spans without a valid trace and span id"),
                }),
            },
        ),
    }
}

fn now_ns() -> i64 {
    weir_monitor::format::timestamp::Timestamp::now()
        .as_nanos()
        .clamp(0, i64::MAX as i128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_resource_over_many_records_is_refused_and_counted() {
        let metrics = crate::metrics::SourceMetrics::default();
        let max = 8 << 20;
        // 1,000 records under a 1 KiB resource: about 1.3 MB, taken.
        assert!(check_expansion([(1000, 1024)].into_iter(), 4000, max, &metrics).is_ok());
        // 2 M empty records under a 4 MiB resource: petabytes, refused.
        let refused = check_expansion([(2_000_000, 4 << 20)].into_iter(), 8 << 20, max, &metrics);
        assert_eq!(refused.unwrap_err().0, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            metrics.oversized.load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    fn logs_request(records: Vec<proto::LogRecord>) -> proto::ExportLogsServiceRequest {
        proto::ExportLogsServiceRequest {
            resource_logs: vec![proto::ResourceLogs {
                scope_logs: vec![proto::ScopeLogs {
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn a_body_that_would_decode_into_far_more_memory_is_refused_before_decoding() {
        use prost::Message;
        let metrics = crate::metrics::SourceMetrics::default();
        let limits = crate::source::net::Limits {
            max_message: 4 << 20,
            ..crate::source::net::Limits::default()
        };
        let check = |encoding, body: &[u8]| {
            http_intake::decode_cost(
                encoding,
                body,
                body.len() as u64,
                &decode_cost::LOGS_REQUEST,
                decode_cost::JSON_OBJECTS,
                &metrics,
            )
            .and_then(|needed| {
                http_intake::check_memory(needed, "", body.len(), limits.max_message, &metrics)
            })
            .map_err(|(status, _)| status)
        };
        // What an SDK sends: records with a body and a few attributes,
        // nearly 4 MB of them in JSON, in either encoding.
        let attribute = |key: &str| proto::KeyValue {
            key: key.into(),
            value: Some(proto::AnyValue {
                value: Some(proto::any_value::Value::StringValue("value".into())),
            }),
        };
        let record = proto::LogRecord {
            time_unix_nano: 1_700_000_000_000_000_000,
            severity_number: 9,
            body: Some(proto::AnyValue {
                value: Some(proto::any_value::Value::StringValue(
                    "GET /api/users/42 200 in 12 ms".into(),
                )),
            }),
            attributes: ["http.method", "http.route", "http.status_code", "user.id"]
                .map(attribute)
                .to_vec(),
            ..Default::default()
        };
        let normal = logs_request(vec![record.clone(); 8_000]);
        let protobuf = normal.encode_to_vec();
        let json = serde_json::to_vec(&normal).unwrap();
        assert!(protobuf.len() < 4 << 20 && json.len() < 4 << 20);
        assert_eq!(check(Encoding::Protobuf, &protobuf), Ok(()));
        assert_eq!(check(Encoding::Json, &json), Ok(()));
        // Gzipped, a body may unpack to 4 × max_message: the budget grows
        // with it.
        let unpacked = logs_request(vec![record; 50_000]).encode_to_vec();
        assert!(unpacked.len() > 4 << 20 && unpacked.len() < 16 << 20);
        assert_eq!(check(Encoding::Protobuf, &unpacked), Ok(()));
        // 2 MB of empty records, two bytes each on the wire: a million
        // structs of 184 bytes once decoded.
        let empty = logs_request(vec![proto::LogRecord::default(); 1_000_000]).encode_to_vec();
        assert!(empty.len() < 4 << 20);
        assert_eq!(
            check(Encoding::Protobuf, &empty),
            Err(StatusCode::PAYLOAD_TOO_LARGE)
        );
        let empty_json = format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{}{{}}]}}]}}]}}"#,
            "{},".repeat(1_000_000)
        );
        assert_eq!(
            check(Encoding::Json, empty_json.as_bytes()),
            Err(StatusCode::PAYLOAD_TOO_LARGE)
        );
        assert_eq!(
            metrics.oversized.load(std::sync::atomic::Ordering::Relaxed),
            2
        );
        // A wire format broken inside is said, and counted as malformed.
        let mut broken = protobuf[..1000].to_vec();
        broken.truncate(999);
        assert_eq!(
            check(Encoding::Protobuf, &broken),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(metrics.malformed.get().0, 1);
    }
}
