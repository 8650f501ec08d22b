//! Zipkin v2 spans (the `/api/v2/spans` model, JSON and proto3) to weir's
//! records and back, without loss:
//!
//! - ids: `traceId` (16 or 32 hex; a 64-bit id is the 128-bit one with its
//!   high half zero, and goes back out as 16 hex), `id`, `parentId`;
//! - `timestamp` and `duration` (µs) are the record's time and the span's
//!   end; a span without a duration ends where it starts;
//! - `localEndpoint.serviceName` is the resource's `service.name`, its
//!   addresses and port `zipkin.local_endpoint.*`; the remote endpoint is
//!   `zipkin.remote_endpoint.*` attributes;
//! - annotations are events, tags are string attributes, `debug` and
//!   `shared` are `zipkin.debug` and `zipkin.shared`.

use serde::{Deserialize, Serialize};

use compact_str::format_compact;

use crate::record::{CompactString, LogRecord, SpanEvent, SpanFields, SpanKind, Stream, Value};

const LOCAL: &str = "zipkin.local_endpoint.";
const REMOTE: &str = "zipkin.remote_endpoint.";
const DEBUG: &str = "zipkin.debug";
const SHARED: &str = "zipkin.shared";

/// A Zipkin v2 span as JSON carries it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    pub trace_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_endpoint: Option<Endpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_endpoint: Option<Endpoint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tags: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Annotation {
    pub timestamp: u64,
    pub value: String,
}

