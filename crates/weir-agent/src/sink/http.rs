//! A sink that POSTs batches over HTTP/1.1, optionally gzipped, with
//! configured headers and authentication: NDJSON (the `http` sink) or an
//! OTLP `ExportLogsServiceRequest` in protobuf (the `otlp` sink).
//!
//! Responses are classified the way the destination means them: 2xx
//! delivered; retryable, honouring `Retry-After` in seconds, are 408, 429
//! and 5xx for NDJSON, and the statuses the OTLP specification names (429,
//! 502, 503, 504) for OTLP; any other status is permanent (the batch
//! itself was refused); connection errors and timeouts are retryable.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use prost::Message;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

use super::{Arrived, SendError, Sink, ndjson};
use crate::otlp::{self, proto};
use crate::record::LogRecord;

/// Bytes of a response body read at most (its first 200 name a failure).
const MAX_RESPONSE_BODY: usize = 64 << 10;

/// What a request body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// A JSON object a record, a line each (`application/x-ndjson`).
    Ndjson,
    /// OTLP in protobuf (`application/x-protobuf`): logs to
    /// `URI/v1/logs`, spans to `URI/v1/traces`.
    Otlp,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `http://host:port/path`.
    pub uri: Uri,
    pub format: BodyFormat,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// For an https uri: the CAs to trust and the name to check.
    pub tls: Option<crate::tls::ClientFiles>,
    pub gzip: bool,
    /// The whole exchange, connecting included.
    pub timeout: Duration,
}

pub struct HttpSink {
    config: HttpConfig,
    /// Made once from `config.tls`: reading the CA file per connection
    /// would cost a reconnect after each failure.
    tls: Option<Tls>,
    runtime: Runtime,
    /// The connection kept between batches.
    sender: Option<Sender>,
    body: Vec<u8>,
    /// OTLP: the logs of the batch being sent were delivered, with what
    /// the destination refused of them (its spans failed after): a retry
    /// sends only the spans.
    logs_delivered: Option<Refused>,
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSink")
            .field("uri", &self.config.uri)
            .finish()
    }
}

impl HttpSink {
    pub fn new(config: HttpConfig) -> std::io::Result<HttpSink> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let tls = match &config.tls {
            Some(files) => {
                let host = config
                    .uri
                    .host()
                    .unwrap_or_default()
                    .trim_matches(['[', ']']);
                Some(Tls {
                    connector: tokio_rustls::TlsConnector::from(
                        crate::tls::client_config(files).map_err(std::io::Error::other)?,
                    ),
                    name: crate::tls::server_name(files, host).map_err(std::io::Error::other)?,
                })
            }
            None => None,
        };
        Ok(HttpSink {
            config,
            tls,
            runtime,
            sender: None,
            body: Vec::new(),
            logs_delivered: None,
        })
    }

    /// What `self.body` holds, gzipped if asked, as a request body.
    fn body(&self) -> Result<Bytes, SendError> {
        if !self.config.gzip {
            return Ok(Bytes::copy_from_slice(&self.body));
        }
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(self.body.len() / 4),
            flate2::Compression::fast(),
        );
        gz.write_all(&self.body)
            .and_then(|()| gz.finish())
            .map(Bytes::from)
            .map_err(|e| SendError::retryable(format!("compressing the batch: {e}")))
    }

    /// Encodes `message` as protobuf into `self.body`.
    fn protobuf(&mut self, message: &impl prost::Message) -> Result<Bytes, SendError> {
        self.body.clear();
        message
            .encode(&mut self.body)
            .map_err(|e| SendError::permanent(format!("encoding OTLP: {e}")))?;
        self.body()
    }

    /// POSTs `body` to `uri` on the kept connection; the answer's body
    /// once it is a success.
    fn post(
        &mut self,
        uri: Uri,
        content_type: &'static str,
        body: Bytes,
    ) -> Result<Bytes, SendError> {
        let config = self.config.clone();
        let tls = self.tls.clone();
        let mut sender = self.sender.take();
        let outcome = self.runtime.block_on(async {
            tokio::time::timeout(
                config.timeout,
                exchange(&config, tls.as_ref(), &uri, content_type, &mut sender, body),
            )
            .await
            .unwrap_or_else(|_| {
                Err(SendError::retryable(format!(
                    "no answer from {uri} within {:?}",
                    config.timeout
                )))
            })
        });
        // A connection that failed or timed out is not used again.
        if outcome.is_ok() {
            self.sender = sender;
        }
        outcome
    }
}

impl Sink for HttpSink {
    fn new_batch(&mut self) {
        self.logs_delivered = None;
    }

