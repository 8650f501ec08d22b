//! A sink that speaks Fluent Forward to a weir collector, another weir
//! agent, Fluent Bit or Fluentd: each batch goes as PackedForward entries
//! (gzipped as CompressedPackedForward if asked) per run of records with
//! the same tag, and with `require_ack` (the default) is delivered only
//! once the server has answered `{"ack": chunk}` for every message of it:
//! at-least-once per hop.
//!
//! Servers are tried in order (`failover`) or in turn (`round_robin`); a
//! server that fails gives its batch to the next one on the retry. With a
//! `shared_key`, each connection passes the HELO/PING/PONG handshake first
//! and checks the server's proof that it knows the key too.
//!
//! A record goes as `{"log": body, "stream", "severity", "partial",
//! "trace_id", "span_id", "resource": {…}, attributes…}`, which weir's own
//! forward source reads back whole.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha512};

use super::{SendError, Sink};
use crate::record::{CompactString, LogRecord, Value};
use crate::source::forward::auth::{hex, random_bytes};
use crate::source::forward::msgpack::{self, ReadError};

/// How a sink picks among its servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// The first that works, staying on it.
    Failover,
    /// The next one for each batch.
    RoundRobin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardSinkConfig {
    pub servers: Vec<SocketAddr>,
    pub balance: Balance,
    /// The tag of records that carry none (`resource.fluent.tag`).
    pub tag: String,
    pub gzip: bool,
    pub require_ack: bool,
    pub shared_key: Option<String>,
    pub hostname: String,
    /// Connecting, writing and waiting for each ack.
    pub timeout: Duration,
    /// Speak TLS, trusting these CAs.
    pub tls: Option<crate::tls::ClientFiles>,
}

/// A connection to a server: a TCP stream, or TLS over one.
trait Stream: Read + Write + Send {}

impl<T: Read + Write + Send> Stream for T {}

pub struct ForwardSink {
    config: ForwardSinkConfig,
    /// Which server is in use.
    current: usize,
    /// A connection kept to each server (round_robin moves between them
    /// without connecting, and handshaking, again).
    connections: Vec<Option<Box<dyn Stream>>>,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    message: Vec<u8>,
    entries: Vec<u8>,
}

impl ForwardSink {
    /// A sink for `config`; the error names a TLS file that is wrong.
    pub fn new(config: ForwardSinkConfig) -> Result<ForwardSink, String> {
        let tls = config
            .tls
            .as_ref()
            .map(crate::tls::client_config)
            .transpose()?;
        Ok(ForwardSink {
            config,
            current: 0,
            connections: Vec::new(),
            tls,
            message: Vec::new(),
            entries: Vec::new(),
        })
    }

    fn server(&self) -> SocketAddr {
        self.config.servers[self.slot()]
    }

    /// The place of the server in use among the servers.
    fn slot(&self) -> usize {
        self.current % self.config.servers.len()
    }

    /// The connection in use, made (over TLS if configured, and
    /// authenticated) if there is none.
    fn connect(&mut self) -> Result<&mut Box<dyn Stream>, SendError> {
        let slot = self.slot();
        if self.connections.len() != self.config.servers.len() {
            self.connections
                .resize_with(self.config.servers.len(), || None);
        }
        if self.connections[slot].is_none() {
            let server = self.server();
            let timeout = self.config.timeout;
            let tcp = TcpStream::connect_timeout(&server, timeout)
                .map_err(|e| SendError::retryable(format!("connecting to {server}: {e}")))?;
            let _ = tcp.set_nodelay(true);
            let _ = tcp.set_read_timeout(Some(timeout));
            let _ = tcp.set_write_timeout(Some(timeout));
            let mut stream: Box<dyn Stream> = match (&self.tls, &self.config.tls) {
                (Some(tls), Some(files)) => {
                    let name = crate::tls::server_name(files, &server.ip().to_string())
                        .map_err(SendError::permanent)?;
                    let connection =
                        rustls::ClientConnection::new(std::sync::Arc::clone(tls), name)
                            .map_err(|e| SendError::retryable(format!("{server}: TLS: {e}")))?;
                    Box::new(rustls::StreamOwned::new(connection, tcp))
                }
                _ => Box::new(tcp),
            };
            if let Some(key) = &self.config.shared_key {
                handshake(&mut *stream, key, &self.config.hostname, timeout)
                    .map_err(|e| SendError::retryable(format!("{server}: handshake: {e}")))?;
            }
            self.connections[slot] = Some(stream);
        }
        Ok(self.connections[slot].as_mut().expect("made above"))
    }

