//! OTLP log records to weir's and back.
//!
//! Resource attributes become the record's resource (as strings); the
//! scope's name and version, the event name and the OTLP severity number
//! and text are kept as `otel.*` attributes, so a record read from OTLP
//! goes out to OTLP as it came. The severity number also gives the RFC 5424
//! severity: TRACE and DEBUG are debug (7), INFO info (6), WARN warning
//! (4), ERROR error (3), FATAL critical (2).

use super::common::{
    EVENT_NAME, SEVERITY_NUMBER, SEVERITY_TEXT, attributes_of, group_for, id, json_of, key_values,
    resource_of, scope_attributes, text_attribute,
};
use super::proto::{self, AnyValue, any_value};
use crate::record::{CompactString, LogRecord, Stream, Value};

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
        let resource = resource_of(resource_logs.resource);
        for scope_logs in resource_logs.scope_logs {
            let scope = scope_attributes(scope_logs.scope.as_ref());
            for log in scope_logs.log_records {
                records.push(to_record(log, &resource, &scope, observed_ns));
            }
        }
    }
    records
}

fn to_record(
    log: proto::LogRecord,
    resource: &[(CompactString, CompactString)],
    scope: &[(CompactString, Value)],
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
        attributes.push((SEVERITY_TEXT.into(), Value::Str(log.severity_text.into())));
    }
    if !log.event_name.is_empty() {
        attributes.push((EVENT_NAME.into(), Value::Str(log.event_name.into())));
    }
    attributes.extend(attributes_of(log.attributes));
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
        span: None,
    }
}

/// An export request for the log records among `records` (spans are
/// left to [`super::traces`]), grouped by resource and scope, in order
/// within each.
pub fn to_request<'a>(
    records: impl IntoIterator<Item = &'a LogRecord>,
) -> proto::ExportLogsServiceRequest {
    let mut request = proto::ExportLogsServiceRequest::default();
    for record in records.into_iter().filter(|r| r.span.is_none()) {
        let scope = group_for(
            &mut request.resource_logs,
            record,
            |r| r.resource.as_ref(),
            |r| &mut r.scope_logs,
            |s| s.scope.as_ref(),
            |resource| proto::ResourceLogs {
                resource: Some(resource),
                ..Default::default()
            },
            |scope| proto::ScopeLogs {
                scope: Some(scope),
                ..Default::default()
            },
        );
        let text = |key| text_attribute(&record.attributes, key);
        let severity_number = match record.attributes.iter().find(|(k, _)| k == SEVERITY_NUMBER) {
            Some((_, Value::Int(n))) => i32::try_from(*n).unwrap_or(0),
            _ => record.severity.map_or(0, severity_to_otlp),
        };
        let body = match std::str::from_utf8(&record.body) {
            Ok(text) => any_value::Value::StringValue(text.to_owned()),
            Err(_) => any_value::Value::BytesValue(record.body.clone()),
        };
        scope.log_records.push(proto::LogRecord {
            time_unix_nano: record.time_ns.max(0) as u64,
            observed_time_unix_nano: record.observed_ns.max(0) as u64,
            severity_number,
            severity_text: text(SEVERITY_TEXT),
            body: Some(AnyValue { value: Some(body) }),
            attributes: key_values(&record.attributes),
            trace_id: record.trace_id.map(|id| id.to_vec()).unwrap_or_default(),
            span_id: record.span_id.map(|id| id.to_vec()).unwrap_or_default(),
            event_name: text(EVENT_NAME),
            ..Default::default()
        });
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::proto::KeyValue;

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
