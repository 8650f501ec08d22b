//! The `syslog` source: RFC 5424 and RFC 3164 messages over TCP (octet
//! counting or a message per line, RFC 6587), UDP, or a Unix datagram
//! socket like `/dev/log`.
//!
//! TCP and the Unix socket push back on their senders while the pipeline
//! waits; UDP cannot, and counts what it sheds. A message longer than
//! `max_message` is cut there and marked partial; one that is not syslog is
//! kept whole with the reason in `syslog.parse_error`.

pub mod framing;
pub mod parse;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_rustls::TlsAcceptor;

use self::framing::Framer;
use super::Wiring;
use super::net::{self, Emitter, Endpoint, Limits, Messages};
use crate::metrics::SourceMetrics;
use crate::record::LogRecord;

/// How the source listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tcp,
    Udp,
    /// A Unix datagram socket.
    Unix,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogConfig {
    pub mode: Mode,
    pub endpoint: Endpoint,
    pub limits: Limits,
    /// TCP only: syslog over TLS (RFC 5425).
    pub tls: Option<crate::tls::ServerFiles>,
}

/// The port where a configuration names none.
pub const DEFAULT_PORT: u16 = 5514;

/// Most datagrams read before they are handed on together.
const DATAGRAM_BATCH: usize = 256;

type Listening = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Binds the listener and starts the source; it runs until `stop` is set.
pub fn start(name: &str, config: SyslogConfig, wiring: Wiring) -> io::Result<JoinHandle<()>> {
    net::start(name, wiring, move |emitter| {
        let limits = config.limits.clone();
        let listening: Listening = match (config.mode, &config.endpoint) {
            (Mode::Tcp, Endpoint::Inet(address)) => {
                let tls = match &config.tls {
                    Some(files) => Some(TlsAcceptor::from(
                        crate::tls::server_config(files).map_err(io::Error::other)?,
                    )),
                    None => None,
                };
                let listener = tokio::net::TcpListener::from_std(bind_tcp(*address)?)?;
                Box::pin(serve_tcp(listener, emitter, limits, tls))
            }
            (Mode::Udp, Endpoint::Inet(address)) => {
                let socket = std::net::UdpSocket::bind(address)?;
                socket.set_nonblocking(true)?;
                let socket = tokio::net::UdpSocket::from_std(socket)?;
                Box::pin(serve_datagrams(Datagrams::Udp(socket), emitter, limits))
            }
            (Mode::Unix, Endpoint::Unix(path)) => {
                remove_stale_socket(path)?;
                let socket = tokio::net::UnixDatagram::bind(path)?;
                Box::pin(serve_datagrams(Datagrams::Unix(socket), emitter, limits))
            }
            (mode, endpoint) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("syslog mode {mode:?} cannot listen on {endpoint}"),
                ));
            }
        };
        Ok(listening)
    })
}

fn bind_tcp(address: std::net::SocketAddr) -> io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// A socket file left by an earlier run is replaced; anything else at the
/// path is an error, not removed.
fn remove_stale_socket(path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

async fn serve_tcp(
    listener: tokio::net::TcpListener,
    emitter: Emitter,
    limits: Limits,
    tls: Option<TlsAcceptor>,
) {
    let serving = limits.clone();
    net::serve_streams(
        listener,
        emitter,
        limits,
        tls,
        move |stream, peer, emitter| {
            let limits = serving.clone();
            async move { read_stream(stream, &peer, &emitter, &limits).await }
        },
    )
    .await;
}

/// Reads one connection's messages until it closes, goes quiet past the
/// read timeout, or breaks its framing.
async fn read_stream<R: AsyncRead + Unpin>(
    mut stream: R,
    peer: &str,
    emitter: &Emitter,
    limits: &Limits,
) {
    let metrics = &emitter.metrics;
    let mut framer = Framer::new(limits.max_message);
    loop {
        let room = framer.spare(64 << 10);
        let read = tokio::time::timeout(limits.read_timeout, stream.read(room)).await;
        let n = match read {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => n,
            Err(_) => {
                metrics
                    .timed_out_connections
                    .fetch_add(1, Ordering::Relaxed);
                break;
            }
        };
        // Parsed on the emitter's thread, into records it reuses.
        let mut messages = Messages::new(parse_counted, now_ns());
        let framed = framer.commit(n, |message, cut| messages.push(message, cut));
        metrics
            .cut_off_bytes
            .fetch_add(framer.take_passed_by(), Ordering::Relaxed);
        if !messages.is_empty() && !emitter.send_messages(messages).await {
            return;
        }
        if let Err(e) = framed {
            metrics.broken_streams.fetch_add(1, Ordering::Relaxed);
            // What the framing lost with the connection is counted.
            metrics.malformed.add(1, framer.pending() as u64);
            eprintln!(
                "weir: source {}: {peer}: {e}; closing the connection",
                emitter.name
            );
            return;
        }
    }
    let mut messages = Messages::new(parse_counted, now_ns());
    framer.finish(|message, cut| messages.push(message, cut));
    if !messages.is_empty() {
        emitter.send_messages(messages).await;
    }
}

enum Datagrams {
    Udp(tokio::net::UdpSocket),
    Unix(tokio::net::UnixDatagram),
}

impl Datagrams {
    async fn readable(&self) -> io::Result<()> {
        match self {
            Datagrams::Udp(s) => s.readable().await,
            Datagrams::Unix(s) => s.readable().await,
        }
    }

    fn try_recv(&self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Datagrams::Udp(s) => s.try_recv(buffer),
            Datagrams::Unix(s) => s.try_recv(buffer),
        }
    }
}

/// A message per datagram; what is waiting is read and handed on together.
async fn serve_datagrams(socket: Datagrams, emitter: Emitter, limits: Limits) {
    let metrics = &emitter.metrics;
    let mut buffer = vec![0; 65_536];
    loop {
        if socket.readable().await.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        }
        let observed = now_ns();
        let mut records = Vec::new();
        let mut bytes = 0;
        while records.len() < DATAGRAM_BATCH {
            let n = match socket.try_recv(&mut buffer) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => break,
            };
            let keep = n.min(limits.max_message);
            bytes += n as u64;
            records.push(record(&buffer[..keep], keep < n, observed, metrics));
        }
        if records.is_empty() {
            continue;
        }
        match socket {
            // The sender waits on a full Unix socket, as on /dev/log.
            Datagrams::Unix(_) => {
                if !emitter.send(records).await {
                    return;
                }
            }
            Datagrams::Udp(_) => emitter.offer(records, bytes),
        }
    }
}

/// One message as a record, counted.
fn record(message: &[u8], cut: bool, observed: i64, metrics: &SourceMetrics) -> LogRecord {
    let mut record = LogRecord::default();
    parse_counted(&mut record, message, cut, observed, metrics);
    record
}

/// One message parsed into `record`, counted.
fn parse_counted(
    record: &mut LogRecord,
    message: &[u8],
    cut: bool,
    observed: i64,
    metrics: &SourceMetrics,
) {
    parse::parse_into(record, message, observed);
    metrics.read.add(1, message.len() as u64);
    if cut {
        record.partial = true;
        metrics.cut.add(1, message.len() as u64);
    }
    if record
        .attributes
        .last()
        .is_some_and(|(key, _)| key == "syslog.parse_error")
    {
        metrics.malformed.add(1, message.len() as u64);
    }
}

fn now_ns() -> i64 {
    weir_monitor::format::timestamp::Timestamp::now()
        .as_nanos()
        .clamp(0, i64::MAX as i128) as i64
}