    /// Sends one message per run of records with the same tag, waiting
    /// for each ack when asked to.
    fn deliver(&mut self, records: &[LogRecord]) -> Result<(), SendError> {
        let mut start = 0;
        while start < records.len() {
            let tag = tag_of(&records[start], &self.config.tag);
            let run = records[start..]
                .iter()
                .take_while(|r| tag_of(r, &self.config.tag) == tag)
                .count();
            let tag = tag.to_owned();
            let chunk = hex(&random_bytes());
            self.encode(&records[start..start + run], &tag, &chunk);
            let server = self.server();
            let require_ack = self.config.require_ack;
            let timeout = self.config.timeout;
            let message = std::mem::take(&mut self.message);
            let stream = self.connect()?;
            let sent = stream
                .write_all(&message)
                .map_err(|e| SendError::retryable(format!("sending to {server}: {e}")))
                .and_then(|()| {
                    if require_ack {
                        wait_for_ack(&mut **stream, &chunk, timeout)
                            .map_err(|e| SendError::retryable(format!("{server}: {e}")))
                    } else {
                        Ok(())
                    }
                });
            self.message = message;
            sent?;
            start += run;
        }
        Ok(())
    }

    /// `[tag, entries, {"chunk", "size", "compressed"?}]` into `self.message`.
    fn encode(&mut self, records: &[LogRecord], tag: &str, chunk: &str) {
        self.entries.clear();
        for record in records {
            entry(record, &mut self.entries);
        }
        let gzipped;
        let entries: &[u8] = if self.config.gzip {
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(self.entries.len() / 4),
                flate2::Compression::fast(),
            );
            gzipped = gz
                .write_all(&self.entries)
                .and_then(|()| gz.finish())
                .expect("gzip into memory");
            &gzipped
        } else {
            &self.entries
        };
        let out = &mut self.message;
        out.clear();
        let _ = rmp::encode::write_array_len(out, 3);
        let _ = rmp::encode::write_str(out, tag);
        let _ = rmp::encode::write_bin(out, entries);
        let options = 1 + u32::from(self.config.require_ack) + u32::from(self.config.gzip);
        let _ = rmp::encode::write_map_len(out, options);
        let _ = rmp::encode::write_str(out, "size");
        let _ = rmp::encode::write_uint(out, records.len() as u64);
        if self.config.require_ack {
            let _ = rmp::encode::write_str(out, "chunk");
            let _ = rmp::encode::write_str(out, chunk);
        }
        if self.config.gzip {
            let _ = rmp::encode::write_str(out, "compressed");
            let _ = rmp::encode::write_str(out, "gzip");
        }
    }
}

impl Sink for ForwardSink {
    fn send(&mut self, records: &[LogRecord]) -> Result<(), SendError> {
        if self.config.balance == Balance::RoundRobin {
            self.current += 1;
            if !self.config.require_ack {
                // Without acks, a write into a connection the server closed
                // while it sat idle would seem to succeed: only a
                // connection just made (or just used) is trusted.
                let slot = self.slot();
                if let Some(connection) = self.connections.get_mut(slot) {
                    *connection = None;
                }
            }
        }
        let sent = self.deliver(records);
        if sent.is_err() {
            // Whatever the connection had in flight is unknown: the retry
            // starts afresh, on the next server.
            let slot = self.slot();
            if let Some(connection) = self.connections.get_mut(slot) {
                *connection = None;
            }
            self.current += 1;
        }
        sent
    }
}

fn tag_of<'a>(record: &'a LogRecord, default: &'a str) -> &'a str {
    record.resource("fluent.tag").unwrap_or(default)
}