    /// In OTLP, the logs of a batch whose spans failed arrived.
    fn arrived(&self, records: &[LogRecord]) -> Arrived {
        let Some(refused) = &self.logs_delivered else {
            return Arrived::default();
        };
        Arrived {
            records: records.iter().map(|r| r.span.is_none()).collect(),
            refused: refused.records,
        }
    }

    fn send(&mut self, records: &[LogRecord]) -> Result<(), SendError> {
        match self.config.format {
            BodyFormat::Ndjson => {
                self.body.clear();
                for record in records {
                    ndjson::encode(record, &mut self.body);
                }
                let body = self.body()?;
                self.post(self.config.uri.clone(), "application/x-ndjson", body)
                    .map(drop)
            }
            // Logs and spans each to their own path; should the spans fail
            // after the logs went, the retry sends only the spans. (A
            // partial_success of the logs is counted once: then.)
            BodyFormat::Otlp => {
                let logs_went = self.logs_delivered.is_some();
                let mut refused = self.logs_delivered.clone().unwrap_or_default();
                if !logs_went && records.iter().any(|r| r.span.is_none()) {
                    let body = self.protobuf(&otlp::logs::to_request(records))?;
                    let uri = signal_uri(&self.config.uri, "logs");
                    let answer = self.post(uri, "application/x-protobuf", body)?;
                    if let Ok(answer) = proto::ExportLogsServiceResponse::decode(answer)
                        && let Some(partial) = answer.partial_success
                    {
                        refused.add(partial.rejected_log_records, &partial.error_message);
                    }
                    self.logs_delivered = Some(refused.clone());
                }
                if records.iter().any(|r| r.span.is_some()) {
                    let body = self.protobuf(&otlp::traces::to_request(records))?;
                    let uri = signal_uri(&self.config.uri, "traces");
                    let answer = self.post(uri, "application/x-protobuf", body)?;
                    if let Ok(answer) = proto::ExportTraceServiceResponse::decode(answer)
                        && let Some(partial) = answer.partial_success
                    {
                        refused.add(partial.rejected_spans, &partial.error_message);
                    }
                }
                refused.outcome(records.len())
            }
        }
    }
}

/// What an OTLP destination's `partial_success` answers said it refused.
#[derive(Debug, Clone, Default)]
struct Refused {
    records: u64,
    messages: Vec<String>,
}

impl Refused {
    fn add(&mut self, rejected: i64, message: &str) {
        if rejected > 0 {
            self.records += rejected as u64;
        }
        if rejected > 0 || !message.is_empty() {
            self.messages.push(message.chars().take(200).collect());
        }
    }

    /// Delivered, or delivered with some refused (never more than were
    /// sent, whatever the destination claims).
    fn outcome(self, sent: usize) -> Result<(), SendError> {
        if self.records == 0 {
            return Ok(());
        }
        Err(SendError::PartlyRefused {
            refused: self.records.min(sent as u64),
            reason: self.messages.join("; "),
        })
    }
}

/// `ENDPOINT/v1/SIGNAL`, as OTEL_EXPORTER_OTLP_ENDPOINT is used.
fn signal_uri(endpoint: &Uri, signal: &str) -> Uri {
    format!("{}/v1/{signal}", endpoint.to_string().trim_end_matches('/'))
        .parse()
        .unwrap_or_else(|_| endpoint.clone())
}

async fn exchange(
    config: &HttpConfig,
    tls: Option<&Tls>,
    uri: &Uri,
    content_type: &'static str,
    sender: &mut Option<Sender>,
    body: Bytes,
) -> Result<Bytes, SendError> {
    let ready = match sender.as_mut() {
        Some(s) => s.ready().await.is_ok(),
        None => false,
    };
    if !ready {
        *sender = Some(connect(uri, tls).await?);
    }
    // Origin form (`/path?query`), as a client sends to the server itself;
    // the host goes in its header.
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = Request::post(target)
        .header(hyper::header::HOST, authority(uri))
        .header(hyper::header::CONTENT_TYPE, content_type);
    if config.gzip {
        request = request.header(hyper::header::CONTENT_ENCODING, "gzip");
    }
    for (name, value) in &config.headers {
        request = request.header(name, value);
    }
    let request = request
        .body(Full::new(body))
        .map_err(|e| SendError::permanent(format!("building the request: {e}")))?;
    let response = sender
        .as_mut()
        .expect("connected above")
        .send_request(request)
        .await
        .map_err(|e| SendError::retryable(format!("sending to {uri}: {e}")))?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(hyper::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    // Read the body through so the connection can carry the next request;
    // a body past the limit is not read on (memory stays bounded whatever
    // the destination sends), and its connection is not used again.
    let text = match Limited::new(response.into_body(), MAX_RESPONSE_BODY)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            *sender = None;
            Bytes::from_static(b"(a response body over 64 KiB, not read)")
        }
    };
    classify(config.format, status, retry_after, &text, uri)?;
    Ok(text)
}

