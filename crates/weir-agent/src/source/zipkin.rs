//! The `zipkin` source: `POST /api/v2/spans`, as Zipkin's reporters and
//! the Zipkin API document it: a JSON list of v2 spans
//! (`application/json`) or a proto3 `ListOfSpans`
//! (`application/x-protobuf`), gzipped or not. The answer is 202 once the
//! spans are in the sinks' buffers; a span with a bad id or kind refuses
//! the whole request with 400 naming the span and the field, as Zipkin
//! does; 503 with `Retry-After` while the pipeline is behind.

use std::io;
use std::thread::JoinHandle;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use prost::Message;

use super::Wiring;
use super::http_intake::{self, Encoding, Intake, Refusal};
use super::net::Emitter;
use crate::http_server::{Body, Handler};
use crate::zipkin;

/// The port where a configuration names none (Zipkin's).
pub const DEFAULT_PORT: u16 = 9411;

/// The largest request body where a configuration names none.
pub const DEFAULT_MAX_MESSAGE: usize = 8 << 20;

/// The source's listener.
pub type ZipkinConfig = http_intake::HttpSourceConfig;

/// Binds the listener and starts the source; it runs until it is stopped.
/// With `api`, every request but `POST /api/v2/spans` goes to it: the
/// collector's query API, on the port where Zipkin clients find both.
pub fn start(
    name: &str,
    config: ZipkinConfig,
    wiring: Wiring,
    api: Option<Handler>,
) -> io::Result<JoinHandle<()>> {
    http_intake::start(name, config, wiring, move |request, emitter, intake| {
        let api = api.clone();
        async move {
            let spans =
                (request.method(), request.uri().path()) == (&Method::POST, "/api/v2/spans");
            match api {
                Some(api) if !spans => Ok(api(request).await),
                _ => take(request, &emitter, &intake).await,
            }
        }
    })
}

async fn take(
    request: Request<Incoming>,
    emitter: &Emitter,
    intake: &Intake,
) -> Result<Response<Body>, Refusal> {
    let config = &intake.config;
    let metrics = &emitter.metrics;
    if (request.method(), request.uri().path()) != (&Method::POST, "/api/v2/spans") {
        return Err((
            StatusCode::NOT_FOUND,
            format!("no {} here: POST /api/v2/spans", request.uri().path()),
        ));
    }
    let tenant = http_intake::check_token(&request, intake, metrics)?;
    let encoding = http_intake::encoding(&request)?;
    http_intake::check_room(emitter)?;
    let mut received = http_intake::body(request, &config.limits, &intake.memory, metrics).await?;
    http_intake::check_decode_cost(
        encoding,
        &mut received,
        &zipkin::decode_cost::LIST_OF_SPANS,
        zipkin::decode_cost::JSON_OBJECTS,
        &config.limits,
        metrics,
    )?;
    let (body, size) = (&received.bytes, received.size);
    let malformed = |what: String| {
        metrics.malformed.add(1, size);
        (StatusCode::BAD_REQUEST, what)
    };
    let spans: Vec<zipkin::Span> = match encoding {
        Encoding::Json => serde_json::from_slice(body)
            .map_err(|e| malformed(format!("not a list of Zipkin v2 spans: {e}")))?,
        Encoding::Protobuf => zipkin::proto::ListOfSpans::decode(&body[..])
            .map_err(|e| malformed(format!("not a Zipkin ListOfSpans: {e}")))?
            .spans
            .into_iter()
            .map(zipkin::Span::from)
            .collect(),
    };
    let observed = now_ns();
    let mut records = spans
        .into_iter()
        .enumerate()
        .map(|(i, span)| zipkin::to_record(span, observed).map_err(|e| format!("span {i}: {e}")))
        .collect::<Result<Vec<_>, _>>()
        .map_err(malformed)?;
    tenant.apply(&mut records);
    metrics.read.add(records.len() as u64, size);
    if !records.is_empty() && !emitter.send_and_wait(records).await {
        return Err(http_intake::stopping(metrics));
    }
    Ok(http_intake::answer(
        StatusCode::ACCEPTED,
        "text/plain",
        Vec::new(),
    ))
}

fn now_ns() -> i64 {
    weir_monitor::format::timestamp::Timestamp::now()
        .as_nanos()
        .clamp(0, i64::MAX as i128) as i64
}
