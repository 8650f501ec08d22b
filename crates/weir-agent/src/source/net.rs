//! What the network sources share: their listeners run as tasks on a
//! thread of their own (a current-thread tokio runtime), and hand decoded
//! records over a bounded channel to an emitter thread, which appends them
//! to the sinks' buffers. Appending may wait on a full buffer
//! (`when_full = "block"`); the channel then fills, and a stream
//! listener stops reading, so the wait reaches the sender as TCP
//! back-pressure instead of growing memory. A datagram listener cannot
//! push back: what it receives while the channel is full is counted as
//! shed and never silently lost.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use weir_gate::bucket::monotonic_ns;

use super::{Control, Output, Wiring};
use crate::metrics::SourceMetrics;
use crate::record::LogRecord;

/// Where a listener listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Inet(std::net::SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Inet(address) => write!(f, "{address}"),
            Endpoint::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The bounds every listener keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The largest message or request body; longer ones are cut or refused.
    pub max_message: usize,
    /// Connections open at once; past it a new one is closed at once.
    pub max_connections: usize,
    /// A connection quiet this long is closed.
    pub read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message: 64 << 10,
            max_connections: 256,
            read_timeout: Duration::from_secs(300),
        }
    }
}

/// Batches waiting for the emitter; with the batches a listener builds
/// (one read's worth), this bounds what waits in memory.
const WAITING_BATCHES: usize = 64;

/// Records the emitter keeps between batches to parse into again, at most.
const MAX_SPARES: usize = 4096;

/// Parses one message (cut at the maximum or not) observed at a time into
/// a record, whatever the record held before, and counts it.
pub type Parse = fn(&mut LogRecord, &[u8], bool, i64, &SourceMetrics);

/// Messages as they were framed, for the emitter to parse: the records are
/// then made, encoded and reused on one thread, instead of allocated on
/// the listener's and freed on the emitter's.
pub struct Messages {
    /// The messages, one after another.
    pub bytes: Vec<u8>,
    /// Where each message ends in `bytes`, and whether it was cut.
    pub ends: Vec<(usize, bool)>,
    pub observed_ns: i64,
    pub parse: Parse,
}

impl Messages {
    pub fn new(parse: Parse, observed_ns: i64) -> Messages {
        Messages {
            bytes: Vec::new(),
            ends: Vec::new(),
            observed_ns,
            parse,
        }
    }

    pub fn push(&mut self, message: &[u8], cut: bool) {
        self.bytes.extend_from_slice(message);
        self.ends.push((self.bytes.len(), cut));
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Parses the messages into `records`, reusing those it holds.
    fn parse_into(&self, records: &mut Vec<LogRecord>, metrics: &SourceMetrics) {
        records.resize_with(self.ends.len(), LogRecord::default);
        let mut start = 0;
        for (record, &(end, cut)) in records.iter_mut().zip(&self.ends) {
            (self.parse)(
                record,
                &self.bytes[start..end],
                cut,
                self.observed_ns,
                metrics,
            );
            start = end;
        }
    }
}

enum Received {
    Records(Vec<LogRecord>),
    Messages(Messages),
}

struct Batch {
    received: Received,
    /// Told once the records are in the buffers.
    appended: Option<oneshot::Sender<()>>,
}

/// A listener's way into the pipeline.
#[derive(Clone)]
pub struct Emitter {
    batches: mpsc::Sender<Batch>,
    /// When the emitter started appending the batch it is on (monotonic
    /// ns), 0 while it waits for one.
    busy_since: Arc<AtomicU64>,
    pub metrics: Arc<SourceMetrics>,
    /// The source's name, for messages.
    pub name: Arc<str>,
}

impl Emitter {
    /// Hands `messages` on to be parsed, waiting while the pipeline is
    /// behind; false once the source is stopping.
    pub async fn send_messages(&self, messages: Messages) -> bool {
        let batch = Batch {
            received: Received::Messages(messages),
            appended: None,
        };
        self.batches.send(batch).await.is_ok()
    }

