//! Forward protocol messages into log records, in each of the protocol's
//! modes: Message `[tag, time, record, option?]`, Forward `[tag, [[time,
//! record], …], option?]`, PackedForward `[tag, bin, option?]` (the
//! entries concatenated) and CompressedPackedForward (the same, gzipped,
//! `{"compressed": "gzip"}`).
//!
//! The tag goes to the resource as `fluent.tag`; the record's `log` or
//! `message` field is the body, and its other fields are attributes. A
//! record with neither has its whole map as JSON for a body.

use std::io::Read;

use super::msgpack::{self, ReadError, Value};
use crate::record::{self, LogRecord, Stream};

/// What one message carried.
#[derive(Debug, Default)]
pub struct Decoded {
    pub records: Vec<LogRecord>,
    /// The `chunk` option: the client waits for `{"ack": chunk}`.
    pub chunk: Option<Vec<u8>>,
}

/// Decodes one message; `max_unpacked` bounds what a compressed one may
/// grow to. The error says what was wrong.
pub fn decode(message: &Value<'_>, max_unpacked: usize) -> Result<Decoded, String> {
    let Value::Array(items) = message else {
        return Err("expected an array [tag, …]".into());
    };
    if !(2..=4).contains(&items.len()) {
        return Err(format!("expected 2 to 4 items, not {}", items.len()));
    }
    let tag = items[0].as_bytes().ok_or("expected a string tag first")?;
    let tag = String::from_utf8_lossy(tag).into_owned();
    let mut decoded = Decoded::default();
    let option = match &items[1] {
        Value::Array(entries) => {
            for entry in entries {
                decoded.records.push(entry_record(entry, &tag)?);
            }
            items.get(2)
        }
        Value::Str(packed) | Value::Bin(packed) => {
            let option = items.get(2);
            let compressed = option
                .and_then(|o| o.get("compressed"))
                .and_then(Value::as_str);
            match compressed {
                Some("gzip") => {
                    let unpacked = gunzip(packed, max_unpacked)?;
                    unpack(&unpacked, &tag, &mut decoded.records)?;
                }
                Some("text") | None => unpack(packed, &tag, &mut decoded.records)?,
                Some(other) => return Err(format!("unknown compression {other:?}")),
            }
            option
        }
        time => {
            let record = items.get(2).ok_or("expected a record after the time")?;
            decoded.records.push(to_record(time, record, &tag)?);
            items.get(3)
        }
    };
    if let Some(option) = option {
        if !matches!(option, Value::Map(_) | Value::Nil) {
            return Err("expected the option to be a map".into());
        }
        decoded.chunk = option
            .get("chunk")
            .and_then(Value::as_bytes)
            .map(<[u8]>::to_vec);
    }
    Ok(decoded)
}

/// The entries of a PackedForward message, one after another.
fn unpack(mut packed: &[u8], tag: &str, records: &mut Vec<LogRecord>) -> Result<(), String> {
    while !packed.is_empty() {
        let (entry, len) = msgpack::read(packed).map_err(|e| match e {
            ReadError::Incomplete => "a packed entry is cut short".to_owned(),
            ReadError::Invalid { at, what } => format!("packed entries, byte {at}: {what}"),
        })?;
        records.push(entry_record(&entry, tag)?);
        packed = &packed[len..];
    }
    Ok(())
}

/// Gunzips `bytes` (members may follow one another), refusing to grow
/// past `max`.
fn gunzip(bytes: &[u8], max: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("gzip: {e}"))?;
    if out.len() > max {
        return Err(format!("unpacks to more than {max} bytes"));
    }
    Ok(out)
}

fn entry_record(entry: &Value<'_>, tag: &str) -> Result<LogRecord, String> {
    match entry {
        Value::Array(pair) if pair.len() == 2 => to_record(&pair[0], &pair[1], tag),
        _ => Err("expected an entry [time, record]".into()),
    }
}

fn to_record(time: &Value<'_>, fields: &Value<'_>, tag: &str) -> Result<LogRecord, String> {
    let Value::Map(entries) = fields else {
        return Err("expected a record to be a map".into());
    };
    let time_ns = event_time(time)?;
    let mut record = LogRecord {
        time_ns,
        observed_ns: now_ns(),
        stream: Stream::Other,
        resource: vec![("fluent.tag".into(), tag.into())],
        ..LogRecord::default()
    };
    let body_key = ["log", "message"]
        .into_iter()
        .find(|key| fields.get(key).and_then(Value::as_bytes).is_some());
    for (key, value) in entries {
        let Some(key) = key.as_bytes() else {
            continue;
        };
        let key = String::from_utf8_lossy(key);
        if Some(key.as_ref()) == body_key {
            record.body = value.as_bytes().unwrap_or_default().to_vec();
            continue;
        }
        if record_field(&mut record, &key, value) {
            continue;
        }
        if let Some(value) = attribute(value) {
            record.attributes.push((key.into(), value));
        }
    }
    if body_key.is_none() {
        let mut json = String::new();
        to_json(fields, &mut json);
        record.body = json.into_bytes();
    }
    Ok(record)
}

