//! A scripted HTTP receiver on loopback, for tests and benchmarks of the
//! http sink: it records every request's lines and answers as scripted
//! (accept, fail with 503, or stall before accepting).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::http_server;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

/// How the receiver answers request number `n` (from 0).
pub type Script = Arc<dyn Fn(usize) -> Answer + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accept,
    /// 400: the batch itself is refused, for good.
    Reject,
    /// 503 with `Retry-After: 0`.
    Fail,
    /// Accept, but only after this long.
    Stall(Duration),
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The body's lines, gunzipped if it came with `Content-Encoding: gzip`.
    pub lines: Vec<String>,
    pub answer: Answer,
    pub headers: Vec<(String, String)>,
}

/// A running receiver; it serves until the process ends.
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    received: Mutex<Vec<Received>>,
    requests: AtomicUsize,
    /// Lines (newlines) received in accepted requests.
    lines: AtomicU64,
    /// Keep every request's lines (tests), or only count them (benchmarks).
    keep: bool,
}

impl Receiver {
    /// Listens on a free loopback port.
    pub fn start(script: Script) -> std::io::Result<Receiver> {
        Receiver::start_on(0, script)
    }

    /// Listens on loopback port `port` (0: any free one).
    pub fn start_on(port: u16, script: Script) -> std::io::Result<Receiver> {
        Receiver::listen(port, script, true)
    }

    /// Accepts everything and only counts lines: for benchmarks, where
    /// keeping millions of lines would cost more than the sink being measured.
    pub fn counting() -> std::io::Result<Receiver> {
        Receiver::listen(0, Arc::new(|_| Answer::Accept), false)
    }

    fn listen(port: u16, script: Script, keep: bool) -> std::io::Result<Receiver> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            requests: AtomicUsize::new(0),
            lines: AtomicU64::new(0),
            keep,
        });
        let seen = Arc::clone(&shared);
        http_server::serve(listener, "weir-receiver", 64, move |request| {
            let (script, seen) = (Arc::clone(&script), Arc::clone(&seen));
            async move { receive(request, &script, &seen).await }
        })?;
        Ok(Receiver { addr, shared })
    }

    /// Lines in the requests not refused so far.
    pub fn lines(&self) -> u64 {
        self.shared.lines.load(Ordering::SeqCst)
    }

    /// Every request so far, in the order they came (none when counting).
    pub fn requests(&self) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A gzipped body, decompressed (empty if it is not gzip).
fn gunzip(body: &[u8]) -> Bytes {
    use std::io::Read;
    let mut out = Vec::new();
    match flate2::read::GzDecoder::new(body).read_to_end(&mut out) {
        Ok(_) => Bytes::from(out),
        Err(_) => Bytes::new(),
    }
}

/// Records one request and answers it as scripted.
async fn receive(
    request: Request<Incoming>,
    script: &Script,
    seen: &Shared,
) -> Response<Full<Bytes>> {
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let gzipped = headers
        .iter()
        .any(|(k, v)| k == "content-encoding" && v == "gzip");
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let body = if gzipped { gunzip(&body) } else { body };
    let n = seen.requests.fetch_add(1, Ordering::SeqCst);
    let answer = script(n);
    if matches!(answer, Answer::Accept | Answer::Stall(_)) {
        let count = body.iter().filter(|b| **b == b'\n').count();
        seen.lines.fetch_add(count as u64, Ordering::SeqCst);
    }
    if seen.keep {
        let lines = String::from_utf8_lossy(&body)
            .lines()
            .map(str::to_owned)
            .collect();
        seen.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Received {
                lines,
                answer,
                headers,
            });
    }
    let status = match answer {
        Answer::Accept => StatusCode::OK,
        Answer::Fail => StatusCode::SERVICE_UNAVAILABLE,
        Answer::Reject => StatusCode::BAD_REQUEST,
        Answer::Stall(pause) => {
            tokio::time::sleep(pause).await;
            StatusCode::OK
        }
    };
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("retry-after", hyper::header::HeaderValue::from_static("0"));
    response
}