/// One `[EventTime, {…}]` entry.
fn entry(record: &LogRecord, out: &mut Vec<u8>) {
    let _ = rmp::encode::write_array_len(out, 2);
    let _ = rmp::encode::write_ext_meta(out, 8, 0);
    let secs = record.time_ns.div_euclid(1_000_000_000);
    let nanos = record.time_ns.rem_euclid(1_000_000_000) as u32;
    out.extend_from_slice(&(secs.clamp(0, i64::from(u32::MAX)) as u32).to_be_bytes());
    out.extend_from_slice(&nanos.to_be_bytes());
    let resource: Vec<&(CompactString, CompactString)> = record
        .resource
        .iter()
        .filter(|(k, _)| k != "fluent.tag")
        .collect();
    // An attribute named as one of the record's own fields goes in a map
    // of its own, so that it can neither clash with the field nor be
    // taken for it.
    let clashes = |(key, _): &&(CompactString, Value)| RECORD_FIELDS.contains(&key.as_str());
    let clashing = record.attributes.iter().filter(clashes).count();
    let plain = record.attributes.len() - clashing;
    let fields = 2
        + record.severity.is_some() as u32
        + record.partial as u32
        + record.trace_id.is_some() as u32
        + record.span_id.is_some() as u32
        + !resource.is_empty() as u32
        + (clashing > 0) as u32
        + plain as u32;
    let _ = rmp::encode::write_map_len(out, fields);
    let _ = rmp::encode::write_str(out, "log");
    match std::str::from_utf8(&record.body) {
        Ok(text) => {
            let _ = rmp::encode::write_str(out, text);
        }
        Err(_) => {
            let _ = rmp::encode::write_bin(out, &record.body);
        }
    }
    let _ = rmp::encode::write_str(out, "stream");
    let _ = rmp::encode::write_str(out, record.stream.as_str());
    if let Some(severity) = record.severity {
        let _ = rmp::encode::write_str(out, "severity");
        let _ = rmp::encode::write_uint(out, u64::from(severity));
    }
    if record.partial {
        let _ = rmp::encode::write_str(out, "partial");
        let _ = rmp::encode::write_bool(out, true);
    }
    if let Some(trace) = &record.trace_id {
        let _ = rmp::encode::write_str(out, "trace_id");
        let _ = rmp::encode::write_str(out, &hex(trace));
    }
    if let Some(span) = &record.span_id {
        let _ = rmp::encode::write_str(out, "span_id");
        let _ = rmp::encode::write_str(out, &hex(span));
    }
    if !resource.is_empty() {
        let _ = rmp::encode::write_str(out, "resource");
        let _ = rmp::encode::write_map_len(out, resource.len() as u32);
        for (key, value) in resource {
            let _ = rmp::encode::write_str(out, key);
            let _ = rmp::encode::write_str(out, value);
        }
    }
    // Writing into a Vec cannot fail.
    if clashing > 0 {
        let _ = rmp::encode::write_str(out, CLASHING_ATTRIBUTES);
        let _ = rmp::encode::write_map_len(out, clashing as u32);
        attributes(record.attributes.iter().filter(clashes), out);
    }
    attributes(record.attributes.iter().filter(|a| !clashes(a)), out);
}

/// The map key under which attributes named as a record field go.
pub const CLASHING_ATTRIBUTES: &str = "weir.attributes";

/// The keys of an entry that are the record's own fields.
const RECORD_FIELDS: [&str; 8] = [
    "log",
    "stream",
    "severity",
    "partial",
    "trace_id",
    "span_id",
    "resource",
    CLASHING_ATTRIBUTES,
];

/// Attributes as map pairs.
fn attributes<'a>(pairs: impl Iterator<Item = &'a (CompactString, Value)>, out: &mut Vec<u8>) {
    for (key, value) in pairs {
        let _ = rmp::encode::write_str(out, key);
        match value {
            Value::Str(s) => {
                let _ = rmp::encode::write_str(out, s);
            }
            Value::Int(n) => {
                let _ = rmp::encode::write_sint(out, *n);
            }
            Value::Float(x) => {
                let _ = rmp::encode::write_f64(out, *x);
            }
            Value::Bool(b) => {
                let _ = rmp::encode::write_bool(out, *b);
            }
        }
    }
}