fn classify(
    format: BodyFormat,
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    uri: &Uri,
) -> Result<(), SendError> {
    if status.is_success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let reason = format!("{uri} answered {status}: {}", said.trim());
    let retryable = match format {
        BodyFormat::Ndjson => {
            status == StatusCode::REQUEST_TIMEOUT
                || status == StatusCode::TOO_MANY_REQUESTS
                || status.is_server_error()
        }
        BodyFormat::Otlp => matches!(status.as_u16(), 429 | 502 | 503 | 504),
    };
    if retryable {
        Err(SendError::Retryable {
            reason,
            retry_after,
        })
    } else {
        Err(SendError::Permanent { reason })
    }
}

/// What an https connection is made with.
#[derive(Clone)]
struct Tls {
    connector: tokio_rustls::TlsConnector,
    /// The name the server's certificate must carry.
    name: rustls::pki_types::ServerName<'static>,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A connection to `uri`'s host: TLS over TCP when `tls` is given (an
/// https uri), plain TCP otherwise. A failed TLS handshake is retried
/// like any failed connection: the certificate may be renewed meanwhile.
async fn connect(uri: &Uri, tls: Option<&Tls>) -> Result<Sender, SendError> {
    let failed =
        |e: &dyn std::fmt::Display| SendError::retryable(format!("connecting to {uri}: {e}"));
    let host = uri.host().unwrap_or("127.0.0.1").trim_matches(['[', ']']);
    let port = uri
        .port_u16()
        .unwrap_or(if tls.is_some() { 443 } else { 80 });
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| failed(&e))?;
    let _ = stream.set_nodelay(true);
    match tls {
        Some(tls) => {
            let stream = tls
                .connector
                .connect(tls.name.clone(), stream)
                .await
                .map_err(|e| failed(&format!("TLS: {e}")))?;
            handshake(TokioIo::new(stream))
                .await
                .map_err(|e| failed(&e))
        }
        None => handshake(TokioIo::new(stream))
            .await
            .map_err(|e| failed(&e)),
    }
}

/// HTTP/1.1 over `io`, its connection driven by a task of its own.
async fn handshake<I>(io: I) -> Result<Sender, hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes.
        let _ = connection.await;
    });
    Ok(sender)
}

