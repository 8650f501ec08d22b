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

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};

use super::net::{self, Emitter, Limits};
use super::{Control, Output};
use crate::http_server;
use crate::metrics::SourceMetrics;
use crate::otlp::{logs, proto, traces};

/// The port where a configuration names none.
pub const DEFAULT_PORT: u16 = 4318;

/// The largest request body where a configuration names none.
pub const DEFAULT_MAX_MESSAGE: usize = 8 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    pub address: std::net::SocketAddr,
    pub limits: Limits,
    /// Requests must carry `Authorization: Bearer TOKEN`.
    pub token: Option<String>,
}

/// Binds the listener and starts the source; it runs until `stop` is set.
pub fn start(
    name: &str,
    config: OtlpConfig,
    output: Output,
    control: Arc<Control>,
    metrics: Arc<SourceMetrics>,
    stop: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    net::start(name, output, control, metrics, stop, move |emitter| {
        let listener = std::net::TcpListener::bind(config.address)?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let config = Arc::new(config);
        let refused = Arc::clone(&emitter.metrics);
        Ok(http_server::serve_on(
            listener,
            config.limits.max_connections,
            Some(config.limits.read_timeout),
            move || {
                refused.refused_connections.fetch_add(1, Ordering::Relaxed);
            },
            move |request| handle(request, emitter.clone(), Arc::clone(&config)),
        ))
    })
}

/// How a request's body is encoded, and so its answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

async fn handle(
    request: Request<Incoming>,
    emitter: Emitter,
    config: Arc<OtlpConfig>,
) -> Response<Full<Bytes>> {
    match take(request, &emitter, &config).await {
        Ok(answer) => answer,
        Err((status, message)) => {
            let mut response = text(status, message);
            if status == StatusCode::SERVICE_UNAVAILABLE {
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, hyper::header::HeaderValue::from_static("1"));
            }
            response
        }
    }
}

type Refusal = (StatusCode, String);

async fn take(
    request: Request<Incoming>,
    emitter: &Emitter,
    config: &OtlpConfig,
) -> Result<Response<Full<Bytes>>, Refusal> {
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
    if let Some(token) = &config.token {
        let given = request
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            metrics.failed_auth.fetch_add(1, Ordering::Relaxed);
            return Err((
                StatusCode::UNAUTHORIZED,
                "expected Authorization: Bearer TOKEN".into(),
            ));
        }
    }
    let header = |name| {
        request
            .headers()
            .get(name)
            .and_then(|v: &hyper::header::HeaderValue| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let encoding = match header(CONTENT_TYPE).split(';').next().unwrap_or("").trim() {
        "application/x-protobuf" | "application/protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        other => {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "content-type {other:?}: expected application/x-protobuf or application/json"
                ),
            ));
        }
    };
    let gzipped = match header(CONTENT_ENCODING).as_str() {
        "" | "identity" => false,
        "gzip" => true,
        other => {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content-encoding {other:?}: expected gzip or none"),
            ));
        }
    };
    if emitter.is_behind() {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "weir's buffers are full: try again later".into(),
        ));
    }
    let max = config.limits.max_message;
    let body = match Limited::new(request.into_body(), max).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                metrics.oversized.fetch_add(1, Ordering::Relaxed);
                return Err((
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("a body larger than max_message ({max} bytes)"),
                ));
            }
            return Err((StatusCode::BAD_REQUEST, format!("reading the body: {e}")));
        }
    };
    let size = body.len() as u64;
    let malformed = |what: String| {
        metrics.malformed.add(1, size);
        (StatusCode::BAD_REQUEST, what)
    };
    let body = if gzipped {
        let mut unpacked = Vec::new();
        flate2::read::MultiGzDecoder::new(&body[..])
            .take(max as u64 * 4 + 1)
            .read_to_end(&mut unpacked)
            .map_err(|e| malformed(format!("gzip: {e}")))?;
        if unpacked.len() > max * 4 {
            metrics.oversized.fetch_add(1, Ordering::Relaxed);
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a body that unpacks to more than {} bytes", max * 4),
            ));
        }
        Bytes::from(unpacked)
    } else {
        body
    };
    let (records, rejected) = match signal {
        Signal::Logs => {
            let request: proto::ExportLogsServiceRequest =
                decode(encoding, &body, "ExportLogsServiceRequest").map_err(malformed)?;
            (logs::to_records(request, now_ns()), 0)
        }
        Signal::Traces => {
            let request: proto::ExportTraceServiceRequest =
                decode(encoding, &body, "ExportTraceServiceRequest").map_err(malformed)?;
            traces::to_records(request, now_ns())
        }
    };
    metrics.read.add(records.len() as u64, size);
    if rejected > 0 {
        metrics.malformed.add(rejected as u64, 0);
    }
    if !records.is_empty() && !emitter.send_and_wait(records).await {
        return Err((StatusCode::SERVICE_UNAVAILABLE, "weir is stopping".into()));
    }
    let (content_type, body) = answer(signal, encoding, rejected);
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response"))
}

/// Which signal a request carries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Signal {
    Logs,
    Traces,
}

/// Decodes a request body; the error says it is not a `name`, and why.
fn decode<T: prost::Message + Default + serde::de::DeserializeOwned>(
    encoding: Encoding,
    body: &Bytes,
    name: &str,
) -> Result<T, String> {
    let decoded = match encoding {
        Encoding::Protobuf => T::decode(&body[..]).map_err(|e| e.to_string()),
        Encoding::Json => serde_json::from_slice(body).map_err(|e| e.to_string()),
    };
    decoded.map_err(|e| format!("not an {name}: {e}"))
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

fn text(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(message + "\n")))
        .expect("a valid response")
}

fn now_ns() -> i64 {
    weir_monitor::format::timestamp::Timestamp::now()
        .as_nanos()
        .clamp(0, i64::MAX as i128) as i64
}