/// The fields that are the record's own rather than attributes, as weir's
/// forward sink writes them and Docker's logs name the stream: whether
/// `key` was one.
fn record_field(record: &mut LogRecord, key: &str, value: &Value<'_>) -> bool {
    match (key, value) {
        ("stream", Value::Str(s)) if *s == b"stdout" || *s == b"stderr" => {
            record.stream = if *s == b"stdout" {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
        }
        ("severity", Value::Int(n)) if (0..=7).contains(n) => record.severity = Some(*n as u8),
        ("partial", Value::Bool(partial)) => record.partial = *partial,
        ("trace_id", Value::Str(hex)) if hex.len() == 32 => match unhex::<16>(hex) {
            Some(id) => record.trace_id = Some(id),
            None => return false,
        },
        ("span_id", Value::Str(hex)) if hex.len() == 16 => match unhex::<8>(hex) {
            Some(id) => record.span_id = Some(id),
            None => return false,
        },
        (crate::sink::forward::CLASHING_ATTRIBUTES, Value::Map(entries))
            if entries.iter().all(|(k, _)| k.as_str().is_some()) =>
        {
            for (k, v) in entries {
                if let (Some(k), Some(v)) = (k.as_str(), attribute(v)) {
                    record.attributes.push((k.into(), v));
                }
            }
        }
        ("resource", Value::Map(entries))
            if entries
                .iter()
                .all(|(k, v)| k.as_str().is_some() && v.as_str().is_some()) =>
        {
            for (k, v) in entries {
                let (Some(k), Some(v)) = (k.as_str(), v.as_str()) else {
                    continue;
                };
                record.resource.push((k.into(), v.into()));
            }
        }
        _ => return false,
    }
    true
}

fn unhex<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; N];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        *out.get_mut(i)? = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// Integer seconds, or the EventTime extension (type 0: seconds and
/// nanoseconds, big-endian u32 each); some clients send a float.
fn event_time(time: &Value<'_>) -> Result<i64, String> {
    match time {
        Value::Int(secs) => Ok(secs.saturating_mul(1_000_000_000)),
        Value::UInt(secs) => Ok(i64::try_from(*secs)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000_000)),
        Value::Float(secs) if secs.is_finite() => Ok((secs * 1e9) as i64),
        Value::Ext(0, bytes) if bytes.len() == 8 => {
            let secs = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            let nanos = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
            Ok(i64::from(secs) * 1_000_000_000 + i64::from(nanos.min(999_999_999)))
        }
        _ => Err("expected a time: seconds or EventTime".into()),
    }
}

fn attribute(value: &Value<'_>) -> Option<record::Value> {
    Some(match value {
        Value::Nil => return None,
        Value::Bool(b) => record::Value::Bool(*b),
        Value::Int(n) => record::Value::Int(*n),
        Value::UInt(n) => record::Value::Str(n.to_string().into()),
        Value::Float(x) => record::Value::Float(*x),
        Value::Str(b) | Value::Bin(b) => record::Value::Str(String::from_utf8_lossy(b).into()),
        Value::Array(_) | Value::Map(_) | Value::Ext(..) => {
            let mut json = String::new();
            to_json(value, &mut json);
            record::Value::Str(json.into())
        }
    })
}

