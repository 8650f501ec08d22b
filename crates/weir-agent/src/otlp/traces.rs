//! OTLP spans to weir's records and back. A span's start is the record's
//! time, its ids the record's, its resource and attributes the record's;
//! the rest is the record's [`SpanFields`]. Nothing OTLP carries is lost
//! but the dropped-item counts.

use super::common::{attributes_of, group_for, id, key_values, resource_of, scope_attributes};
use super::proto;
use crate::record::{
    CompactString, LogRecord, SpanEvent, SpanFields, SpanKind, SpanLink, SpanStatus, Stream,
};

/// The spans of an export request, observed at `observed_ns`. A span
/// without a valid trace or span id is left out and counted in the second
/// value, for the partial-success answer.
pub fn to_records(
    request: proto::ExportTraceServiceRequest,
    observed_ns: i64,
) -> (Vec<LogRecord>, usize) {
    let mut records = Vec::new();
    let mut rejected = 0;
    for resource_spans in request.resource_spans {
        let resource = resource_of(resource_spans.resource);
        for scope_spans in resource_spans.scope_spans {
            let scope = scope_attributes(scope_spans.scope.as_ref());
            for span in scope_spans.spans {
                match to_record(span, &resource, &scope, observed_ns) {
                    Some(record) => records.push(record),
                    None => rejected += 1,
                }
            }
        }
    }
    (records, rejected)
}

fn to_record(
    span: proto::Span,
    resource: &[(CompactString, CompactString)],
    scope: &[(CompactString, crate::record::Value)],
    observed_ns: i64,
) -> Option<LogRecord> {
    let trace_id = id(&span.trace_id)?;
    let span_id = id(&span.span_id)?;
    let nanos = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut attributes = scope.to_vec();
    attributes.extend(attributes_of(span.attributes));
    let status = span.status.unwrap_or_default();
    Some(LogRecord {
        time_ns: nanos(span.start_time_unix_nano),
        observed_ns,
        stream: Stream::Other,
        severity: None,
        body: Vec::new(),
        resource: resource.to_vec(),
        attributes,
        trace_id: Some(trace_id),
        span_id: Some(span_id),
        partial: false,
        span: Some(Box::new(SpanFields {
            name: span.name,
            parent_span_id: id(&span.parent_span_id),
            kind: SpanKind::from_code(span.kind),
            end_ns: nanos(span.end_time_unix_nano),
            status: SpanStatus {
                code: status.code.clamp(0, 2) as u8,
                message: status.message,
            },
            trace_state: span.trace_state,
            flags: span.flags,
            events: span
                .events
                .into_iter()
                .map(|event| SpanEvent {
                    time_ns: nanos(event.time_unix_nano),
                    name: event.name,
                    attributes: attributes_of(event.attributes).collect(),
                })
                .collect(),
            links: span
                .links
                .into_iter()
                .filter_map(|link| {
                    Some(SpanLink {
                        trace_id: id(&link.trace_id)?,
                        span_id: id(&link.span_id)?,
                        trace_state: link.trace_state,
                        attributes: attributes_of(link.attributes).collect(),
                    })
                })
                .collect(),
        })),
    })
}

