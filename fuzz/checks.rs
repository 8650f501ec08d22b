//! The checks of the protocol fuzz targets, shared with the normal test
//! suite, which replays every input kept in `fuzz/regressions/TARGET` (the
//! minimised corpus and any input that ever crashed) through them.
#![allow(dead_code)]

use prost::Message;
use weir_agent::otlp::{self, logs, proto, traces};
use weir_agent::record::Value;
use weir_agent::source::decode_cost::{self, MessageType};
use weir_agent::source::forward::auth::Handshake;
use weir_agent::source::forward::message;
use weir_agent::source::forward::msgpack::{ReadError, Skipper, read, skip};
use weir_agent::source::syslog::framing::Framer;
use weir_agent::source::syslog::parse::parse;
use weir_agent::zipkin::{self, Span};

/// The largest syslog message the syslog check frames.
const MAX: usize = 256;

/// Whatever arrives on a syslog socket: framed as a TCP stream (split at a
/// point the input chooses) and parsed as messages of both RFCs. No panic;
/// no framed message over the maximum; and a message that does not parse
/// keeps every byte in its body.
pub fn syslog(input: &[u8]) {
    let split = input
        .first()
        .map_or(0, |b| usize::from(*b))
        .min(input.len());
    let mut framer = Framer::new(MAX);
    let mut messages = Vec::new();
    for part in [&input[..split], &input[split..]] {
        if framer
            .push(part, |m, _cut| {
                assert!(m.len() <= MAX, "a framed message is at most the maximum");
                messages.push(m.to_vec());
            })
            .is_err()
        {
            break;
        }
    }
    framer.finish(|m, _| messages.push(m.to_vec()));
    messages.push(input.to_vec());
    for message in &messages {
        let record = parse(message, 1_795_287_600_000_000_000);
        let failed = record
            .attributes
            .iter()
            .any(|(k, v)| k == "syslog.parse_error" && matches!(v, Value::Str(_)));
        if failed {
            let trimmed = message
                .iter()
                .rposition(|b| !matches!(b, b'\n' | b'\r' | b'\0'))
                .map_or(&message[..0], |end| &message[..=end]);
            assert_eq!(
                record.body, trimmed,
                "a message that does not parse is kept whole"
            );
        }
        assert!(record.severity.is_none_or(|s| s <= 7));
    }
}

/// Whatever a Forward client sends: read as MessagePack values one after
/// another (as a connection does), each decoded as a message of any mode
/// and, before the first, as a handshake PING. No panic; `skip` and `read`
/// agree on every value's length; no compressed message grows past its
/// bound.
pub fn forward(input: &[u8]) {
    // Fed a few bytes at a time, as a connection reads, one skipper finds
    // the end (or the error) of each value in turn that the whole input
    // gives.
    let mut skipper = Skipper::default();
    let mut start = 0;
    loop {
        let rest = &input[start..];
        let mut end = 0;
        let pieced = loop {
            end = (end + 7).min(rest.len());
            match skipper.skip(&rest[..end]) {
                Err(ReadError::Incomplete) if end < rest.len() => continue,
                other => break other,
            }
        };
        assert_eq!(pieced, skip(rest));
        match pieced {
            Ok(len) if len > 0 => {
                // What the source holds for reading it is what read makes.
                let (value, _) = read(&rest[..len]).expect("skip found a whole value");
                assert_eq!(skipper.values(), values_in(&value));
                start += len;
            }
            _ => break,
        }
    }
    let handshake = Handshake::new("key", "host");
    let mut rest = input;
    let mut first = true;
    while let Ok(len) = skip(rest) {
        let (value, read_len) = read(&rest[..len]).expect("skip found a whole value");
        assert_eq!(read_len, len);
        if first {
            let _ = handshake.answer(&value);
            first = false;
        }
        if let Ok(decoded) = message::decode(&value, 1 << 16) {
            let body: usize = decoded.records.iter().map(|r| r.body.len()).sum();
            assert!(body <= (1 << 16) + input.len() * 64);
        }
        rest = &rest[len..];
    }
}

/// The values a read value holds, itself included: each key and value of a
/// map counts.
fn values_in(value: &weir_agent::source::forward::msgpack::Value<'_>) -> u64 {
    use weir_agent::source::forward::msgpack::Value;
    1 + match value {
        Value::Array(items) => items.iter().map(values_in).sum(),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| values_in(k) + values_in(v))
            .sum(),
        _ => 0,
    }
}

/// Whatever an OTLP/HTTP client posts to /v1/logs or /v1/traces, read as
/// protobuf and as JSON: no panic, and whatever decodes maps to records and
/// back to a request without loss of the record count (spans without valid
/// ids are counted as rejected instead).
pub fn otlp(input: &[u8]) {
    decode_cost::json(input, otlp::decode_cost::JSON_OBJECTS);
    let logs = proto::ExportLogsServiceRequest::decode(input).ok();
    let expected = logs.as_ref().map(logs_cost);
    let again = logs.map(|m| m.encode_to_vec());
    costs_what_decodes(input, &otlp::decode_cost::LOGS_REQUEST, again, expected);
    let traces = proto::ExportTraceServiceRequest::decode(input).ok();
    let expected = traces.as_ref().map(traces_cost);
    let again = traces.map(|m| m.encode_to_vec());
    costs_what_decodes(input, &otlp::decode_cost::TRACES_REQUEST, again, expected);
    let decoded = [
        proto::ExportLogsServiceRequest::decode(input).ok(),
        serde_json::from_slice::<proto::ExportLogsServiceRequest>(input).ok(),
    ];
    for request in decoded.into_iter().flatten() {
        let count: usize = request
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum();
        let records = logs::to_records(request, 0);
        assert_eq!(records.len(), count);
        let again = logs::to_request(&records);
        let back: usize = again
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum();
        assert_eq!(back, count);
    }
    let decoded = [
        proto::ExportTraceServiceRequest::decode(input).ok(),
        serde_json::from_slice::<proto::ExportTraceServiceRequest>(input).ok(),
    ];
    for request in decoded.into_iter().flatten() {
        let count: usize = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        let (records, rejected) = traces::to_records(request, 0);
        assert_eq!(records.len() + rejected, count);
        let again = traces::to_request(&records);
        let back: usize = again
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        assert_eq!(back, records.len());
    }
}