/// Reads MessagePack values from `stream` until one is whole.
fn read_value(
    stream: &mut dyn Stream,
    buffer: &mut Vec<u8>,
    deadline: Instant,
) -> Result<usize, String> {
    let mut read = [0u8; 4096];
    loop {
        match msgpack::skip(buffer) {
            Ok(len) => return Ok(len),
            Err(ReadError::Invalid { at, what }) => {
                return Err(format!("answer byte {at}: {what}"));
            }
            Err(ReadError::Incomplete) if buffer.len() > 1 << 16 => {
                return Err("an answer longer than 64 KiB".into());
            }
            Err(ReadError::Incomplete) => {}
        }
        if Instant::now() >= deadline {
            return Err("no answer in time".into());
        }
        match stream.read(&mut read) {
            Ok(0) => return Err("the server closed the connection".into()),
            Ok(n) => buffer.extend_from_slice(&read[..n]),
            Err(e) => return Err(format!("reading the answer: {e}")),
        }
    }
}

fn wait_for_ack(stream: &mut dyn Stream, chunk: &str, timeout: Duration) -> Result<(), String> {
    let mut buffer = Vec::new();
    let len = read_value(stream, &mut buffer, Instant::now() + timeout)?;
    let (answer, _) = msgpack::read(&buffer[..len]).map_err(|e| format!("{e:?}"))?;
    match answer.get("ack").and_then(msgpack::Value::as_bytes) {
        Some(ack) if ack == chunk.as_bytes() => Ok(()),
        Some(_) => Err("acknowledged another chunk".into()),
        None => Err("an answer that is not an ack".into()),
    }
}

