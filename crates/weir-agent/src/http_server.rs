//! A small HTTP/1.1 server on a thread of its own (a current-thread tokio
//! runtime): the operations endpoint, and the test receiver. Connections
//! are bounded: past the limit a new one is closed at once. A failing
//! `accept` (out of file descriptors, say) is retried after a pause rather
//! than in a busy loop.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use crate::metrics::SourceMetrics;

/// A response body of any kind: whole, or streamed (a live tail).
pub type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// A handler that can be handed around: the collector's query API, served
/// on a listener the pipeline owns.
pub type Handler = Arc<
    dyn Fn(Request<Incoming>) -> std::pin::Pin<Box<dyn Future<Output = Response<Body>> + Send>>
        + Send
        + Sync,
>;

/// The address a request came from, which [`serve_on`] puts in each
/// request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub std::net::SocketAddr);

/// The address `request` came from, if it came through [`serve_on`].
pub fn peer<B>(request: &Request<B>) -> Option<std::net::IpAddr> {
    request.extensions().get::<Peer>().map(|peer| peer.0.ip())
}

/// `body` as a [`Body`].
pub fn whole(body: impl Into<Bytes>) -> Body {
    use http_body_util::BodyExt;
    Full::new(body.into()).boxed()
}

/// How long a client of [`serve`] may take to send a request's head: one
/// that connects and says nothing does not hold a connection for ever.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `listener` (non-blocking already) with `handler` until the
/// process ends, cutting off clients slower than [`READ_TIMEOUT`].
pub fn serve<H, F, B>(
    listener: std::net::TcpListener,
    name: &str,
    max_connections: usize,
    handler: H,
) -> std::io::Result<JoinHandle<()>>
where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let name = name.to_owned();
    thread::Builder::new().name(name.clone()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                eprintln!("weir: {name}: {e}");
                return;
            }
        };
        runtime.block_on(async move {
            match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => {
                    serve_on(
                        listener,
                        max_connections,
                        Some(READ_TIMEOUT),
                        None,
                        None,
                        handler,
                    )
                    .await;
                }
                Err(e) => eprintln!("weir: {name}: {e}"),
            }
        });
    })
}

/// Serves `listener` with `handler` on the current runtime, for as long
/// as the returned future is polled, over TLS if `tls` is given. A client
/// that takes longer than `read_timeout` to finish the TLS handshake or
/// send a request's head is cut off. A source's `metrics` count each
/// connection closed for being one too many, for a failed TLS handshake
/// (`broken_streams`) or for a late one (`timed_out_connections`).
pub async fn serve_on<H, F, B>(
    listener: tokio::net::TcpListener,
    max_connections: usize,
    read_timeout: Option<Duration>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    metrics: Option<Arc<SourceMetrics>>,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let handler = Arc::new(handler);
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= max_connections {
            drop(stream);
            if let Some(metrics) = &metrics {
                metrics.refused_connections.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let (handler, open, tls) = (Arc::clone(&handler), Arc::clone(&open), tls.clone());
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(Peer(peer));
                let response = handler(request);
                async move { Ok::<_, std::convert::Infallible>(response.await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            if let Some(timeout) = read_timeout {
                builder
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(timeout);
            }
            match tls {
                Some(acceptor) => {
                    let timeout = read_timeout.unwrap_or(Duration::from_secs(30));
                    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Ok(Err(_)) => {
                            if let Some(metrics) = &metrics {
                                metrics.broken_streams.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(_) => {
                            if let Some(metrics) = &metrics {
                                metrics
                                    .timed_out_connections
                                    .fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                None => {
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            }
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}