/// A value as JSON text (binaries and extensions as their bytes, lossily).
fn to_json(value: &Value<'_>, out: &mut String) {
    use std::fmt::Write as _;
    match value {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Value::UInt(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Float(x) if x.is_finite() => {
            let _ = write!(out, "{x}");
        }
        Value::Float(_) => out.push_str("null"),
        Value::Str(b) | Value::Bin(b) | Value::Ext(_, b) => {
            let text = String::from_utf8_lossy(b);
            out.push_str(&serde_json::Value::from(text.as_ref()).to_string());
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                to_json(item, out);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            out.push('{');
            for (i, (key, value)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let key = key
                    .as_bytes()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                out.push_str(&serde_json::Value::from(key.as_ref()).to_string());
                out.push(':');
                to_json(value, out);
            }
            out.push('}');
        }
    }
}

fn now_ns() -> i64 {
    weir_monitor::format::timestamp::Timestamp::now()
        .as_nanos()
        .clamp(0, i64::MAX as i128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmp::encode::*;

    fn entry(out: &mut Vec<u8>, secs: u32, nanos: u32, log: &str) {
        write_array_len(out, 2).unwrap();
        write_ext_meta(out, 8, 0).unwrap();
        out.extend_from_slice(&secs.to_be_bytes());
        out.extend_from_slice(&nanos.to_be_bytes());
        write_map_len(out, 2).unwrap();
        write_str(out, "log").unwrap();
        write_str(out, log).unwrap();
        write_str(out, "level").unwrap();
        write_str(out, "info").unwrap();
    }

    fn decoded(bytes: &[u8]) -> Decoded {
        let (value, len) = msgpack::read(bytes).unwrap();
        assert_eq!(len, bytes.len());
        decode(&value, 1 << 20).unwrap()
    }

    fn bodies(decoded: &Decoded) -> Vec<&[u8]> {
        decoded.records.iter().map(|r| r.body.as_slice()).collect()
    }

    #[test]
    fn every_mode_gives_the_same_records() {
        let mut packed = Vec::new();
        entry(&mut packed, 1, 5, "a");
        entry(&mut packed, 2, 6, "b");
        let option = |out: &mut Vec<u8>, compressed: bool| {
            write_map_len(out, if compressed { 2 } else { 1 }).unwrap();
            write_str(out, "chunk").unwrap();
            write_str(out, "c1").unwrap();
            if compressed {
                write_str(out, "compressed").unwrap();
                write_str(out, "gzip").unwrap();
            }
        };
        // Forward
        let mut forward = Vec::new();
        write_array_len(&mut forward, 3).unwrap();
        write_str(&mut forward, "app").unwrap();
        write_array_len(&mut forward, 2).unwrap();
        forward.extend_from_slice(&packed);
        option(&mut forward, false);
        // PackedForward
        let mut packed_forward = Vec::new();
        write_array_len(&mut packed_forward, 3).unwrap();
        write_str(&mut packed_forward, "app").unwrap();
        write_bin(&mut packed_forward, &packed).unwrap();
        option(&mut packed_forward, false);
        // CompressedPackedForward, in two gzip members.
        let gz = |bytes: &[u8]| {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut encoder, bytes).unwrap();
            encoder.finish().unwrap()
        };
        let half = packed.len() / 2;
        let mut compressed = gz(&packed[..half]);
        compressed.extend_from_slice(&gz(&packed[half..]));
        let mut compressed_forward = Vec::new();
        write_array_len(&mut compressed_forward, 3).unwrap();
        write_str(&mut compressed_forward, "app").unwrap();
        write_bin(&mut compressed_forward, &compressed).unwrap();
        option(&mut compressed_forward, true);
        for message in [&forward, &packed_forward, &compressed_forward] {
            let decoded = decoded(message);
            assert_eq!(bodies(&decoded), [b"a", b"b"]);
            assert_eq!(decoded.chunk.as_deref(), Some(&b"c1"[..]));
            let first = &decoded.records[0];
            assert_eq!(first.time_ns, 1_000_000_005);
            assert_eq!(first.resource("fluent.tag"), Some("app"));
            assert_eq!(
                first.attributes,
                [("level".into(), record::Value::Str("info".into()))]
            );
        }
    }

    #[test]
    fn message_mode_and_a_record_without_a_log_field() {
        let mut message = Vec::new();
        write_array_len(&mut message, 3).unwrap();
        write_str(&mut message, "t").unwrap();
        write_uint(&mut message, 1_700_000_000).unwrap();
        write_map_len(&mut message, 2).unwrap();
        write_str(&mut message, "a").unwrap();
        write_sint(&mut message, -3).unwrap();
        write_str(&mut message, "b").unwrap();
        write_array_len(&mut message, 1).unwrap();
        write_bool(&mut message, true).unwrap();
        let decoded = decoded(&message);
        assert_eq!(decoded.chunk, None);
        let record = &decoded.records[0];
        assert_eq!(record.time_ns, 1_700_000_000_000_000_000);
        assert_eq!(record.body, br#"{"a":-3,"b":[true]}"#);
        assert_eq!(record.attributes[0], ("a".into(), record::Value::Int(-3)));
        assert_eq!(
            record.attributes[1],
            ("b".into(), record::Value::Str("[true]".into()))
        );
    }

    #[test]
    fn what_is_wrong_is_said() {
        let cases: [(&[u8], &str); 4] = [
            (&[0x01], "expected an array [tag, …]"),
            (&[0x92, 0x01, 0x01], "expected a string tag first"),
            (
                &[0x93, 0xa1, b't', 0x01, 0x01],
                "expected a record to be a map",
            ),
            (
                &[0x93, 0xa1, b't', 0xc0, 0x80],
                "expected a time: seconds or EventTime",
            ),
        ];
        for (bytes, error) in cases {
            let (value, _) = msgpack::read(bytes).unwrap();
            assert_eq!(decode(&value, 1 << 20).unwrap_err(), error);
        }
    }
}
