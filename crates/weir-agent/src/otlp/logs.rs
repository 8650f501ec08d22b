//! OTLP log records to weir's and back.
//!
//! Resource attributes become the record's resource (as strings); the
//! scope's name and version, the event name and the OTLP severity number
//! and text are kept as `otel.*` attributes, so a record read from OTLP
//! goes out to OTLP as it came. The severity number also gives the RFC 5424
//! severity: TRACE and DEBUG are debug (7), INFO info (6), WARN warning
//! (4), ERROR error (3), FATAL critical (2).

use super::proto::{self, AnyValue, KeyValue, any_value};
use crate::record::{LogRecord, Stream, Value};

const SCOPE_NAME: &str = "otel.scope.name";
const SCOPE_VERSION: &str = "otel.scope.version";
const SEVERITY_NUMBER: &str = "otel.severity_number";
const SEVERITY_TEXT: &str = "otel.severity_text";
const EVENT_NAME: &str = "otel.event_name";

/// RFC 5424 severity for an OTLP severity number (1–24).
pub fn severity_from_otlp(number: i32) -> Option<u8> {
    Some(match number {
        1..=8 => 7,
        9..=12 => 6,
        13..=16 => 4,
        17..=20 => 3,
        21..=24 => 2,
        _ => return None,
    })
}

/// The OTLP severity number for an RFC 5424 severity.
pub fn severity_to_otlp(severity: u8) -> i32 {
    match severity {
        7 => 5,
        6 => 9,
        5 => 10,
        4 => 13,
        3 => 17,
        2 => 21,
        1 => 22,
        _ => 23,
    }
}

/// The records of an export request, observed at `observed_ns`.
pub fn to_records(request: proto::ExportLogsServiceRequest, observed_ns: i64) -> Vec<LogRecord> {
    let mut records = Vec::new();
    for resource_logs in request.resource_logs {
        let resource: Vec<(String, String)> = resource_logs
            .resource
            .map(|r| r.attributes)
            .unwrap_or_default()
            .into_iter()
            .map(|kv| (kv.key, kv.value.as_ref().map(text_of).unwrap_or_default()))
            .collect();
        for scope_logs in resource_logs.scope_logs {
            let mut scope = Vec::new();
            if let Some(s) = &scope_logs.scope {
                if !s.name.is_empty() {
                    scope.push((SCOPE_NAME.to_owned(), Value::Str(s.name.clone())));
                }
                if !s.version.is_empty() {
                    scope.push((SCOPE_VERSION.to_owned(), Value::Str(s.version.clone())));
                }
            }
            for log in scope_logs.log_records {
                records.push(to_record(log, &resource, &scope, observed_ns));
            }
        }
    }
    records
}

fn to_record(
    log: proto::LogRecord,
    resource: &[(String, String)],
    scope: &[(String, Value)],
    observed_ns: i64,
) -> LogRecord {
    let nanos = |n: u64| (n > 0).then(|| i64::try_from(n).unwrap_or(i64::MAX));
    let observed = nanos(log.observed_time_unix_nano).unwrap_or(observed_ns);
    let mut attributes = scope.to_vec();
    if log.severity_number != 0 {
        attributes.push((
            SEVERITY_NUMBER.into(),
            Value::Int(log.severity_number.into()),
        ));
    }
    if !log.severity_text.is_empty() {
        attributes.push((SEVERITY_TEXT.into(), Value::Str(log.severity_text)));
    }
    if !log.event_name.is_empty() {
        attributes.push((EVENT_NAME.into(), Value::Str(log.event_name)));
    }
    attributes.extend(log.attributes.into_iter().map(|kv| {
        (
            kv.key,
            kv.value
                .as_ref()
                .map_or(Value::Str(String::new()), value_of),
        )
    }));
    let body = match log.body.and_then(|b| b.value) {
        Some(any_value::Value::StringValue(s)) => s.into_bytes(),
        Some(any_value::Value::BytesValue(b)) => b,
        Some(other) => {
            let mut json = String::new();
            json_of(&other, &mut json);
            json.into_bytes()
        }
        None => Vec::new(),
    };
    LogRecord {
        time_ns: nanos(log.time_unix_nano).unwrap_or(observed),
        observed_ns: observed,
        stream: Stream::Other,
        severity: severity_from_otlp(log.severity_number),
        body,
        resource: resource.to_vec(),
        attributes,
        trace_id: id(&log.trace_id),
        span_id: id(&log.span_id),
        partial: false,
    }
}