    /// Hands `records` on, waiting while the pipeline is behind; false
    /// once the source is stopping.
    pub async fn send(&self, records: Vec<LogRecord>) -> bool {
        let batch = Batch {
            received: Received::Records(records),
            appended: None,
        };
        self.batches.send(batch).await.is_ok()
    }

    /// Hands `records` on and waits until they are in the sinks' buffers,
    /// for protocols that acknowledge what they received.
    pub async fn send_and_wait(&self, records: Vec<LogRecord>) -> bool {
        let (appended, done) = oneshot::channel();
        let batch = Batch {
            received: Received::Records(records),
            appended: Some(appended),
        };
        self.batches.send(batch).await.is_ok() && done.await.is_ok()
    }

    /// Whether the pipeline is behind: no room to queue a batch, or the
    /// emitter has been appending one for over a second (a sink's buffer
    /// is full and it waits). A protocol that can say "later" does.
    pub fn is_behind(&self) -> bool {
        let since = self.busy_since.load(Ordering::Relaxed);
        self.batches.capacity() == 0
            || (since != 0 && monotonic_ns().saturating_sub(since) > 1_000_000_000)
    }

    /// Hands `records` on if the pipeline has room now; otherwise they are
    /// counted as shed. For datagrams, which cannot be pushed back on.
    pub fn offer(&self, records: Vec<LogRecord>, bytes: u64) {
        let count = records.len() as u64;
        let batch = Batch {
            received: Received::Records(records),
            appended: None,
        };
        if self.batches.try_send(batch).is_err() {
            self.metrics.shed.add(count, bytes);
        }
    }
}

/// Counts the connections a listener has open, and refuses past its limit.
#[derive(Clone)]
pub struct Connections {
    open: Arc<AtomicUsize>,
    max: usize,
}

/// An open connection; dropping it frees its place.
pub struct Admitted(Arc<AtomicUsize>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connections {
    pub fn new(max: usize) -> Connections {
        Connections {
            open: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// A place for one more connection, if there is one.
    pub fn admit(&self) -> Option<Admitted> {
        let open = self.open.fetch_add(1, Ordering::Relaxed);
        let admitted = Admitted(Arc::clone(&self.open));
        (open < self.max).then_some(admitted)
    }
}

/// A connection a stream listener accepted: TCP, or TLS over it.
pub trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// The accept loop every stream listener shares: each connection within
/// `limits.max_connections` (one past it is closed at once, counted) goes
/// through the TLS handshake when `tls` is set (one that fails or takes
/// longer than `limits.read_timeout` is closed, counted and said), then to
/// `serve`, with its peer's address, on a task of its own.
pub async fn serve_streams<F, S>(
    listener: tokio::net::TcpListener,
    emitter: Emitter,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    serve: F,
) where
    F: Fn(Box<dyn Stream>, String, Emitter) -> S + Clone + Send + 'static,
    S: Future<Output = ()> + Send + 'static,
{
    let connections = Connections::new(limits.max_connections);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                // Out of descriptors, say: try again after a pause.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(admitted) = connections.admit() else {
            emitter
                .metrics
                .refused_connections
                .fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let (emitter, tls, serve) = (emitter.clone(), tls.clone(), serve.clone());
        let read_timeout = limits.read_timeout;
        tokio::spawn(async move {
            let peer = peer.to_string();
            let stream: Box<dyn Stream> = match tls {
                None => Box::new(stream),
                Some(acceptor) => {
                    let handshake = acceptor.accept(stream);
                    match tokio::time::timeout(read_timeout, handshake).await {
                        Ok(Ok(stream)) => Box::new(stream),
                        Ok(Err(e)) => {
                            let metrics = &emitter.metrics;
                            metrics.broken_streams.fetch_add(1, Ordering::Relaxed);
                            eprintln!("weir: source {}: {peer}: TLS handshake: {e}", emitter.name);
                            return;
                        }
                        Err(_) => {
                            let metrics = &emitter.metrics;
                            metrics
                                .timed_out_connections
                                .fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                }
            };
            serve(stream, peer, emitter).await;
            drop(admitted);
        });
    }
}

/// Starts a network source: the emitter thread feeding `output`, and on a
/// thread of its own the listeners `listen` builds from an [`Emitter`].
/// Both stop once `stop` is set; the listeners are bound before this
/// returns, so a port in use is an error here and not later.
pub fn start<L, F>(name: &str, wiring: Wiring, listen: L) -> io::Result<JoinHandle<()>>
where
    L: FnOnce(Emitter) -> io::Result<F>,
    F: Future<Output = ()> + Send + 'static,
{
    let Wiring {
        output,
        control,
        metrics,
        stop,
    } = wiring;
    let (sender, receiver) = mpsc::channel(WAITING_BATCHES);
    let busy_since = Arc::new(AtomicU64::new(0));
    let emitter = Emitter {
        batches: sender,
        busy_since: Arc::clone(&busy_since),
        metrics: Arc::clone(&metrics),
        name: Arc::from(name),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let listeners = {
        // tokio sockets are made within a runtime.
        let _entered = runtime.enter();
        listen(emitter)?
    };
    let emitting = {
        let metrics = Arc::clone(&metrics);
        thread::Builder::new()
            .name(format!("weir-emit-{name}"))
            .spawn(move || emit(receiver, output, &control, &metrics, &busy_since))?
    };
    thread::Builder::new()
        .name(format!("weir-net-{name}"))
        .spawn(move || {
            runtime.spawn(listeners);
            runtime.block_on(async {
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
            // Dropping the runtime ends the listeners and with them every
            // sender: the emitter hands on what waits, then ends.
            drop(runtime);
            let _ = emitting.join();
        })
}

/// The emitter thread: appends each batch to the buffers, parking between
/// batches when a reload asks.
fn emit(
    mut batches: mpsc::Receiver<Batch>,
    mut output: Output,
    control: &Control,
    metrics: &SourceMetrics,
    busy_since: &AtomicU64,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("weir: a network source could not start: {e}");
            return;
        }
    };
    loop {
        control.between_reads(&mut output, Vec::new);
        // A timeout, so that a reload finds the emitter parked quickly
        // even while nothing arrives.
        let next = runtime.block_on(async {
            tokio::time::timeout(Duration::from_millis(100), batches.recv()).await
        });
        match next {
            Ok(Some(batch)) => {
                busy_since.store(monotonic_ns().max(1), Ordering::Relaxed);
                let records = match batch.received {
                    Received::Records(records) => records,
                    Received::Messages(messages) => {
                        let mut records = spares(&mut output);
                        messages.parse_into(&mut records, metrics);
                        records
                    }
                };
                let handed = output.emit(records, metrics).is_some();
                busy_since.store(0, Ordering::Relaxed);
                match batch.appended {
                    // Not all in: the sender is not told it is, and sends again.
                    Some(appended) if handed => {
                        let _ = appended.send(());
                    }
                    Some(_) => {}
                    None if handed => {}
                    None => {
                        metrics.refused.add(output.given_up(), 0);
                        eprintln!(
                            "weir: a network source stopped while a full buffer waited for room: {} records left out",
                            output.given_up()
                        );
                    }
                }
            }
            Ok(None) => return,
            Err(_) => {}
        }
    }
}

/// The records the last emit is done with, to parse the next messages
/// into: no more than [`MAX_SPARES`], none with a large body.
fn spares(output: &mut Output) -> Vec<LogRecord> {
    let mut records = output.take_spent();
    records.truncate(MAX_SPARES);
    records.retain(LogRecord::worth_reusing);
    records
}
