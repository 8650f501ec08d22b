//! What the HTTP sources (OTLP, Zipkin) share: a listener on the network
//! runtime, the bearer token, a body read within `max_message` (gzip
//! unpacked within four times that), the memory its requests may hold at
//! once ([`MemoryLimit`]), the 503 with `Retry-After` while the pipeline is
//! behind or that memory is held, and refusals as plain-text answers that
//! say why.

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
use super::memory::{self, MemoryLimit, Reservation, Short};
use super::net::{self, Emitter, Limits};
use super::tenant::Tenancy;
use crate::auth_guard;
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
    /// The memory the requests under way may hold at once, bodies and
    /// their decoded forms together (see [`MemoryLimit`]).
    pub max_memory: usize,
}

/// What the requests of an HTTP source may hold at once where a
/// configuration names nothing (unless [`min_max_memory`] is more): a few
/// large requests, or thousands of the small ones SDKs send.
pub const DEFAULT_MAX_MEMORY: usize = 256 << 20;

/// The least `max_memory` may be: a body of `max_message` bytes decoded
/// into [`MAX_EXPANSION`] times its size.
pub fn min_max_memory(max_message: usize) -> usize {
    max_message.saturating_mul(MAX_EXPANSION)
}

/// A listener's configuration and the memory its requests share.
#[derive(Debug)]
pub struct Intake {
    pub config: HttpSourceConfig,
    pub memory: Arc<MemoryLimit>,
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
    T: Fn(Request<Incoming>, Emitter, Arc<Intake>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<http_server::Body>, Refusal>> + Send + 'static,
{
    let tls = match &config.tls {
        Some(files) => Some(tokio_rustls::TlsAcceptor::from(
            crate::tls::server_config(files).map_err(io::Error::other)?,
        )),
        None => None,
    };
    net::start(name, wiring, move |emitter| {
        let intake = Arc::new(Intake {
            memory: MemoryLimit::new(config.max_memory, Arc::clone(&emitter.metrics)),
            config,
        });
        let config = &intake.config;
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
                let answer = take(request, emitter.clone(), Arc::clone(&intake));
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
    let retry_after = match status {
        StatusCode::SERVICE_UNAVAILABLE => Some("1"),
        // A client shut out for wrong tokens: the most it waits.
        StatusCode::TOO_MANY_REQUESTS => Some(auth_guard::RETRY_AFTER),
        _ => None,
    };
    if let Some(seconds) = retry_after {
        response.headers_mut().insert(
            RETRY_AFTER,
            hyper::header::HeaderValue::from_static(seconds),
        );
    }
    response
}

/// What a client shut out for wrong tokens is told; `Retry-After` says
/// the most it waits.
pub const SHUT_OUT: &str =
    "too many wrong tokens from this address lately: shut out for up to a minute";

/// Refuses (401, counted) a request without one of the source's tokens,
/// and (429, counted) one from a client that gave too many wrong ones
/// lately ([`auth_guard`]); says whose the request's records are.
pub fn check_token<'c>(
    request: &Request<Incoming>,
    intake: &'c Intake,
    metrics: &SourceMetrics,
) -> Result<Tenancy<'c>, Refusal> {
    let config = &intake.config;
    if config.tokens.is_empty() {
        return Ok(Tenancy::new(config.tenant.as_deref(), false));
    }
    let given = bearer(request).filter(|token| !token.is_empty());
    let peer = http_server::peer(request);
    if given.is_some() && auth_guard::shared().shut_out(peer).is_some() {
        metrics.failed_auth.fetch_add(1, Ordering::Relaxed);
        return Err((StatusCode::TOO_MANY_REQUESTS, SHUT_OUT.into()));
    }
    match given.and_then(|given| crate::config::Token::find(&config.tokens, given)) {
        Some(token) => Ok(Tenancy::new(
            token.tenant.as_deref().or(config.tenant.as_deref()),
            true,
        )),
        None => {
            metrics.failed_auth.fetch_add(1, Ordering::Relaxed);
            if let Some(given) = given {
                auth_guard::shared().failed(peer, given.as_bytes());
            }
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
/// anything of the request is read; counted as deferred.
pub fn check_room(emitter: &Emitter) -> Result<(), Refusal> {
    if emitter.is_behind() {
        emitter.metrics.deferred.fetch_add(1, Ordering::Relaxed);
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "weir's buffers are full: try again later".into(),
        ));
    }
    Ok(())
}

/// The answer to a request whose records were not all taken because weir
/// is stopping: 503, deferred, for the client to send again.
pub fn stopping(metrics: &SourceMetrics) -> Refusal {
    metrics.deferred.fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "weir is stopping: try again later".into(),
    )
}

/// A request's body, unpacked, with the memory it and what is made of it
/// hold of the source's [`MemoryLimit`] until it is dropped.
#[derive(Debug)]
pub struct Received {
    /// The body, unpacked.
    pub bytes: Bytes,
    /// The body's size as sent.
    pub size: u64,
    memory: Reservation,
}

impl Received {
    /// Holds `needed` bytes more of the source's memory for what the body
    /// becomes: 503 (deferred) while the requests under way hold too much
    /// for it, 413 (oversized) if it would never fit.
    pub fn hold(&mut self, needed: usize, metrics: &SourceMetrics) -> Result<(), Refusal> {
        hold(&mut self.memory, needed, metrics)
            .map_err(|(status, why)| (status, format!("decoded, the request {why}")))
    }
}

/// Holds `bytes` more in `memory`, or refuses the request, saying why.
fn hold(memory: &mut Reservation, bytes: usize, metrics: &SourceMetrics) -> Result<(), Refusal> {
    match memory.grow(bytes) {
        Ok(()) => Ok(()),
        Err(Short::Busy) => {
            metrics.deferred.fetch_add(1, Ordering::Relaxed);
            Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "needs more memory than the requests under way leave of max_memory: try again later"
                    .into(),
            ))
        }
        Err(Short::TooLarge) => {
            metrics.oversized.fetch_add(1, Ordering::Relaxed);
            Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "would take {bytes} bytes more than its {}, past max_memory ({} bytes) on its own",
                    memory.bytes(),
                    memory.limit()
                ),
            ))
        }
    }
}

