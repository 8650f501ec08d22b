//! The `forward` source: the Fluent Forward protocol over TCP, as Fluent
//! Bit's and Fluentd's `forward` outputs and the fluent-logger libraries
//! speak it. Every mode is read (see [`message`]); a message with a
//! `chunk` option is answered `{"ack": chunk}` once its records are in the
//! sinks' buffers (at-least-once per hop); with a `shared_key` the
//! connection must pass the HELO/PING/PONG handshake first ([`auth`]).
//!
//! A connection's buffered bytes never exceed `max_message` (a larger
//! message closes it, counted); a message that is MessagePack but not
//! Forward is counted as malformed, said once per connection, and not
//! acknowledged, so the client keeps it.
//!
//! The connections share `max_memory` ([`MemoryLimit`]): each holds what
//! its buffer allocates, and a whole message what reading and decoding it
//! take (counted from its values before it is read) until its records are
//! handed on. A connection that finds no room stops reading, so TCP holds
//! the client back, for up to [`ROOM_WAIT`]; then it is closed, counted as
//! deferred, for the client to send again. A message that would take more
//! than `max_memory` on its own closes the connection, counted as
//! oversized.

pub mod auth;
pub mod message;
pub mod msgpack;

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;

use self::auth::Handshake;
use self::msgpack::ReadError;
use super::Wiring;
use super::memory::{self, MemoryLimit, Reservation, Short};
use super::net::{self, Emitter, Limits};
use super::tenant::Tenancy;
use crate::auth_guard;
use crate::metrics::SourceMetrics;
use crate::record::LogRecord;

/// The port where a configuration names none.
pub const DEFAULT_PORT: u16 = 24224;

/// The largest message where a configuration names none: Fluent Bit's
/// chunks are up to a few MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardConfig {
    pub address: std::net::SocketAddr,
    pub limits: Limits,
    /// Clients must prove they know it (the handshake).
    pub shared_key: Option<String>,
    /// How the server names itself in the handshake.
    pub hostname: String,
    /// Serve TLS with this certificate and key.
    pub tls: Option<crate::tls::ServerFiles>,
    /// The tenant of every record this source takes, whatever its sender
    /// says.
    pub tenant: Option<String>,
    /// The memory the connections may hold at once, buffers and the
    /// messages being decoded together.
    pub max_memory: usize,
}

/// How long a connection waits for room in `max_memory` before it is
/// closed: the others may all be waiting too, holding half-read messages.
pub const ROOM_WAIT: Duration = Duration::from_secs(5);

/// A connection's buffer is let go of down to this once it is empty.
const KEPT_BUFFER: usize = 64 << 10;

/// Binds the listener and starts the source; it runs until `stop` is set.
pub fn start(name: &str, config: ForwardConfig, wiring: Wiring) -> io::Result<JoinHandle<()>> {
    let tls = match &config.tls {
        Some(files) => Some(TlsAcceptor::from(
            crate::tls::server_config(files).map_err(io::Error::other)?,
        )),
        None => None,
    };
    net::start(name, wiring, move |emitter| {
        let listener = std::net::TcpListener::bind(config.address)?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        Ok(serve(listener, emitter, Arc::new(config), tls))
    })
}

async fn serve(
    listener: tokio::net::TcpListener,
    emitter: Emitter,
    config: Arc<ForwardConfig>,
    tls: Option<TlsAcceptor>,
) {
    let limits = config.limits.clone();
    let memory = MemoryLimit::new(config.max_memory, Arc::clone(&emitter.metrics));
    net::serve_streams(
        listener,
        emitter,
        limits,
        tls,
        move |stream, peer, emitter| {
            let config = Arc::clone(&config);
            let memory = memory.reservation();
            async move {
                if let Err(e) = serve_connection(stream, &peer, &emitter, &config, memory).await {
                    eprintln!(
                        "weir: source {}: {peer}: {e}; closing the connection",
                        emitter.name
                    );
                }
            }
        },
    )
    .await;
}

async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: &str,
    emitter: &Emitter,
    config: &ForwardConfig,
    memory: Reservation,
) -> Result<(), String> {
    Connection {
        stream,
        peer: peer.to_owned(),
        emitter,
        config,
        said_malformed: false,
    }
    .run(memory)
    .await
}