/// An id of the right length that is not all zeros (OTLP's "none").
fn id<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    let id: [u8; N] = bytes.try_into().ok()?;
    (id != [0; N]).then_some(id)
}

/// A value as an attribute: scalars as they are, the rest as JSON text.
fn value_of(any: &AnyValue) -> Value {
    match &any.value {
        Some(any_value::Value::StringValue(s)) => Value::Str(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(n)) => Value::Int(*n),
        Some(any_value::Value::DoubleValue(x)) => Value::Float(*x),
        Some(other) => {
            let mut json = String::new();
            json_of(other, &mut json);
            Value::Str(json)
        }
        None => Value::Str(String::new()),
    }
}

/// A value as text, for the resource.
fn text_of(any: &AnyValue) -> String {
    match value_of(any) {
        Value::Str(s) => s,
        other => other.to_string(),
    }
}

fn json_of(value: &any_value::Value, out: &mut String) {
    use std::fmt::Write as _;
    let quoted = |s: &str| serde_json::Value::from(s).to_string();
    match value {
        any_value::Value::StringValue(s) => out.push_str(&quoted(s)),
        any_value::Value::BoolValue(b) => out.push_str(if *b { "true" } else { "false" }),
        any_value::Value::IntValue(n) => {
            let _ = write!(out, "{n}");
        }
        any_value::Value::DoubleValue(x) if x.is_finite() => {
            let _ = write!(out, "{x}");
        }
        any_value::Value::DoubleValue(x) => out.push_str(&quoted(&x.to_string())),
        any_value::Value::BytesValue(b) => {
            let mut encoded = Vec::new();
            crate::sink::ndjson::base64_into(b, &mut encoded);
            out.push_str(&quoted(&String::from_utf8_lossy(&encoded)));
        }
        any_value::Value::ArrayValue(array) => {
            out.push('[');
            for (i, item) in array.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match &item.value {
                    Some(v) => json_of(v, out),
                    None => out.push_str("null"),
                }
            }
            out.push(']');
        }
        any_value::Value::KvlistValue(list) => {
            out.push('{');
            for (i, kv) in list.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&quoted(&kv.key));
                out.push(':');
                match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(v) => json_of(v, out),
                    None => out.push_str("null"),
                }
            }
            out.push('}');
        }
    }
}

/// An export request for `records`: one resource entry per distinct
/// resource, one scope entry per scope within it, records in order.
pub fn to_request(records: &[LogRecord]) -> proto::ExportLogsServiceRequest {
    let mut request = proto::ExportLogsServiceRequest::default();
    for record in records {
        let resource_at = match request
            .resource_logs
            .iter()
            .position(|r| same_resource(r.resource.as_ref(), &record.resource))
        {
            Some(at) => at,
            None => {
                request.resource_logs.push(proto::ResourceLogs {
                    resource: Some(proto::Resource {
                        attributes: record
                            .resource
                            .iter()
                            .map(|(k, v)| key_value(k, &Value::Str(v.clone())))
                            .collect(),
                        dropped_attributes_count: 0,
                    }),
                    ..Default::default()
                });
                request.resource_logs.len() - 1
            }
        };
        let attribute = |key: &str| {
            record
                .attributes
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
        };
        let text = |key: &str| match attribute(key) {
            Some(Value::Str(s)) => s.clone(),
            _ => String::new(),
        };
        let (name, version) = (text(SCOPE_NAME), text(SCOPE_VERSION));
        let scopes = &mut request.resource_logs[resource_at].scope_logs;
        let scope_at = match scopes.iter().position(|s| {
            s.scope
                .as_ref()
                .map_or((String::new(), String::new()), |s| {
                    (s.name.clone(), s.version.clone())
                })
                == (name.clone(), version.clone())
        }) {
            Some(at) => at,
            None => {
                scopes.push(proto::ScopeLogs {
                    scope: Some(proto::InstrumentationScope {
                        name,
                        version,
                        ..Default::default()
                    }),
                    ..Default::default()
                });
                scopes.len() - 1
            }
        };
        let severity_number = match attribute(SEVERITY_NUMBER) {
            Some(Value::Int(n)) => i32::try_from(*n).unwrap_or(0),
            _ => record.severity.map_or(0, severity_to_otlp),
        };
        let body = match std::str::from_utf8(&record.body) {
            Ok(text) => any_value::Value::StringValue(text.to_owned()),
            Err(_) => any_value::Value::BytesValue(record.body.clone()),
        };
        scopes[scope_at].log_records.push(proto::LogRecord {
            time_unix_nano: record.time_ns.max(0) as u64,
            observed_time_unix_nano: record.observed_ns.max(0) as u64,
            severity_number,
            severity_text: text(SEVERITY_TEXT),
            body: Some(AnyValue { value: Some(body) }),
            attributes: record
                .attributes
                .iter()
                .filter(|(k, _)| !k.starts_with("otel."))
                .map(|(k, v)| key_value(k, v))
                .collect(),
            trace_id: record.trace_id.map(|id| id.to_vec()).unwrap_or_default(),
            span_id: record.span_id.map(|id| id.to_vec()).unwrap_or_default(),
            event_name: text(EVENT_NAME),
            ..Default::default()
        });
    }
    request
}

