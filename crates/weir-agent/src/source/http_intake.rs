//! What the HTTP sources (OTLP, Zipkin) share: a listener on the network
//! runtime, the bearer token, a body read within `max_message` (gzip
//! unpacked within four times that), the 503 with `Retry-After` while the
//! pipeline is behind, and refusals as plain-text answers that say why.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};

use super::Wiring;
use super::decode_cost;
use super::net::{self, Emitter, Limits};
use super::tenant::Tenancy;
use crate::http_server;
use crate::metrics::SourceMetrics;

/// A request refused: the status and what to tell the client.
pub type Refusal = (StatusCode, String);

/// How a request's body is encoded, and so its answer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Encoding {
    Protobuf,
    Json,
}

/// An HTTP source's listener, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSourceConfig {
    pub address: std::net::SocketAddr,
    pub limits: Limits,
    /// Requests must carry `Authorization: Bearer TOKEN` with one of
    /// these tokens (when there are any).
    pub tokens: Vec<crate::config::Token>,
    /// The tenant of every record this source takes, whatever its sender
    /// says (a token's own tenant goes first).
    pub tenant: Option<String>,
    /// Serve HTTPS with this certificate and key.
    pub tls: Option<crate::tls::ServerFiles>,
}

/// Binds the listener `config` names and serves it (over TLS if asked)
/// with `take` on a network source's runtime until the source stops; a
/// refusal becomes a plain-text answer.
pub fn start<T, F>(
    name: &str,
    config: HttpSourceConfig,
    wiring: Wiring,
    take: T,
) -> io::Result<JoinHandle<()>>
where
    T: Fn(Request<Incoming>, Emitter, Arc<HttpSourceConfig>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<http_server::Body>, Refusal>> + Send + 'static,
{
    let tls = match &config.tls {
        Some(files) => Some(tokio_rustls::TlsAcceptor::from(
            crate::tls::server_config(files).map_err(io::Error::other)?,
        )),
        None => None,
    };
    let config = Arc::new(config);
    net::start(name, wiring, move |emitter| {
        let listener = std::net::TcpListener::bind(config.address)?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let metrics = Arc::clone(&emitter.metrics);
        let limits = config.limits.clone();
        let take = Arc::new(take);
        Ok(http_server::serve_on(
            listener,
            limits.max_connections,
            Some(limits.read_timeout),
            tls,
            Some(metrics),
            move |request| {
                let answer = take(request, emitter.clone(), Arc::clone(&config));
                async move {
                    answer
                        .await
                        .unwrap_or_else(|(status, message)| refusal(status, message))
                }
            },
        ))
    })
}

fn refusal(status: StatusCode, message: String) -> Response<http_server::Body> {
    let mut response = Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(http_server::whole(message + "\n"))
        .expect("a valid response");
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(RETRY_AFTER, hyper::header::HeaderValue::from_static("1"));
    }
    response
}

/// Refuses (401, counted) a request without one of the source's tokens;
/// says whose the request's records are.
pub fn check_token<'c>(
    request: &Request<Incoming>,
    config: &'c HttpSourceConfig,
    metrics: &SourceMetrics,
) -> Result<Tenancy<'c>, Refusal> {
    if config.tokens.is_empty() {
        return Ok(Tenancy::new(config.tenant.as_deref(), false));
    }
    // Every token is compared, so the time taken says nothing of which
    // one came close.
    let mut found = None;
    if let Some(given) = bearer(request) {
        for token in &config.tokens {
            let same = crate::source::forward::auth::constant_time_eq(
                given.as_bytes(),
                token.token.as_bytes(),
            );
            if same {
                found = Some(token);
            }
        }
    }
    match found {
        Some(token) => Ok(Tenancy::new(
            token.tenant.as_deref().or(config.tenant.as_deref()),
            true,
        )),
        None => {
            metrics.failed_auth.fetch_add(1, Ordering::Relaxed);
            Err((
                StatusCode::UNAUTHORIZED,
                "expected Authorization: Bearer TOKEN".into(),
            ))
        }
    }
}

/// The token of a request's `Authorization: Bearer TOKEN`, if any.
pub fn bearer<B>(request: &Request<B>) -> Option<&str> {
    request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// The encoding a request's content type names.
pub fn encoding(request: &Request<Incoming>) -> Result<Encoding, Refusal> {
    let content_type = header(request, CONTENT_TYPE);
    match content_type.split(';').next().unwrap_or("").trim() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        other => Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content-type {other:?}: expected application/x-protobuf or application/json"),
        )),
    }
}