/// Grows `memory` by `bytes`, waiting up to [`ROOM_WAIT`] for the other
/// connections to give back enough; the error says why the connection is
/// closed, and counts it.
async fn room(
    memory: &mut Reservation,
    bytes: usize,
    metrics: &SourceMetrics,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + ROOM_WAIT;
    loop {
        match memory.grow(bytes) {
            Ok(()) => return Ok(()),
            Err(Short::TooLarge) => {
                metrics.oversized.fetch_add(1, Ordering::Relaxed);
                return Err(format!(
                    "a message that would take {bytes} bytes more than its {}, past max_memory ({} bytes) on its own",
                    memory.bytes(),
                    memory.limit()
                ));
            }
            Err(Short::Busy) if tokio::time::Instant::now() >= deadline => {
                metrics.deferred.fetch_add(1, Ordering::Relaxed);
                return Err(format!(
                    "no room for {bytes} bytes more in max_memory ({} bytes) after {} s: closed, for the client to send again",
                    memory.limit(),
                    ROOM_WAIT.as_secs()
                ));
            }
            Err(Short::Busy) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// The longest message read before the shared-key handshake passed: a
/// PING (hostname, salt, user, digests) is a few hundred bytes.
const MAX_PING: usize = 16 << 10;

struct Connection<'a, S> {
    stream: S,
    peer: String,
    emitter: &'a Emitter,
    config: &'a ForwardConfig,
    said_malformed: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<'_, S> {
    /// Reads messages until the client closes; an error says why the
    /// connection is given up.
    async fn run(&mut self, mut memory: Reservation) -> Result<(), String> {
        let metrics = &self.emitter.metrics;
        let limits = &self.config.limits;
        let mut handshake = self
            .config
            .shared_key
            .as_deref()
            .map(|key| Handshake::new(key, &self.config.hostname));
        let ip = self
            .peer
            .parse::<std::net::SocketAddr>()
            .ok()
            .map(|a| a.ip());
        // Checked again when the PING comes: a client may open many
        // connections before it sends any.
        let shut_out = || {
            auth_guard::shared().shut_out(ip).map(|_| {
                metrics.failed_auth.fetch_add(1, Ordering::Relaxed);
                "too many failed handshakes from this address lately: closed without one".to_owned()
            })
        };
        if let Some(handshake) = &handshake {
            if let Some(refusal) = shut_out() {
                return Err(refusal);
            }
            self.write(&handshake.helo()).await?;
        }
        let mut buffer = Vec::new();
        let mut read = vec![0; 64 << 10];
        // Where the message being received has been walked to.
        let mut skipper = msgpack::Skipper::default();
        loop {
            let mut start = 0;
            loop {
                let len = match skipper.skip(&buffer[start..]) {
                    Ok(len) => len,
                    Err(ReadError::Incomplete) => break,
                    Err(ReadError::Invalid { at, what }) => {
                        metrics.broken_streams.fetch_add(1, Ordering::Relaxed);
                        // What cannot be read on is lost with the connection: counted.
                        metrics.malformed.add(1, (buffer.len() - start) as u64);
                        return Err(format!("byte {at} of a message: {what}"));
                    }
                };
                let bytes = &buffer[start..start + len];
                start += len;
                // The values read makes, and about as much again for the
                // records made of them, held while they live.
                let buffered = memory.bytes();
                let decoding = skipper.tree_bytes().saturating_mul(2);
                if let Err(e) = room(&mut memory, decoding, metrics).await {
                    // What the connection had of its messages is lost with it.
                    metrics
                        .malformed
                        .add(1, (buffer.len() - start + len) as u64);
                    return Err(e);
                }
                let (value, _) = msgpack::read(bytes).map_err(|e| format!("{e:?}"))?;
                if let Some(pending) = handshake.take() {
                    if let Some(refusal) = shut_out() {
                        return Err(refusal);
                    }
                    let (pong, passed) = pending.answer(&value);
                    self.write(&pong).await?;
                    if !passed {
                        metrics.failed_auth.fetch_add(1, Ordering::Relaxed);
                        // A PING with a wrong key is a guess (its digest is
                        // salted, so each is new); anything else is not.
                        if let Some(digest) = ping_digest(&value) {
                            auth_guard::shared().failed(ip, digest);
                        }
                        return Err("the handshake failed".into());
                    }
                    memory.shrink_to(buffered);
                    continue;
                }
                let decoded = self.decode(&value, len);
                drop(value);
                memory.shrink_to(buffered);
                if let Some(decoded) = decoded {
                    // The records (a packed message's too, which are few
                    // values but many records), until they are handed on.
                    let records = records_cost(&decoded.records);
                    if let Err(e) = room(&mut memory, records, metrics).await {
                        metrics
                            .malformed
                            .add(1, (buffer.len() - start + len) as u64);
                        return Err(e);
                    }
                    self.take(decoded, len).await?;
                    memory.shrink_to(buffered);
                }
            }
            buffer.drain(..start);
            // Room a large message left is let go of, and given back.
            let keep = buffer.len().max(KEPT_BUFFER);
            if buffer.capacity() > keep.saturating_mul(2) {
                buffer.shrink_to(keep);
                memory.shrink_to(buffer.capacity());
            }
            // Until the handshake passes, only a PING, which is small.
            let max = if handshake.is_some() {
                MAX_PING
            } else {
                limits.max_message
            };
            if buffer.len() > max {
                metrics.oversized.fetch_add(1, Ordering::Relaxed);
                metrics.malformed.add(1, buffer.len() as u64);
                return Err(format!("a message longer than {max} bytes"));
            }
            // A message the client leaves unfinished is lost with the
            // connection: counted.
            let unfinished = |buffer: &[u8]| {
                if !buffer.is_empty() {
                    metrics.malformed.add(1, buffer.len() as u64);
                }
            };
            let n = match tokio::time::timeout(limits.read_timeout, self.stream.read(&mut read))
                .await
            {
                Ok(Ok(0)) => {
                    unfinished(&buffer);
                    return Ok(());
                }
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    unfinished(&buffer);
                    return Err(e.to_string());
                }
                Err(_) => {
                    unfinished(&buffer);
                    metrics
                        .timed_out_connections
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
            };
            // What the buffer will allocate for these bytes, held first.
            let capacity = memory::grown_capacity(buffer.len(), buffer.capacity(), n);
            let growth = capacity.saturating_sub(memory.bytes());
            if let Err(e) = room(&mut memory, growth, metrics).await {
                // What it had of its message is lost with the connection.
                metrics.malformed.add(1, (buffer.len() + n) as u64);
                return Err(e);
            }
            buffer.reserve_exact(capacity - buffer.len());
            buffer.extend_from_slice(&read[..n]);
        }
    }

    /// One message's records, or None if it is not Forward (counted as
    /// malformed, and said once per connection).
    fn decode(&mut self, value: &msgpack::Value<'_>, len: usize) -> Option<message::Decoded> {
        let metrics = &self.emitter.metrics;
        match message::decode(value, self.config.limits.max_message * 4) {
            Ok(decoded) => Some(decoded),
            Err(what) => {
                metrics.malformed.add(1, len as u64);
                if !self.said_malformed {
                    self.said_malformed = true;
                    eprintln!(
                        "weir: source {}: {}: a message that is not Forward ({what}); not acknowledged",
                        self.emitter.name, self.peer
                    );
                }
                None
            }
        }
    }

    /// Hands one message's records on, and acknowledges it if asked.
    async fn take(&mut self, mut decoded: message::Decoded, len: usize) -> Result<(), String> {
        let metrics = &self.emitter.metrics;
        Tenancy::new(
            self.config.tenant.as_deref(),
            self.config.shared_key.is_some(),
        )
        .apply(&mut decoded.records);
        metrics.read.add(decoded.records.len() as u64, len as u64);
        match decoded.chunk {
            Some(chunk) => {
                if !self.emitter.send_and_wait(decoded.records).await {
                    return Err("the source is stopping".into());
                }
                self.write(&ack(&chunk)).await
            }
            None if decoded.records.is_empty() => Ok(()),
            None => {
                if self.emitter.send(decoded.records).await {
                    Ok(())
                } else {
                    Err("the source is stopping".into())
                }
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| format!("answering: {e}"))
    }
}

/// What a record takes in memory besides its body and fields, about.
const RECORD_COST: usize = 256;

/// What decoded records take in memory, about: their bodies, their fields
/// (a few dozen bytes each) and the record itself.
fn records_cost(records: &[LogRecord]) -> usize {
    records
        .iter()
        .map(|r| r.body.capacity() + (r.attributes.len() + r.resource.len()) * 64 + RECORD_COST)
        .sum()
}

/// The shared-key digest of a PING, if `value` is one.
fn ping_digest<'v>(value: &msgpack::Value<'v>) -> Option<&'v [u8]> {
    match value {
        msgpack::Value::Array(items) if items.first()?.as_bytes()? == b"PING" => {
            items.get(3)?.as_bytes()
        }
        _ => None,
    }
}

/// `{"ack": chunk}`, the chunk as the client sent it.
fn ack(chunk: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    rmp::encode::write_map_len(&mut out, 1).expect("writing to a Vec");
    rmp::encode::write_str(&mut out, "ack").expect("writing to a Vec");
    match std::str::from_utf8(chunk) {
        Ok(text) => rmp::encode::write_str(&mut out, text).expect("writing to a Vec"),
        Err(_) => rmp::encode::write_bin(&mut out, chunk).expect("writing to a Vec"),
    }
    out
}

/// The machine's name, for the handshake where none is configured.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "weir".to_owned())
}