/// How much more of the source's memory a gzipped body takes at a time
/// as it is unpacked.
const UNPACK_STEP: usize = 64 << 10;

/// The request's body, unpacked, holding its bytes of `memory`: those it
/// says it has (or `max_message` if it does not say) before they are
/// read, and the unpacked ones as they come.
pub async fn body(
    request: Request<Incoming>,
    limits: &Limits,
    memory: &Arc<MemoryLimit>,
    metrics: &SourceMetrics,
) -> Result<Received, Refusal> {
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
    let declared = hyper::body::Body::size_hint(request.body()).exact();
    if let Some(len) = declared.filter(|&len| len > max as u64) {
        metrics.oversized.fetch_add(1, Ordering::Relaxed);
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a body of {len} bytes, larger than max_message ({max} bytes)"),
        ));
    }
    // A body that does not say its length (chunked) may be up to
    // max_message: that is held until it is read.
    let expected = declared.map_or(max, |len| len as usize);
    let mut reservation = memory.reservation();
    hold(&mut reservation, expected, metrics).map_err(|(status, why)| {
        let what = match declared {
            Some(len) => format!("a body of {len} bytes"),
            None => format!("a body without a length (up to max_message, {max} bytes)"),
        };
        (status, format!("{what} {why}"))
    })?;
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
    reservation.shrink_to(body.len());
    if !gzipped {
        return Ok(Received {
            bytes: body,
            size,
            memory: reservation,
        });
    }
    let most = max * 4;
    let mut unpacked = Vec::new();
    let mut unpacking = flate2::read::MultiGzDecoder::new(&body[..]).take(most as u64 + 1);
    loop {
        // Room for a step, as the vector would grow (doubling), held
        // before it is allocated.
        let capacity = memory::grown_capacity(unpacked.len(), unpacked.capacity(), UNPACK_STEP);
        let growth = (body.len() + capacity).saturating_sub(reservation.bytes());
        hold(&mut reservation, growth, metrics).map_err(|(status, why)| {
            (
                status,
                format!(
                    "unpacked to {} bytes so far, the body {why}",
                    unpacked.len()
                ),
            )
        })?;
        unpacked.reserve_exact(capacity - unpacked.len());
        let step = (&mut unpacking)
            .take(UNPACK_STEP as u64)
            .read_to_end(&mut unpacked)
            .map_err(|e| {
                metrics.malformed.add(1, size);
                (StatusCode::BAD_REQUEST, format!("gzip: {e}"))
            })?;
        if step < UNPACK_STEP {
            break;
        }
    }
    // The packed body goes; the unpacked one stays.
    reservation.shrink_to(unpacked.capacity());
    if unpacked.len() > most {
        metrics.oversized.fetch_add(1, Ordering::Relaxed);
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a body that unpacks to more than {most} bytes"),
        ));
    }
    Ok(Received {
        bytes: Bytes::from(unpacked),
        size,
        memory: reservation,
    })
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