/// The client's side of the shared_key handshake.
fn handshake(
    stream: &mut dyn Stream,
    key: &str,
    hostname: &str,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut buffer = Vec::new();
    let len = read_value(stream, &mut buffer, deadline)?;
    let (helo, _) = msgpack::read(&buffer[..len]).map_err(|e| format!("{e:?}"))?;
    let msgpack::Value::Array(items) = &helo else {
        return Err("expected HELO".into());
    };
    if items.first().and_then(msgpack::Value::as_str) != Some("HELO") {
        return Err("expected HELO".into());
    }
    let nonce = items
        .get(1)
        .and_then(|o| o.get("nonce"))
        .and_then(msgpack::Value::as_bytes)
        .ok_or("HELO without a nonce")?
        .to_vec();
    let salt = hex(&random_bytes());
    let digest = |host: &[u8]| {
        let mut hasher = Sha512::new();
        hasher.update(salt.as_bytes());
        hasher.update(host);
        hasher.update(&nonce);
        hasher.update(key.as_bytes());
        hex(&hasher.finalize())
    };
    let mut ping = Vec::new();
    let _ = rmp::encode::write_array_len(&mut ping, 6);
    for field in [
        "PING",
        hostname,
        &salt,
        &digest(hostname.as_bytes()),
        "",
        "",
    ] {
        let _ = rmp::encode::write_str(&mut ping, field);
    }
    stream
        .write_all(&ping)
        .map_err(|e| format!("sending PING: {e}"))?;
    buffer.drain(..len);
    let len = read_value(stream, &mut buffer, deadline)?;
    let (pong, _) = msgpack::read(&buffer[..len]).map_err(|e| format!("{e:?}"))?;
    let msgpack::Value::Array(items) = &pong else {
        return Err("expected PONG".into());
    };
    if items.first().and_then(msgpack::Value::as_str) != Some("PONG") || items.len() < 5 {
        return Err("expected PONG".into());
    }
    if items[1] != msgpack::Value::Bool(true) {
        let reason = items[2].as_str().unwrap_or("no reason given");
        return Err(format!("refused: {reason}"));
    }
    let server_host = items[3].as_bytes().unwrap_or_default();
    if items[4].as_bytes() != Some(digest(server_host).as_bytes()) {
        return Err("the server does not know the shared key".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Stream;
    use crate::source::forward::message;

    #[test]
    fn weirs_forward_source_reads_back_every_field_the_sink_writes() {
        let record = LogRecord {
            time_ns: 1_700_000_000_123_456_789,
            observed_ns: 0,
            stream: Stream::Stderr,
            severity: Some(3),
            body: b"not \xff utf-8".to_vec(),
            resource: vec![
                ("fluent.tag".into(), "pods.web".into()),
                ("container.name".into(), "web".into()),
            ],
            // Named as record fields: they may neither clash with nor
            // stand in for them (a `log` attribute is not the body).
            attributes: vec![
                ("log".into(), Value::Str("not the body".into())),
                ("stream".into(), Value::Str("sideways".into())),
                ("resource".into(), Value::Int(3)),
                ("user".into(), Value::Str("ann".into())),
                ("n".into(), Value::Int(-7)),
                ("ratio".into(), Value::Float(0.25)),
                ("ok".into(), Value::Bool(true)),
            ],
            trace_id: Some([0xab; 16]),
            span_id: Some([0x01; 8]),
            partial: true,
            span: None,
        };
        for gzip in [false, true] {
            let mut sink = ForwardSink::new(ForwardSinkConfig {
                servers: vec!["127.0.0.1:1".parse().unwrap()],
                balance: Balance::Failover,
                tag: "default".into(),
                gzip,
                require_ack: true,
                shared_key: None,
                hostname: "h".into(),
                timeout: Duration::from_secs(1),
                tls: None,
            })
            .unwrap();
            sink.encode(std::slice::from_ref(&record), "pods.web", "c1");
            let (value, _) = msgpack::read(&sink.message).unwrap();
            let decoded = message::decode(&value, 1 << 20).unwrap();
            assert_eq!(decoded.chunk.as_deref(), Some(&b"c1"[..]));
            let mut back = decoded.records.into_iter().next().unwrap();
            back.observed_ns = 0;
            assert_eq!(back, record);
        }
    }

    #[test]
    fn round_robin_keeps_a_connection_to_each_server() {
        use std::io::Read;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let mut servers = Vec::new();
        let mut accepted = Vec::new();
        for _ in 0..2 {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            servers.push(listener.local_addr().unwrap());
            let count = std::sync::Arc::new(AtomicUsize::new(0));
            accepted.push(std::sync::Arc::clone(&count));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    count.fetch_add(1, Ordering::SeqCst);
                    let mut stream = stream.unwrap();
                    // Acknowledges each message, as a Forward server does.
                    std::thread::spawn(move || {
                        use std::io::Write;
                        let mut buffer = Vec::new();
                        let mut read = [0u8; 4096];
                        while let Ok(n @ 1..) = stream.read(&mut read) {
                            buffer.extend_from_slice(&read[..n]);
                            while let Ok(len) = msgpack::skip(&buffer) {
                                let (value, _) = msgpack::read(&buffer[..len]).unwrap();
                                let chunk = message::decode(&value, 1 << 20).unwrap().chunk;
                                let mut answer = Vec::new();
                                rmp::encode::write_map_len(&mut answer, 1).unwrap();
                                rmp::encode::write_str(&mut answer, "ack").unwrap();
                                rmp::encode::write_bin(&mut answer, &chunk.unwrap()).unwrap();
                                stream.write_all(&answer).unwrap();
                                buffer.drain(..len);
                            }
                        }
                    });
                }
            });
        }
        let mut sink = ForwardSink::new(ForwardSinkConfig {
            servers,
            balance: Balance::RoundRobin,
            tag: "t".into(),
            gzip: false,
            require_ack: true,
            shared_key: None,
            hostname: "h".into(),
            timeout: Duration::from_secs(2),
            tls: None,
        })
        .unwrap();
        let record = LogRecord {
            body: b"x".to_vec(),
            ..LogRecord::default()
        };
        for _ in 0..6 {
            sink.send(std::slice::from_ref(&record)).unwrap();
        }
        let counts =
            || -> Vec<usize> { accepted.iter().map(|c| c.load(Ordering::SeqCst)).collect() };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while counts().iter().sum::<usize>() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(counts(), [1, 1]);
    }
}
