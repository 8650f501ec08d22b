//! Records as newline-delimited JSON, one object a line:
//! `{"time":…,"observed_time":…,"stream":…,"severity":…,"body":…,
//! "resource":{…},"attributes":{…}}`. A body that is not UTF-8 goes as
//! `body_base64` instead of `body`, so no byte is lost.

use weir_monitor::format::json_file::escape_into;
use weir_monitor::format::timestamp::Timestamp;

use crate::record::{CompactString, LogRecord, SpanFields, Value};

/// RFC 5424's severity names, by number.
pub const SEVERITY: [&str; 8] = [
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "info",
    "debug",
];

/// Appends `record` as one JSON line to `out`.
pub fn encode(record: &LogRecord, out: &mut Vec<u8>) {
    out.push(b'{');
    encode_fields(record, out);
    out.extend_from_slice(b"}\n");
}

/// Appends `record`'s fields (`"time":…,"body":…`), for an object that has
/// more of its own.
pub fn encode_fields(record: &LogRecord, out: &mut Vec<u8>) {
    out.extend_from_slice(b"\"time\":\"");
    out.extend_from_slice(&rfc3339(record.time_ns));
    out.extend_from_slice(b"\",\"observed_time\":\"");
    out.extend_from_slice(&rfc3339(record.observed_ns));
    out.extend_from_slice(b"\",\"stream\":\"");
    out.extend_from_slice(record.stream.as_str().as_bytes());
    out.push(b'"');
    if let Some(severity) = record.severity {
        out.extend_from_slice(b",\"severity\":\"");
        out.extend_from_slice(SEVERITY[usize::from(severity.min(7))].as_bytes());
        out.push(b'"');
    }
    match std::str::from_utf8(&record.body) {
        Ok(text) => {
            out.extend_from_slice(b",\"body\":\"");
            escape_into(text.as_bytes(), out);
        }
        Err(_) => {
            out.extend_from_slice(b",\"body_base64\":\"");
            base64_into(&record.body, out);
        }
    }
    out.push(b'"');
    if record.partial {
        out.extend_from_slice(b",\"partial\":true");
    }
    if !record.resource.is_empty() {
        out.extend_from_slice(b",\"resource\":{");
        for (i, (key, value)) in record.resource.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(key, out);
            out.push(b':');
            string(value, out);
        }
        out.push(b'}');
    }
    if !record.attributes.is_empty() {
        out.extend_from_slice(b",\"attributes\":");
        attributes_into(&record.attributes, out);
    }
    if let Some(trace) = &record.trace_id {
        out.extend_from_slice(b",\"trace_id\":\"");
        hex_into(trace, out);
        out.push(b'"');
    }
    if let Some(span) = &record.span_id {
        out.extend_from_slice(b",\"span_id\":\"");
        hex_into(span, out);
        out.push(b'"');
    }
    if let Some(span) = &record.span {
        span_into(span, out);
    }
}

/// `{"key":value,…}`.
fn attributes_into(attributes: &[(CompactString, Value)], out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (key, value)) in attributes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(key, out);
        out.push(b':');
        match value {
            Value::Str(s) => string(s, out),
            Value::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
            // JSON has no NaN or infinity: those go as strings.
            Value::Float(x) if x.is_finite() => out.extend_from_slice(x.to_string().as_bytes()),
            Value::Float(x) => string(&x.to_string(), out),
            Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        }
    }
    out.push(b'}');
}

/// `"span":{"name","parent_span_id","kind","end_time","status",…}`.
fn span_into(span: &SpanFields, out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"span\":{\"name\":");
    string(&span.name, out);
    if let Some(parent) = &span.parent_span_id {
        out.extend_from_slice(b",\"parent_span_id\":\"");
        hex_into(parent, out);
        out.push(b'"');
    }
    out.extend_from_slice(b",\"kind\":\"");
    out.extend_from_slice(span.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"end_time\":\"");
    out.extend_from_slice(&rfc3339(span.end_ns));
    out.extend_from_slice(b"\",\"status\":{\"code\":");
    out.extend_from_slice(span.status.code.to_string().as_bytes());
    if !span.status.message.is_empty() {
        out.extend_from_slice(b",\"message\":");
        string(&span.status.message, out);
    }
    out.push(b'}');
    if !span.trace_state.is_empty() {
        out.extend_from_slice(b",\"trace_state\":");
        string(&span.trace_state, out);
    }
    if span.flags != 0 {
        out.extend_from_slice(b",\"flags\":");
        out.extend_from_slice(span.flags.to_string().as_bytes());
    }
    if !span.events.is_empty() {
        out.extend_from_slice(b",\"events\":[");
        for (i, event) in span.events.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"time\":\"");
            out.extend_from_slice(&rfc3339(event.time_ns));
            out.extend_from_slice(b"\",\"name\":");
            string(&event.name, out);
            if !event.attributes.is_empty() {
                out.extend_from_slice(b",\"attributes\":");
                attributes_into(&event.attributes, out);
            }
            out.push(b'}');
        }
        out.push(b']');
    }
    if !span.links.is_empty() {
        out.extend_from_slice(b",\"links\":[");
        for (i, link) in span.links.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"trace_id\":\"");
            hex_into(&link.trace_id, out);
            out.extend_from_slice(b"\",\"span_id\":\"");
            hex_into(&link.span_id, out);
            out.push(b'"');
            if !link.trace_state.is_empty() {
                out.extend_from_slice(b",\"trace_state\":");
                string(&link.trace_state, out);
            }
            if !link.attributes.is_empty() {
                out.extend_from_slice(b",\"attributes\":");
                attributes_into(&link.attributes, out);
            }
            out.push(b'}');
        }
        out.push(b']');
    }
    out.push(b'}');
}

/// Appends `text` as a JSON string.
pub fn string(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    escape_into(text.as_bytes(), out);
    out.push(b'"');
}

pub fn rfc3339(ns: i64) -> [u8; 30] {
    Timestamp {
        secs: ns.div_euclid(1_000_000_000),
        nanos: ns.rem_euclid(1_000_000_000) as u32,
    }
    .to_rfc3339()
}

fn hex_into(bytes: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64_into(bytes: &[u8], out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Stream;

    #[test]
    fn a_record_is_one_json_line_and_non_utf8_bodies_survive() {
        let record = LogRecord {
            time_ns: 1_700_000_000_123_456_789,
            observed_ns: 1_700_000_000_223_456_789,
            stream: Stream::Stderr,
            severity: Some(3),
            body: b"disk \"full\"\n".to_vec(),
            resource: vec![("container.name".into(), "web".into())],
            attributes: vec![
                ("code".into(), Value::Int(507)),
                ("ratio".into(), Value::Float(f64::NAN)),
            ],
            ..LogRecord::default()
        };
        let mut out = Vec::new();
        encode(&record, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "{\"time\":\"2023-11-14T22:13:20.123456789Z\",\"observed_time\":\"2023-11-14T22:13:20.223456789Z\",\
             \"stream\":\"stderr\",\"severity\":\"error\",\"body\":\"disk \\\"full\\\"\\n\",\
             \"resource\":{\"container.name\":\"web\"},\"attributes\":{\"code\":507,\"ratio\":\"NaN\"}}\n"
        );
        let binary = LogRecord {
            body: vec![0xff, 0x00, b'a', b'b'],
            ..LogRecord::default()
        };
        let mut out = Vec::new();
        encode(&binary, &mut out);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("\"body_base64\":\"/wBhYg==\"")
        );
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut out = Vec::new();
            base64_into(input.as_bytes(), &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }
}
