//! The record that flows through the agent (DESIGN.md, "Data model"): a
//! log record, or with [`SpanFields`] a span, whose start, ids, resource
//! and attributes are the record's own. One type carries both, so every
//! transform, buffer and sink takes spans as it takes logs; the sinks that
//! speak a protocol with separate signals (OTLP) send each its way.
//!
//! The compact binary form, in which buffers hold it:
//! The binary form: a version byte, a flags byte, the two timestamps as
//! little-endian i64, then the optional fields the flags announce and
//! length-prefixed (LEB128) strings and bytes. Decoding checks every length
//! against what is left, so a damaged payload is an error, never a panic.

mod span;

use std::fmt;

pub use compact_str::CompactString;

pub use self::span::{SpanEvent, SpanFields, SpanKind, SpanLink, SpanStatus};

/// The resource key that names the tenant a record belongs to: a
/// collector's query token limited to a tenant reads only its records.
pub const TENANT: &str = "weir.tenant";

/// Where a record came from within its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stream {
    Stdout,
    Stderr,
    #[default]
    Other,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::Other => "other",
        }
    }

    fn code(self) -> u8 {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
            Stream::Other => 2,
        }
    }

    fn from_code(code: u8) -> Option<Stream> {
        match code {
            0 => Some(Stream::Stdout),
            1 => Some(Stream::Stderr),
            2 => Some(Stream::Other),
            _ => None,
        }
    }
}

/// A value of an attribute parsed out of a record.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(CompactString),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// One log record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogRecord {
    /// When it happened (ns since the Unix epoch, UTC).
    pub time_ns: i64,
    /// When weir first saw it.
    pub observed_ns: i64,
    pub stream: Stream,
    /// RFC 5424 severity, 0 (emergency) to 7 (debug).
    pub severity: Option<u8>,
    /// The record as written: bytes, not forced to UTF-8.
    pub body: Vec<u8>,
    /// Who wrote it: node, container name and id, labels, pid, file path.
    pub resource: Vec<(CompactString, CompactString)>,
    /// Fields parsed out of the body by transforms.
    pub attributes: Vec<(CompactString, Value)>,
    pub trace_id: Option<[u8; 16]>,
    pub span_id: Option<[u8; 8]>,
    /// The body is the start of a line cut at the maximum size.
    pub partial: bool,
    /// What makes this record a span (its `time_ns` is the start).
    pub span: Option<Box<SpanFields>>,
}

/// The largest body room a record kept for reuse may have.
const MAX_REUSED_BODY: usize = 4096;

const VERSION: u8 = 1;
const HAS_SEVERITY: u8 = 1 << 2;
const HAS_TRACE: u8 = 1 << 3;
const HAS_SPAN: u8 = 1 << 4;
const PARTIAL: u8 = 1 << 5;
const IS_SPAN: u8 = 1 << 6;
const STREAM_MASK: u8 = 0b11;

/// Why a payload is not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record payload, byte {offset}: {what}")]
pub struct DecodeError {
    pub offset: usize,
    pub what: &'static str,
}