/// Zipkin's proto3 form (`zipkin.proto3`), for `application/x-protobuf`.
pub mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListOfSpans {
        #[prost(message, repeated, tag = "1")]
        pub spans: Vec<Span>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub parent_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub id: Vec<u8>,
        #[prost(int32, tag = "4")]
        pub kind: i32,
        #[prost(string, tag = "5")]
        pub name: String,
        #[prost(fixed64, tag = "6")]
        pub timestamp: u64,
        #[prost(uint64, tag = "7")]
        pub duration: u64,
        #[prost(message, optional, tag = "8")]
        pub local_endpoint: Option<Endpoint>,
        #[prost(message, optional, tag = "9")]
        pub remote_endpoint: Option<Endpoint>,
        #[prost(message, repeated, tag = "10")]
        pub annotations: Vec<Annotation>,
        #[prost(btree_map = "string, string", tag = "11")]
        pub tags: std::collections::BTreeMap<String, String>,
        #[prost(bool, tag = "12")]
        pub debug: bool,
        #[prost(bool, tag = "13")]
        pub shared: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Endpoint {
        #[prost(string, tag = "1")]
        pub service_name: String,
        #[prost(bytes = "vec", tag = "2")]
        pub ipv4: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub ipv6: Vec<u8>,
        #[prost(int32, tag = "4")]
        pub port: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Annotation {
        #[prost(fixed64, tag = "1")]
        pub timestamp: u64,
        #[prost(string, tag = "2")]
        pub value: String,
    }
}

/// The proto3 message types as [`crate::source::decode_cost`] walks them.
pub mod decode_cost {
    use std::mem::size_of;

    use super::proto;
    use crate::source::decode_cost::{Count, Field, JsonObjects, MessageType};

    /// The structs Zipkin's JSON objects decode into: a span's, and
    /// inside it endpoints, annotations and the tags, a tree of strings
    /// whose every entry is a node's share and two strings.
    pub const JSON_OBJECTS: JsonObjects = JsonObjects {
        outer_depth: 1,
        outer_size: size_of::<super::Span>(),
        inner_size: 64 + size_of::<super::Endpoint>() + size_of::<super::Annotation>(),
        inner_member_size: 2 * size_of::<String>() + 64,
    };

    pub static LIST_OF_SPANS: MessageType = MessageType {
        name: "ListOfSpans",
        size: size_of::<proto::ListOfSpans>(),
        fields: &[Field(1, &SPAN, Count::Repeated)],
    };
    /// A span is decoded, then turned into the JSON form.
    static SPAN: MessageType = MessageType {
        name: "Span",
        size: size_of::<proto::Span>() + size_of::<super::Span>(),
        fields: &[
            Field(8, &ENDPOINT, Count::One),
            Field(9, &ENDPOINT, Count::One),
            Field(10, &ANNOTATION, Count::Repeated),
            Field(11, &TAG, Count::Repeated),
        ],
    };
    static ENDPOINT: MessageType = MessageType {
        name: "Endpoint",
        size: size_of::<proto::Endpoint>(),
        fields: &[],
    };
    static ANNOTATION: MessageType = MessageType {
        name: "Annotation",
        size: size_of::<proto::Annotation>(),
        fields: &[],
    };
    /// A map entry: two strings in a tree node.
    static TAG: MessageType = MessageType {
        name: "Span.TagsEntry",
        size: 2 * size_of::<String>() + 32,
        fields: &[],
    };
}

impl From<proto::Span> for Span {
    /// The proto3 form as the JSON one, ids as hex and addresses as text.
    fn from(span: proto::Span) -> Span {
        let hex = |bytes: &[u8]| crate::source::forward::auth::hex(bytes);
        let kinds = ["", "CLIENT", "SERVER", "PRODUCER", "CONSUMER"];
        let endpoint = |e: proto::Endpoint| Endpoint {
            service_name: Some(e.service_name).filter(|s| !s.is_empty()),
            ipv4: <[u8; 4]>::try_from(e.ipv4.as_slice())
                .ok()
                .map(|a| std::net::Ipv4Addr::from(a).to_string()),
            ipv6: <[u8; 16]>::try_from(e.ipv6.as_slice())
                .ok()
                .map(|a| std::net::Ipv6Addr::from(a).to_string()),
            port: u16::try_from(e.port).ok().filter(|p| *p != 0),
        };
        Span {
            trace_id: hex(&span.trace_id),
            parent_id: Some(hex(&span.parent_id)).filter(|p| !p.is_empty()),
            id: hex(&span.id),
            kind: kinds
                .get(span.kind as usize)
                .filter(|k| !k.is_empty())
                .map(|k| (*k).to_owned()),
            name: Some(span.name).filter(|n| !n.is_empty()),
            timestamp: Some(span.timestamp).filter(|t| *t != 0),
            duration: Some(span.duration).filter(|d| *d != 0),
            local_endpoint: span.local_endpoint.map(endpoint),
            remote_endpoint: span.remote_endpoint.map(endpoint),
            annotations: span
                .annotations
                .into_iter()
                .map(|a| Annotation {
                    timestamp: a.timestamp,
                    value: a.value,
                })
                .collect(),
            tags: span.tags,
            debug: span.debug.then_some(true),
            shared: span.shared.then_some(true),
        }
    }
}

/// Hex of `N` bytes, or of `N / 2` bytes as the low half of `N` (a 64-bit
/// trace id).
pub fn parse_id<const N: usize>(hex: &str) -> Option<[u8; N]> {
    let digits = hex.len();
    if !(digits == N * 2 || (N == 16 && digits == 16)) {
        return None;
    }
    let mut id = [0u8; N];
    let start = N - digits / 2;
    for (i, pair) in hex.as_bytes().chunks_exact(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        id[start + i] = (digit(pair[0])? << 4 | digit(pair[1])?) as u8;
    }
    Some(id)
}

/// A span as a record observed at `observed_ns`; the error names the field
/// that is wrong.
pub fn to_record(span: Span, observed_ns: i64) -> Result<LogRecord, String> {
    let trace_id = parse_id::<16>(&span.trace_id)
        .ok_or_else(|| format!("traceId {:?}: expected 16 or 32 hex digits", span.trace_id))?;
    let span_id = parse_id::<8>(&span.id)
        .ok_or_else(|| format!("id {:?}: expected 16 hex digits", span.id))?;
    let parent_span_id = match &span.parent_id {
        Some(parent) => Some(
            parse_id::<8>(parent)
                .ok_or_else(|| format!("parentId {parent:?}: expected 16 hex digits"))?,
        ),
        None => None,
    };
    let kind = match span.kind.as_deref() {
        None => SpanKind::Unspecified,
        Some("CLIENT") => SpanKind::Client,
        Some("SERVER") => SpanKind::Server,
        Some("PRODUCER") => SpanKind::Producer,
        Some("CONSUMER") => SpanKind::Consumer,
        Some(other) => {
            return Err(format!(
                "kind {other:?}: expected CLIENT, SERVER, PRODUCER or CONSUMER"
            ));
        }
    };
    let micros = |us: u64| {
        i64::try_from(us)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000)
    };
    let start = span.timestamp.map_or(observed_ns, micros);
    let end = start.saturating_add(span.duration.map_or(0, micros));
    let mut resource = Vec::new();
    let mut attributes: Vec<(CompactString, Value)> = Vec::new();
    if let Some(local) = span.local_endpoint {
        if let Some(service) = local.service_name {
            resource.push(("service.name".into(), service.into()));
        }
        endpoint_fields(LOCAL, local.ipv4, local.ipv6, local.port, |k, v| {
            resource.push((k.into(), v.into()));
        });
    }
    if let Some(remote) = span.remote_endpoint {
        if let Some(service) = remote.service_name {
            attributes.push((
                format_compact!("{REMOTE}service_name"),
                Value::Str(service.into()),
            ));
        }
        endpoint_fields(REMOTE, remote.ipv4, remote.ipv6, remote.port, |k, v| {
            attributes.push((k.into(), Value::Str(v.into())));
        });
    }
    attributes.extend(
        span.tags
            .into_iter()
            .map(|(k, v)| (k.into(), Value::Str(v.into()))),
    );
    if span.debug == Some(true) {
        attributes.push((DEBUG.into(), Value::Bool(true)));
    }
    if span.shared == Some(true) {
        attributes.push((SHARED.into(), Value::Bool(true)));
    }
    Ok(LogRecord {
        time_ns: start,
        observed_ns,
        stream: Stream::Other,
        resource,
        attributes,
        trace_id: Some(trace_id),
        span_id: Some(span_id),
        span: Some(Box::new(SpanFields {
            name: span.name.unwrap_or_default(),
            parent_span_id,
            kind,
            end_ns: end,
            events: span
                .annotations
                .into_iter()
                .map(|a| SpanEvent {
                    time_ns: micros(a.timestamp),
                    name: a.value,
                    attributes: Vec::new(),
                })
                .collect(),
            ..SpanFields::default()
        })),
        ..LogRecord::default()
    })
}