fn authority(uri: &Uri) -> String {
    uri.authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_as_the_destination_means_them() {
        let uri: Uri = "http://127.0.0.1:1/x".parse().unwrap();
        let ndjson = BodyFormat::Ndjson;
        assert_eq!(classify(ndjson, StatusCode::OK, None, b"", &uri), Ok(()));
        for retryable in [408, 429, 500, 502, 503] {
            let status = StatusCode::from_u16(retryable).unwrap();
            assert!(matches!(
                classify(ndjson, status, Some(Duration::from_secs(3)), b"busy", &uri),
                Err(SendError::Retryable { retry_after: Some(d), .. }) if d == Duration::from_secs(3)
            ));
        }
        for permanent in [400, 401, 404, 413] {
            let status = StatusCode::from_u16(permanent).unwrap();
            assert!(matches!(
                classify(ndjson, status, None, b"bad", &uri),
                Err(SendError::Permanent { .. })
            ));
        }
        // OTLP retries only what its specification says to.
        let otlp = BodyFormat::Otlp;
        for (status, retry) in [
            (429, true),
            (502, true),
            (503, true),
            (504, true),
            (500, false),
            (408, false),
        ] {
            let status = StatusCode::from_u16(status).unwrap();
            let outcome = classify(otlp, status, None, b"", &uri);
            assert_eq!(
                matches!(outcome, Err(SendError::Retryable { .. })),
                retry,
                "{status}"
            );
        }
    }

    /// A destination on loopback that answers each request with the next
    /// of `answers` (status, protobuf body); the request lines it got.
    fn destination(
        answers: Vec<(u16, Vec<u8>)>,
    ) -> (Uri, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        use std::io::{BufRead, BufReader, Read};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = std::sync::Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut answers = answers.into_iter().peekable();
            // A connection after a failed answer is a new one.
            while answers.peek().is_some() {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                while let Some((status, answer)) = answers.peek().cloned() {
                    let mut length = 0;
                    let mut first = String::new();
                    if reader.read_line(&mut first).unwrap_or(0) == 0 {
                        break;
                    }
                    answers.next();
                    log.lock().unwrap().push(first.trim().to_owned());
                    loop {
                        let mut line = String::new();
                        reader.read_line(&mut line).unwrap();
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(n) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = n.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    write!(
                    writer,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
                    answer.len()
                )
                .unwrap();
                    writer.write_all(&answer).unwrap();
                }
            }
        });
        (format!("http://127.0.0.1:{port}").parse().unwrap(), seen)
    }

    fn otlp_sink(uri: Uri) -> HttpSink {
        HttpSink::new(HttpConfig {
            uri,
            format: BodyFormat::Otlp,
            headers: Vec::new(),
            tls: None,
            gzip: false,
            timeout: Duration::from_secs(5),
        })
        .unwrap()
    }

    fn a_log() -> LogRecord {
        LogRecord {
            body: b"a log".to_vec(),
            ..LogRecord::default()
        }
    }

    fn a_span() -> LogRecord {
        LogRecord {
            span: Some(Box::default()),
            trace_id: Some([1; 16]),
            span_id: Some([2; 8]),
            ..LogRecord::default()
        }
    }

    #[test]
    fn a_retry_after_the_spans_failed_sends_only_the_spans() {
        let partial = proto::ExportLogsServiceResponse {
            partial_success: Some(proto::ExportLogsPartialSuccess {
                rejected_log_records: 1,
                error_message: "too old".into(),
            }),
        }
        .encode_to_vec();
        let (uri, seen) = destination(vec![
            (200, partial),
            (503, Vec::new()),
            (200, Vec::new()),
            (200, Vec::new()),
        ]);
        let mut sink = otlp_sink(uri);
        let batch = vec![a_log(), a_log(), a_span()];
        sink.new_batch();
        assert!(matches!(
            sink.send(&batch),
            Err(SendError::Retryable { .. })
        ));
        // The retry: the logs went already, and what was refused of them
        // is still said.
        assert!(matches!(
            sink.send(&batch),
            Err(SendError::PartlyRefused { refused: 1, .. })
        ));
        // A new batch sends its logs again.
        sink.new_batch();
        assert_eq!(sink.send(&[a_log()]), Ok(()));
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "POST /v1/logs HTTP/1.1",
                "POST /v1/traces HTTP/1.1",
                "POST /v1/traces HTTP/1.1",
                "POST /v1/logs HTTP/1.1"
            ]
        );
    }

    #[test]
    fn when_the_spans_are_refused_for_good_the_logs_that_went_are_said_to_have_arrived() {
        let partial = proto::ExportLogsServiceResponse {
            partial_success: Some(proto::ExportLogsPartialSuccess {
                rejected_log_records: 1,
                error_message: "too old".into(),
            }),
        }
        .encode_to_vec();
        let (uri, _) = destination(vec![(200, partial), (400, Vec::new())]);
        let mut sink = otlp_sink(uri);
        let batch = vec![a_log(), a_span(), a_log()];
        sink.new_batch();
        assert_eq!(sink.arrived(&batch), Arrived::default(), "nothing yet");
        assert!(matches!(
            sink.send(&batch),
            Err(SendError::Permanent { .. })
        ));
        assert_eq!(
            sink.arrived(&batch),
            Arrived {
                records: vec![true, false, true],
                refused: 1
            }
        );
        sink.new_batch();
        assert_eq!(sink.arrived(&batch), Arrived::default());
    }

    #[test]
    fn an_otlp_partial_success_says_how_many_records_the_destination_refused() {
        let logs = proto::ExportLogsServiceResponse {
            partial_success: Some(proto::ExportLogsPartialSuccess {
                rejected_log_records: 2,
                error_message: "too old".into(),
            }),
        }
        .encode_to_vec();
        let spans = proto::ExportTraceServiceResponse {
            partial_success: Some(proto::ExportTracePartialSuccess {
                rejected_spans: 1,
                error_message: "no name".into(),
            }),
        }
        .encode_to_vec();
        let fine = proto::ExportLogsServiceResponse::default().encode_to_vec();
        let (uri, _) = destination(vec![(200, logs), (200, spans), (200, fine)]);
        let mut sink = otlp_sink(uri);
        let batch = vec![a_log(), a_log(), a_log(), a_span()];
        sink.new_batch();
        match sink.send(&batch) {
            Err(SendError::PartlyRefused { refused, reason }) => {
                assert_eq!(refused, 3);
                assert_eq!(reason, "too old; no name");
            }
            other => panic!("{other:?}"),
        }
        // An answer without partial_success: all delivered.
        sink.new_batch();
        assert_eq!(sink.send(&[a_log()]), Ok(()));
    }

    #[test]
    fn a_destination_never_refuses_more_than_it_was_sent() {
        let mut refused = Refused::default();
        refused.add(1_000, "everything");
        refused.add(-5, "");
        assert!(matches!(
            refused.outcome(10),
            Err(SendError::PartlyRefused { refused: 10, .. })
        ));
        assert_eq!(Refused::default().outcome(10), Ok(()));
    }
}