/// What a body takes in memory decoded, counted on the wire before
/// decoding it: a protobuf `root` message, or JSON whose objects decode
/// into the structs `json` describes. A protobuf body whose wire format
/// is broken is refused as malformed (400, its `received` bytes counted),
/// saying where.
pub fn decode_cost(
    encoding: Encoding,
    body: &[u8],
    received: u64,
    root: &decode_cost::MessageType,
    json: decode_cost::JsonObjects,
    metrics: &SourceMetrics,
) -> Result<usize, Refusal> {
    match encoding {
        Encoding::Protobuf => decode_cost::protobuf(body, root).map_err(|what| {
            metrics.malformed.add(1, received);
            (
                StatusCode::BAD_REQUEST,
                format!("not an {}: {what}", root.name),
            )
        }),
        Encoding::Json => Ok(decode_cost::json(body, json)),
    }
}

/// Refuses a request whose body would take too much memory decoded (see
/// [`check_memory`] and [`decode_cost`]), and holds that memory for it
/// ([`Received::hold`]).
pub fn check_decode_cost(
    encoding: Encoding,
    received: &mut Received,
    root: &decode_cost::MessageType,
    json: decode_cost::JsonObjects,
    limits: &Limits,
    metrics: &SourceMetrics,
) -> Result<(), Refusal> {
    let needed = decode_cost(
        encoding,
        &received.bytes,
        received.size,
        root,
        json,
        metrics,
    )?;
    check_memory(
        needed,
        "decoded, it would take",
        received.bytes.len(),
        limits.max_message,
        metrics,
    )?;
    received.hold(needed, metrics)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_that_does_not_fit_beside_the_others_is_deferred_one_that_never_fits_too_large() {
        let metrics = Arc::new(SourceMetrics::default());
        let memory = MemoryLimit::new(1000, Arc::clone(&metrics));
        let mut other = memory.reservation();
        hold(&mut other, 600, &metrics).unwrap();
        let mut mine = memory.reservation();
        let (status, why) = hold(&mut mine, 500, &metrics).unwrap_err();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{why}");
        assert_eq!(metrics.deferred.load(Ordering::Relaxed), 1);
        let (status, why) = hold(&mut mine, 1001, &metrics).unwrap_err();
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(why.contains("max_memory (1000 bytes)"), "{why}");
        assert_eq!(metrics.oversized.load(Ordering::Relaxed), 1);
        drop(other);
        hold(&mut mine, 500, &metrics).unwrap();
        assert_eq!(metrics.memory_held.load(Ordering::Relaxed), 500);
    }
}