fn header(request: &Request<Incoming>, name: hyper::header::HeaderName) -> String {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Refuses with 503 and `Retry-After` while the pipeline is behind, before
/// anything of the request is read.
pub fn check_room(emitter: &Emitter) -> Result<(), Refusal> {
    if emitter.is_behind() {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "weir's buffers are full: try again later".into(),
        ));
    }
    Ok(())
}

/// The request's body, unpacked, and its size as sent.
pub async fn body(
    request: Request<Incoming>,
    limits: &Limits,
    metrics: &SourceMetrics,
) -> Result<(Bytes, u64), Refusal> {
    let max = limits.max_message;
    let gzipped = match header(&request, CONTENT_ENCODING).as_str() {
        "" | "identity" => false,
        "gzip" => true,
        other => {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content-encoding {other:?}: expected gzip or none"),
            ));
        }
    };
    // A client that trickles its body would otherwise hold a connection
    // slot for good.
    let collected = tokio::time::timeout(
        limits.read_timeout,
        Limited::new(request.into_body(), max).collect(),
    )
    .await
    .map_err(|_| {
        metrics
            .timed_out_connections
            .fetch_add(1, Ordering::Relaxed);
        (
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body took longer than read_timeout ({} s)",
                limits.read_timeout.as_secs()
            ),
        )
    })?;
    let body = match collected {
        Ok(body) => body.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            metrics.oversized.fetch_add(1, Ordering::Relaxed);
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a body larger than max_message ({max} bytes)"),
            ));
        }
        Err(e) => return Err((StatusCode::BAD_REQUEST, format!("reading the body: {e}"))),
    };
    let size = body.len() as u64;
    if !gzipped {
        return Ok((body, size));
    }
    let mut unpacked = Vec::new();
    flate2::read::MultiGzDecoder::new(&body[..])
        .take(max as u64 * 4 + 1)
        .read_to_end(&mut unpacked)
        .map_err(|e| {
            metrics.malformed.add(1, size);
            (StatusCode::BAD_REQUEST, format!("gzip: {e}"))
        })?;
    if unpacked.len() > max * 4 {
        metrics.oversized.fetch_add(1, Ordering::Relaxed);
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a body that unpacks to more than {} bytes", max * 4),
        ));
    }
    Ok((Bytes::from(unpacked), size))
}

/// Decodes a body; the error says it is not a `name`, and why.
pub fn decode<T: prost::Message + Default + serde::de::DeserializeOwned>(
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

/// How many times its body (or `max_message`, if more) a request may take
/// in memory, decoded.
pub const MAX_EXPANSION: usize = 16;

/// Refuses (413, counted as oversized) a request whose decoded form would
/// take more than [`MAX_EXPANSION`] × its `body` bytes (unpacked, which
/// gzip lets reach 4 × `max_message`), or × `max_message` for a smaller
/// body: `needed` bytes, for the reason `why`.
pub fn check_memory(
    needed: usize,
    why: &str,
    body: usize,
    max_message: usize,
    metrics: &SourceMetrics,
) -> Result<(), Refusal> {
    let budget = body.max(max_message).saturating_mul(MAX_EXPANSION);
    if needed <= budget {
        return Ok(());
    }
    metrics.oversized.fetch_add(1, Ordering::Relaxed);
    Err((
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "{why}: about {needed} bytes, past {budget} ({MAX_EXPANSION} × the body or max_message)"
        ),
    ))
}

/// Refuses a body that would take too much memory decoded (see
/// [`check_memory`]), counting it on the wire before decoding it: a
/// protobuf `root` message, or JSON whose objects decode into the structs
/// `json` describes. A protobuf body whose wire format is broken is
/// refused as malformed (400, its `received` bytes counted), saying where.
pub fn check_decode_cost(
    encoding: Encoding,
    body: &[u8],
    received: u64,
    root: &decode_cost::MessageType,
    json: decode_cost::JsonObjects,
    limits: &Limits,
    metrics: &SourceMetrics,
) -> Result<(), Refusal> {
    let needed = match encoding {
        Encoding::Protobuf => decode_cost::protobuf(body, root).map_err(|what| {
            metrics.malformed.add(1, received);
            (
                StatusCode::BAD_REQUEST,
                format!("not an {}: {what}", root.name),
            )
        })?,
        Encoding::Json => decode_cost::json(body, json),
    };
    check_memory(
        needed,
        "decoded, it would take",
        body.len(),
        limits.max_message,
        metrics,
    )
}

/// An answer with `body` of `content_type`.
pub fn answer(
    status: StatusCode,
    content_type: &str,
    body: Vec<u8>,
) -> Response<http_server::Body> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type)
        .body(http_server::whole(body))
        .expect("a valid response")
}