impl LogRecord {
    /// Appends the binary form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.encode_parts(out, &self.resource);
    }

    /// Appends the binary form with an empty resource: for a store that
    /// keeps each distinct resource once, apart from the records.
    pub fn encode_without_resource(&self, out: &mut Vec<u8>) {
        self.encode_parts(out, &[]);
    }

    fn encode_parts(&self, out: &mut Vec<u8>, resource: &[(CompactString, CompactString)]) {
        let mut flags = self.stream.code();
        if self.severity.is_some() {
            flags |= HAS_SEVERITY;
        }
        if self.trace_id.is_some() {
            flags |= HAS_TRACE;
        }
        if self.span_id.is_some() {
            flags |= HAS_SPAN;
        }
        if self.partial {
            flags |= PARTIAL;
        }
        if self.span.is_some() {
            flags |= IS_SPAN;
        }
        out.push(VERSION);
        out.push(flags);
        out.extend_from_slice(&self.time_ns.to_le_bytes());
        out.extend_from_slice(&self.observed_ns.to_le_bytes());
        if let Some(severity) = self.severity {
            out.push(severity);
        }
        if let Some(trace) = &self.trace_id {
            out.extend_from_slice(trace);
        }
        if let Some(span) = &self.span_id {
            out.extend_from_slice(span);
        }
        put_bytes(out, &self.body);
        put_len(out, resource.len());
        for (key, value) in resource {
            put_bytes(out, key.as_bytes());
            put_bytes(out, value.as_bytes());
        }
        put_attributes(out, &self.attributes);
        if let Some(span) = &self.span {
            span.encode(out);
        }
    }

    /// Reads a record back from its binary form.
    pub fn decode(bytes: &[u8]) -> Result<LogRecord, DecodeError> {
        let mut record = LogRecord::default();
        record.decode_into(bytes)?;
        Ok(record)
    }

    /// Reads a record back into `self`, reusing its allocations (body,
    /// resource, attributes): a scheduler that decodes batch after batch
    /// into the same records allocates next to nothing once warm. On an
    /// error `self` holds part of the record and should be discarded.
    pub fn decode_into(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        let mut input = Input { bytes, at: 0 };
        let flags = self.decode_core(&mut input)?;
        let count = input.len()?;
        self.resource.truncate(count);
        for i in 0..count {
            let key = input.str()?;
            let value = input.str()?;
            match self.resource.get_mut(i) {
                Some((k, v)) => {
                    reuse(k, key);
                    reuse(v, value);
                }
                None => self.resource.push((key.into(), value.into())),
            }
        }
        input.attributes_into(&mut self.attributes)?;
        self.span = if flags & IS_SPAN != 0 {
            Some(Box::new(SpanFields::decode(&mut input)?))
        } else {
            None
        };
        if input.at != bytes.len() {
            return Err(input.error("bytes after the record"));
        }
        Ok(())
    }

    /// Reads the core of a record (times, stream, severity, ids, partial
    /// flag, body) into `self`, leaving its resource, attributes and span
    /// empty and the rest of the payload unread: for sinks that read no
    /// more ([`crate::sink::Reads::Core`]).
    pub fn decode_core_into(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        self.decode_core(&mut Input { bytes, at: 0 })?;
        self.resource.clear();
        self.attributes.clear();
        self.span = None;
        Ok(())
    }

    /// The fields before the resource; returns the flags byte.
    fn decode_core(&mut self, input: &mut Input<'_>) -> Result<u8, DecodeError> {
        if input.byte()? != VERSION {
            return Err(input.error("unknown version"));
        }
        let flags = input.byte()?;
        self.stream =
            Stream::from_code(flags & STREAM_MASK).ok_or_else(|| input.error("unknown stream"))?;
        self.time_ns = i64::from_le_bytes(input.array()?);
        self.observed_ns = i64::from_le_bytes(input.array()?);
        self.severity = if flags & HAS_SEVERITY != 0 {
            Some(input.byte()?)
        } else {
            None
        };
        self.trace_id = if flags & HAS_TRACE != 0 {
            Some(input.array()?)
        } else {
            None
        };
        self.span_id = if flags & HAS_SPAN != 0 {
            Some(input.array()?)
        } else {
            None
        };
        self.partial = flags & PARTIAL != 0;
        self.body.clear();
        self.body.extend_from_slice(input.bytes()?);
        Ok(flags)
    }

    /// Whether a record done with is worth keeping to parse or decode the
    /// next into: not one whose body room grew large (a rare long line),
    /// which reuse would otherwise keep for good.
    pub fn worth_reusing(&self) -> bool {
        self.body.capacity() <= MAX_REUSED_BODY && self.span.is_none()
    }

    /// Empties every field, keeping the room the body, resource and
    /// attributes have, for a source to parse the next record into.
    pub fn reset(&mut self) {
        let LogRecord {
            time_ns,
            observed_ns,
            stream,
            severity,
            body,
            resource,
            attributes,
            trace_id,
            span_id,
            partial,
            span,
        } = self;
        *time_ns = 0;
        *observed_ns = 0;
        *stream = Stream::default();
        *severity = None;
        body.clear();
        resource.clear();
        attributes.clear();
        *trace_id = None;
        *span_id = None;
        *partial = false;
        *span = None;
    }

    /// Sets resource key `key` to `value`, in place of every value the
    /// record had for it.
    pub fn set_resource(&mut self, key: &str, value: &str) {
        self.resource.retain(|(k, _)| k != key);
        self.resource.push((key.into(), value.into()));
    }

    /// The value of resource key `key`.
    pub fn resource(&self, key: &str) -> Option<&str> {
        self.resource
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Overwrites `text` with `with`, in the room it has.
fn reuse(text: &mut CompactString, with: &str) {
    text.clear();
    text.push_str(with);
}

fn put_attributes(out: &mut Vec<u8>, attributes: &[(CompactString, Value)]) {
    put_len(out, attributes.len());
    for (key, value) in attributes {
        put_bytes(out, key.as_bytes());
        match value {
            Value::Str(s) => {
                out.push(0);
                put_bytes(out, s.as_bytes());
            }
            Value::Int(i) => {
                out.push(1);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Value::Float(x) => {
                out.push(2);
                out.extend_from_slice(&x.to_le_bytes());
            }
            Value::Bool(b) => {
                out.push(3);
                out.push(u8::from(*b));
            }
        }
    }
}

fn put_len(out: &mut Vec<u8>, mut len: usize) {
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

struct Input<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Input<'a> {
    fn error(&self, what: &'static str) -> DecodeError {
        DecodeError {
            offset: self.at,
            what,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() - self.at < n {
            return Err(self.error("ends early"));
        }
        let taken = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn len(&mut self) -> Result<usize, DecodeError> {
        let mut len = 0usize;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            len |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                // A length can never exceed what is left to read.
                if len > self.bytes.len() - self.at {
                    return Err(self.error("a length past the end"));
                }
                return Ok(len);
            }
        }
        Err(self.error("a length of more than 64 bits"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.len()?;
        self.take(len)
    }

    fn attributes(&mut self) -> Result<Vec<(CompactString, Value)>, DecodeError> {
        let mut attributes = Vec::new();
        self.attributes_into(&mut attributes)?;
        Ok(attributes)
    }

    /// Attributes into `attributes`, reusing the keys and text values there.
    fn attributes_into(
        &mut self,
        attributes: &mut Vec<(CompactString, Value)>,
    ) -> Result<(), DecodeError> {
        let count = self.len()?;
        attributes.truncate(count);
        attributes.reserve(count.min(64).saturating_sub(attributes.len()));
        for i in 0..count {
            let key = self.str()?;
            let kind = self.byte()?;
            let value = match kind {
                0 => None,
                1 => Some(Value::Int(i64::from_le_bytes(self.array()?))),
                2 => Some(Value::Float(f64::from_le_bytes(self.array()?))),
                3 => Some(Value::Bool(self.byte()? != 0)),
                _ => return Err(self.error("unknown attribute type")),
            };
            let text = if value.is_none() { self.str()? } else { "" };
            match attributes.get_mut(i) {
                Some((k, v)) => {
                    reuse(k, key);
                    match (value, v) {
                        (Some(value), v) => *v = value,
                        (None, Value::Str(s)) => reuse(s, text),
                        (None, v) => *v = Value::Str(text.into()),
                    }
                }
                None => {
                    attributes.push((key.into(), value.unwrap_or_else(|| Value::Str(text.into()))))
                }
            }
        }
        Ok(())
    }

    /// A key or value; one of up to 24 bytes takes no allocation.
    fn string(&mut self) -> Result<CompactString, DecodeError> {
        self.str().map(CompactString::from)
    }

    fn str(&mut self) -> Result<&'a str, DecodeError> {
        let at = self.at;
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError {
            offset: at,
            what: "a key or value that is not UTF-8",
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(super) fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            ".*".prop_map(|s: String| Value::Str(s.into())),
            any::<i64>().prop_map(Value::Int),
            any::<f64>()
                .prop_filter("NaN is not equal to itself", |x| !x.is_nan())
                .prop_map(Value::Float),
            any::<bool>().prop_map(Value::Bool),
        ]
    }

    fn record() -> impl Strategy<Value = LogRecord> {
        (
            (any::<i64>(), any::<i64>(), 0u8..3, prop::option::of(0u8..8)),
            prop::collection::vec(any::<u8>(), 0..300),
            prop::collection::vec((".{0,10}", ".{0,20}"), 0..4),
            prop::collection::vec((".{0,10}", value()), 0..4),
            (
                prop::option::of(any::<[u8; 16]>()),
                prop::option::of(any::<[u8; 8]>()),
                any::<bool>(),
            ),
            prop::option::of(span::tests::span_fields()),
        )
            .prop_map(
                |(
                    (time_ns, observed_ns, stream, severity),
                    body,
                    resource,
                    attributes,
                    ids,
                    span,
                )| {
                    LogRecord {
                        time_ns,
                        observed_ns,
                        stream: Stream::from_code(stream).unwrap(),
                        severity,
                        body,
                        resource: resource
                            .into_iter()
                            .map(|(k, v): (String, String)| (k.into(), v.into()))
                            .collect(),
                        attributes: attributes
                            .into_iter()
                            .map(|(k, v): (String, Value)| (k.into(), v))
                            .collect(),
                        trace_id: ids.0,
                        span_id: ids.1,
                        partial: ids.2,
                        span: span.map(Box::new),
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn round_trips(record in record()) {
            let mut bytes = Vec::new();
            record.encode(&mut bytes);
            prop_assert_eq!(LogRecord::decode(&bytes).unwrap(), record);
        }

        /// Decoding into a record that held another leaves nothing of it.
        #[test]
        fn decoding_into_a_used_record_gives_the_record(record in record(), used in record()) {
            let mut bytes = Vec::new();
            record.encode(&mut bytes);
            let mut into = used;
            into.decode_into(&bytes).unwrap();
            prop_assert_eq!(into, record);
        }

        /// A sink that reads only the core gets all of it, and nothing else.
        #[test]
        fn the_core_of_a_record_is_decoded_alone(record in record(), used in record()) {
            let mut bytes = Vec::new();
            record.encode(&mut bytes);
            let mut into = used;
            into.decode_core_into(&bytes).unwrap();
            let core = LogRecord {
                resource: Vec::new(),
                attributes: Vec::new(),
                span: None,
                ..record
            };
            prop_assert_eq!(into, core);
        }

        #[test]
        fn a_cut_or_extended_payload_is_an_error(record in record(), cut in any::<prop::sample::Index>()) {
            let mut bytes = Vec::new();
            record.encode(&mut bytes);
            let cut = cut.index(bytes.len());
            prop_assert!(LogRecord::decode(&bytes[..cut]).is_err());
            bytes.push(0);
            prop_assert!(LogRecord::decode(&bytes).is_err());
        }
    }
}