/// An export request for the spans among `records`, grouped by resource
/// and scope, in order within each.
pub fn to_request<'a>(
    records: impl IntoIterator<Item = &'a LogRecord>,
) -> proto::ExportTraceServiceRequest {
    let mut request = proto::ExportTraceServiceRequest::default();
    for record in records {
        let Some(span) = &record.span else {
            continue;
        };
        let scope = group_for(
            &mut request.resource_spans,
            record,
            |r| r.resource.as_ref(),
            |r| &mut r.scope_spans,
            |s| s.scope.as_ref(),
            |resource| proto::ResourceSpans {
                resource: Some(resource),
                ..Default::default()
            },
            |scope| proto::ScopeSpans {
                scope: Some(scope),
                ..Default::default()
            },
        );
        let nanos = |n: i64| n.max(0) as u64;
        scope.spans.push(proto::Span {
            trace_id: record.trace_id.map(|id| id.to_vec()).unwrap_or_default(),
            span_id: record.span_id.map(|id| id.to_vec()).unwrap_or_default(),
            trace_state: span.trace_state.clone(),
            parent_span_id: span
                .parent_span_id
                .map(|id| id.to_vec())
                .unwrap_or_default(),
            flags: span.flags,
            name: span.name.clone(),
            kind: span.kind.code(),
            start_time_unix_nano: nanos(record.time_ns),
            end_time_unix_nano: nanos(span.end_ns),
            attributes: key_values(&record.attributes),
            events: span
                .events
                .iter()
                .map(|event| proto::SpanEvent {
                    time_unix_nano: nanos(event.time_ns),
                    name: event.name.clone(),
                    attributes: key_values(&event.attributes),
                    dropped_attributes_count: 0,
                })
                .collect(),
            links: span
                .links
                .iter()
                .map(|link| proto::SpanLink {
                    trace_id: link.trace_id.to_vec(),
                    span_id: link.span_id.to_vec(),
                    trace_state: link.trace_state.clone(),
                    attributes: key_values(&link.attributes),
                    ..Default::default()
                })
                .collect(),
            status: (span.status.code != 0 || !span.status.message.is_empty()).then(|| {
                proto::Status {
                    message: span.status.message.clone(),
                    code: i32::from(span.status.code),
                }
            }),
            ..Default::default()
        });
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::proto::{AnyValue, KeyValue, any_value};

    fn attribute(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
        }
    }

    #[test]
    fn a_trace_request_comes_back_out_as_it_went_in() {
        let request = proto::ExportTraceServiceRequest {
            resource_spans: vec![proto::ResourceSpans {
                resource: Some(proto::Resource {
                    attributes: vec![attribute(
                        "service.name",
                        any_value::Value::StringValue("cart".into()),
                    )],
                    dropped_attributes_count: 0,
                }),
                scope_spans: vec![proto::ScopeSpans {
                    scope: Some(proto::InstrumentationScope {
                        name: "tracer".into(),
                        ..Default::default()
                    }),
                    spans: vec![proto::Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        parent_span_id: vec![3; 8],
                        trace_state: "k=v".into(),
                        flags: 1,
                        name: "GET /cart".into(),
                        kind: 2,
                        start_time_unix_nano: 1_700_000_000_000_000_000,
                        end_time_unix_nano: 1_700_000_000_250_000_000,
                        attributes: vec![attribute("http.status", any_value::Value::IntValue(500))],
                        events: vec![proto::SpanEvent {
                            time_unix_nano: 1_700_000_000_100_000_000,
                            name: "retry".into(),
                            attributes: vec![attribute("n", any_value::Value::IntValue(1))],
                            dropped_attributes_count: 0,
                        }],
                        links: vec![proto::SpanLink {
                            trace_id: vec![4; 16],
                            span_id: vec![5; 8],
                            ..Default::default()
                        }],
                        status: Some(proto::Status {
                            message: "boom".into(),
                            code: 2,
                        }),
                        ..Default::default()
                    }],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let (records, rejected) = to_records(request.clone(), 7);
        assert_eq!(rejected, 0);
        let span = records[0].span.as_ref().unwrap();
        assert_eq!(span.name, "GET /cart");
        assert_eq!(span.kind, SpanKind::Server);
        assert_eq!(span.parent_span_id, Some([3; 8]));
        assert_eq!(to_request(&records), request);
    }

    #[test]
    fn a_span_without_ids_is_rejected_and_counted() {
        let request = proto::ExportTraceServiceRequest {
            resource_spans: vec![proto::ResourceSpans {
                scope_spans: vec![proto::ScopeSpans {
                    spans: vec![proto::Span::default()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let (records, rejected) = to_records(request, 0);
        assert!(records.is_empty());
        assert_eq!(rejected, 1);
    }
}