/// The count of what a body would take decoded, made before decoding it:
/// no panic; it refuses no body that is exactly how prost encodes what it
/// decodes from it (prost is lenient past that: it reads a map entry
/// whatever the wire type says); and for such a body it is exactly the
/// body and `expected`, counted from the decoded message, when given.
fn costs_what_decodes(
    input: &[u8],
    root: &MessageType,
    encoded_again: Option<Vec<u8>>,
    expected: Option<usize>,
) {
    let well_formed = encoded_again.as_deref() == Some(input);
    match decode_cost::protobuf(input, root) {
        Ok(cost) if well_formed => {
            if let Some(expected) = expected {
                assert_eq!(cost, input.len() + expected, "the count of a {}", root.name);
            }
        }
        Ok(_) => {}
        Err(what) => assert!(
            !well_formed,
            "the count refuses a well-formed {}: {what}",
            root.name
        ),
    }
}

/// What [`decode_cost::protobuf`] counts for the messages of a decoded
/// request: twice the size of each element of a repeated field.
fn repeated<T>(n: usize) -> usize {
    2 * n * size_of::<T>()
}

fn attributes_cost(list: &[proto::KeyValue]) -> usize {
    repeated::<proto::KeyValue>(list.len())
        + list
            .iter()
            .filter_map(|kv| kv.value.as_ref())
            .map(any_value_cost)
            .sum::<usize>()
}

fn any_value_cost(value: &proto::AnyValue) -> usize {
    use proto::any_value::Value;
    match &value.value {
        Some(Value::ArrayValue(array)) => {
            repeated::<proto::AnyValue>(array.values.len())
                + array.values.iter().map(any_value_cost).sum::<usize>()
        }
        Some(Value::KvlistValue(list)) => attributes_cost(&list.values),
        _ => 0,
    }
}

fn resource_and_scope_cost(
    resource: Option<&proto::Resource>,
    scope: Option<&proto::InstrumentationScope>,
) -> usize {
    resource.map_or(0, |r| attributes_cost(&r.attributes))
        + scope.map_or(0, |s| attributes_cost(&s.attributes))
}

fn logs_cost(request: &proto::ExportLogsServiceRequest) -> usize {
    let mut cost = repeated::<proto::ResourceLogs>(request.resource_logs.len());
    for resource in &request.resource_logs {
        cost += resource_and_scope_cost(resource.resource.as_ref(), None);
        cost += repeated::<proto::ScopeLogs>(resource.scope_logs.len());
        for scope in &resource.scope_logs {
            cost += resource_and_scope_cost(None, scope.scope.as_ref());
            cost += repeated::<proto::LogRecord>(scope.log_records.len());
            for record in &scope.log_records {
                cost += record.body.as_ref().map_or(0, any_value_cost);
                cost += attributes_cost(&record.attributes);
            }
        }
    }
    cost
}

fn traces_cost(request: &proto::ExportTraceServiceRequest) -> usize {
    let mut cost = repeated::<proto::ResourceSpans>(request.resource_spans.len());
    for resource in &request.resource_spans {
        cost += resource_and_scope_cost(resource.resource.as_ref(), None);
        cost += repeated::<proto::ScopeSpans>(resource.scope_spans.len());
        for scope in &resource.scope_spans {
            cost += resource_and_scope_cost(None, scope.scope.as_ref());
            cost += repeated::<proto::Span>(scope.spans.len());
            for span in &scope.spans {
                cost += attributes_cost(&span.attributes);
                cost += repeated::<proto::SpanEvent>(span.events.len());
                cost += span
                    .events
                    .iter()
                    .map(|e| attributes_cost(&e.attributes))
                    .sum::<usize>();
                cost += repeated::<proto::SpanLink>(span.links.len());
                cost += span
                    .links
                    .iter()
                    .map(|l| attributes_cost(&l.attributes))
                    .sum::<usize>();
            }
        }
    }
    cost
}

/// Whatever a Zipkin reporter posts to /api/v2/spans, as JSON and as
/// proto3: no panic; every span that maps to a record maps back to a span
/// with the same ids.
pub fn zipkin(input: &[u8]) {
    decode_cost::json(input, zipkin::decode_cost::JSON_OBJECTS);
    let list = zipkin::proto::ListOfSpans::decode(input).ok();
    let again = list.map(|m| m.encode_to_vec());
    costs_what_decodes(input, &zipkin::decode_cost::LIST_OF_SPANS, again, None);
    let mut spans: Vec<Span> = serde_json::from_slice(input).unwrap_or_default();
    if let Ok(list) = zipkin::proto::ListOfSpans::decode(input) {
        spans.extend(list.spans.into_iter().map(Span::from));
    }
    for span in spans {
        if let Ok(record) = zipkin::to_record(span.clone(), 0) {
            let back = zipkin::from_record(&record).expect("a span record");
            assert_eq!(back.id, span.id.to_lowercase());
        }
    }
}