fn same_resource(resource: Option<&proto::Resource>, wanted: &[(String, String)]) -> bool {
    let attributes = resource
        .map(|r| r.attributes.as_slice())
        .unwrap_or_default();
    attributes.len() == wanted.len()
        && attributes.iter().zip(wanted).all(|(kv, (k, v))| {
            kv.key == *k
                && matches!(
                    kv.value.as_ref().and_then(|v| v.value.as_ref()),
                    Some(any_value::Value::StringValue(s)) if s == v
                )
        })
}

fn key_value(key: &str, value: &Value) -> KeyValue {
    let value = match value {
        Value::Str(s) => any_value::Value::StringValue(s.clone()),
        Value::Int(n) => any_value::Value::IntValue(*n),
        Value::Float(x) => any_value::Value::DoubleValue(*x),
        Value::Bool(b) => any_value::Value::BoolValue(*b),
    };
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(value: any_value::Value) -> Option<AnyValue> {
        Some(AnyValue { value: Some(value) })
    }

    #[test]
    fn a_request_comes_back_out_as_it_went_in() {
        let request = proto::ExportLogsServiceRequest {
            resource_logs: vec![proto::ResourceLogs {
                resource: Some(proto::Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: any(any_value::Value::StringValue("cart".into())),
                    }],
                    dropped_attributes_count: 0,
                }),
                scope_logs: vec![proto::ScopeLogs {
                    scope: Some(proto::InstrumentationScope {
                        name: "lib".into(),
                        version: "1.2".into(),
                        ..Default::default()
                    }),
                    log_records: vec![proto::LogRecord {
                        time_unix_nano: 1_700_000_000_000_000_001,
                        observed_time_unix_nano: 1_700_000_000_000_000_002,
                        severity_number: 18,
                        severity_text: "ERROR2".into(),
                        body: any(any_value::Value::StringValue("boom".into())),
                        attributes: vec![
                            KeyValue {
                                key: "n".into(),
                                value: any(any_value::Value::IntValue(-3)),
                            },
                            KeyValue {
                                key: "ok".into(),
                                value: any(any_value::Value::BoolValue(true)),
                            },
                        ],
                        trace_id: vec![7; 16],
                        span_id: vec![9; 8],
                        event_name: "checkout.failed".into(),
                        ..Default::default()
                    }],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let records = to_records(request.clone(), 5);
        assert_eq!(records.len(), 1);
        let record = &records[0];
        assert_eq!(record.severity, Some(3));
        assert_eq!(record.body, b"boom");
        assert_eq!(record.resource, [("service.name".into(), "cart".into())]);
        assert_eq!(record.trace_id, Some([7; 16]));
        assert_eq!(to_request(&records), request);
    }

    #[test]
    fn severities_map_to_the_nearest_rfc5424_level_and_back_into_the_band() {
        for number in 1..=24 {
            let severity = severity_from_otlp(number).unwrap();
            let back = severity_to_otlp(severity);
            assert_eq!(
                severity_from_otlp(back),
                Some(severity),
                "{number} → {severity} → {back}"
            );
        }
        assert_eq!(severity_from_otlp(0), None);
    }
}