fn endpoint_fields(
    prefix: &str,
    ipv4: Option<String>,
    ipv6: Option<String>,
    port: Option<u16>,
    mut put: impl FnMut(String, String),
) {
    if let Some(ip) = ipv4 {
        put(format!("{prefix}ipv4"), ip);
    }
    if let Some(ip) = ipv6 {
        put(format!("{prefix}ipv6"), ip);
    }
    if let Some(port) = port {
        put(format!("{prefix}port"), port.to_string());
    }
}

/// A record that is a span as a Zipkin v2 span; None for a log record.
pub fn from_record(record: &LogRecord) -> Option<Span> {
    let span = record.span.as_ref()?;
    let hex = crate::source::forward::auth::hex;
    let trace_id = record.trace_id?;
    let trace_id = if trace_id[..8] == [0; 8] {
        hex(&trace_id[8..])
    } else {
        hex(&trace_id)
    };
    let micros = |ns: i64| (ns.max(0) / 1000) as u64;
    let resource = |key: &str| record.resource(key).map(str::to_owned);
    let attribute = |key: &str| {
        record.attributes.iter().find_map(|(k, v)| match v {
            Value::Str(s) if k == key => Some(s.to_string()),
            _ => None,
        })
    };
    let flag = |key: &str| {
        record
            .attributes
            .iter()
            .any(|(k, v)| k == key && *v == Value::Bool(true))
            .then_some(true)
    };
    let endpoint =
        |service: Option<String>, prefix: &str, text: &dyn Fn(&str) -> Option<String>| {
            let endpoint = Endpoint {
                service_name: service,
                ipv4: text(&format!("{prefix}ipv4")),
                ipv6: text(&format!("{prefix}ipv6")),
                port: text(&format!("{prefix}port")).and_then(|p| p.parse().ok()),
            };
            (endpoint != Endpoint::default()).then_some(endpoint)
        };
    let duration = micros(span.end_ns).saturating_sub(micros(record.time_ns));
    Some(Span {
        trace_id,
        parent_id: span.parent_span_id.map(|p| hex(&p)),
        id: hex(&record.span_id?),
        kind: match span.kind {
            SpanKind::Client => Some("CLIENT"),
            SpanKind::Server => Some("SERVER"),
            SpanKind::Producer => Some("PRODUCER"),
            SpanKind::Consumer => Some("CONSUMER"),
            SpanKind::Unspecified | SpanKind::Internal => None,
        }
        .map(str::to_owned),
        name: Some(span.name.clone()).filter(|n| !n.is_empty()),
        timestamp: Some(micros(record.time_ns)),
        duration: (duration > 0).then_some(duration),
        local_endpoint: endpoint(resource("service.name"), LOCAL, &|k| resource(k)),
        remote_endpoint: endpoint(attribute(&format!("{REMOTE}service_name")), REMOTE, &|k| {
            attribute(k)
        }),
        annotations: span
            .events
            .iter()
            .map(|e| Annotation {
                timestamp: micros(e.time_ns),
                value: e.name.clone(),
            })
            .collect(),
        tags: record
            .attributes
            .iter()
            .filter(|(k, _)| !k.starts_with("zipkin.") && !k.starts_with("otel."))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        debug: flag(DEBUG),
        shared: flag(SHARED),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Zipkin v2 API documentation, and a second span
    /// with a 64-bit trace id, shared, debug and a remote endpoint.
    const SPANS: &str = r#"[
      {"traceId":"5982fe77008310cc80f1da5e10147517","id":"bd7a977555f6b982","name":"get /api",
       "timestamp":1556604172355737,"duration":1431,"kind":"SERVER",
       "localEndpoint":{"serviceName":"frontend","ipv4":"192.168.99.1","port":3306},
       "tags":{"http.method":"GET","http.path":"/api"}},
      {"traceId":"80f1da5e10147517","parentId":"bd7a977555f6b982","id":"be2d01e33cc78d97",
       "name":"get","timestamp":1556604172355800,"duration":1000,"kind":"CLIENT","shared":true,"debug":true,
       "localEndpoint":{"serviceName":"frontend"},
       "remoteEndpoint":{"serviceName":"backend","ipv6":"2001:db8::c001","port":9000},
       "annotations":[{"timestamp":1556604172355900,"value":"wire send"}],"tags":{"error":"timeout"}}
    ]"#;

    #[test]
    fn spans_come_back_out_as_they_went_in() {
        let spans: Vec<Span> = serde_json::from_str(SPANS).unwrap();
        for span in &spans {
            let record = to_record(span.clone(), 1).unwrap();
            assert_eq!(from_record(&record).as_ref(), Some(span));
        }
        let record = to_record(spans[1].clone(), 1).unwrap();
        assert_eq!(
            record.trace_id.unwrap()[8..],
            [0x80, 0xf1, 0xda, 0x5e, 0x10, 0x14, 0x75, 0x17]
        );
        assert_eq!(record.resource("service.name"), Some("frontend"));
        let fields = record.span.unwrap();
        assert_eq!(fields.kind, SpanKind::Client);
        assert_eq!(fields.end_ns - record.time_ns, 1_000_000);
        assert_eq!(fields.events[0].name, "wire send");
    }

    #[test]
    fn bad_ids_and_kinds_are_named() {
        let span = |trace: &str, id: &str, kind: &str| Span {
            trace_id: trace.into(),
            id: id.into(),
            kind: Some(kind.into()),
            ..Span::default()
        };
        let good = "5982fe77008310cc80f1da5e10147517";
        assert!(
            to_record(span("xyz", "bd7a977555f6b982", "SERVER"), 0)
                .unwrap_err()
                .starts_with("traceId \"xyz\"")
        );
        assert!(
            to_record(span(good, "bd7a", "SERVER"), 0)
                .unwrap_err()
                .starts_with("id \"bd7a\"")
        );
        assert!(
            to_record(span(good, "bd7a977555f6b982", "SIDEWAYS"), 0)
                .unwrap_err()
                .starts_with("kind \"SIDEWAYS\"")
        );
    }
}
