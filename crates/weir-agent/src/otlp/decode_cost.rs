//! OTLP's message types as [`decode_cost`] walks them: which fields hold
//! which messages, and what each takes once decoded.

use std::mem::size_of;

use super::proto;
use crate::source::decode_cost::{Count, Field, JsonObjects, MessageType};

/// The structs OTLP/JSON objects decode into: a request's, resource's,
/// scope's and record's or span's are at most 4 deep; below them
/// attributes, values, events, links and statuses.
pub const JSON_OBJECTS: JsonObjects = JsonObjects {
    outer_depth: 4,
    outer_size: max(
        max(size_of::<proto::Span>(), size_of::<proto::LogRecord>()),
        max(
            size_of::<proto::ResourceLogs>(),
            size_of::<proto::ResourceSpans>(),
        ),
    ),
    inner_size: max(
        max(size_of::<proto::SpanLink>(), size_of::<proto::SpanEvent>()),
        max(size_of::<proto::KeyValue>(), size_of::<proto::Status>()),
    ),
    inner_member_size: 0,
};

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

pub static LOGS_REQUEST: MessageType = MessageType {
    name: "ExportLogsServiceRequest",
    size: size_of::<proto::ExportLogsServiceRequest>(),
    fields: &[Field(1, &RESOURCE_LOGS, Count::Repeated)],
};
static RESOURCE_LOGS: MessageType = MessageType {
    name: "ResourceLogs",
    size: size_of::<proto::ResourceLogs>(),
    fields: &[
        Field(1, &RESOURCE, Count::One),
        Field(2, &SCOPE_LOGS, Count::Repeated),
    ],
};
static SCOPE_LOGS: MessageType = MessageType {
    name: "ScopeLogs",
    size: size_of::<proto::ScopeLogs>(),
    fields: &[
        Field(1, &SCOPE, Count::One),
        Field(2, &LOG_RECORD, Count::Repeated),
    ],
};
static LOG_RECORD: MessageType = MessageType {
    name: "LogRecord",
    size: size_of::<proto::LogRecord>(),
    fields: &[
        Field(5, &ANY_VALUE, Count::One),
        Field(6, &KEY_VALUE, Count::Repeated),
    ],
};

pub static TRACES_REQUEST: MessageType = MessageType {
    name: "ExportTraceServiceRequest",
    size: size_of::<proto::ExportTraceServiceRequest>(),
    fields: &[Field(1, &RESOURCE_SPANS, Count::Repeated)],
};
static RESOURCE_SPANS: MessageType = MessageType {
    name: "ResourceSpans",
    size: size_of::<proto::ResourceSpans>(),
    fields: &[
        Field(1, &RESOURCE, Count::One),
        Field(2, &SCOPE_SPANS, Count::Repeated),
    ],
};
static SCOPE_SPANS: MessageType = MessageType {
    name: "ScopeSpans",
    size: size_of::<proto::ScopeSpans>(),
    fields: &[
        Field(1, &SCOPE, Count::One),
        Field(2, &SPAN, Count::Repeated),
    ],
};
static SPAN: MessageType = MessageType {
    name: "Span",
    size: size_of::<proto::Span>(),
    fields: &[
        Field(9, &KEY_VALUE, Count::Repeated),
        Field(11, &EVENT, Count::Repeated),
        Field(13, &LINK, Count::Repeated),
        Field(15, &STATUS, Count::One),
    ],
};
static EVENT: MessageType = MessageType {
    name: "Span.Event",
    size: size_of::<proto::SpanEvent>(),
    fields: &[Field(3, &KEY_VALUE, Count::Repeated)],
};
static LINK: MessageType = MessageType {
    name: "Span.Link",
    size: size_of::<proto::SpanLink>(),
    fields: &[Field(4, &KEY_VALUE, Count::Repeated)],
};
static STATUS: MessageType = MessageType {
    name: "Status",
    size: size_of::<proto::Status>(),
    fields: &[],
};

static RESOURCE: MessageType = MessageType {
    name: "Resource",
    size: size_of::<proto::Resource>(),
    fields: &[Field(1, &KEY_VALUE, Count::Repeated)],
};
static SCOPE: MessageType = MessageType {
    name: "InstrumentationScope",
    size: size_of::<proto::InstrumentationScope>(),
    fields: &[Field(3, &KEY_VALUE, Count::Repeated)],
};
static KEY_VALUE: MessageType = MessageType {
    name: "KeyValue",
    size: size_of::<proto::KeyValue>(),
    fields: &[Field(2, &ANY_VALUE, Count::One)],
};
static ANY_VALUE: MessageType = MessageType {
    name: "AnyValue",
    size: size_of::<proto::AnyValue>(),
    fields: &[
        Field(5, &ARRAY_VALUE, Count::One),
        Field(6, &KEY_VALUE_LIST, Count::One),
    ],
};
static ARRAY_VALUE: MessageType = MessageType {
    name: "ArrayValue",
    size: size_of::<proto::ArrayValue>(),
    fields: &[Field(1, &ANY_VALUE, Count::Repeated)],
};
static KEY_VALUE_LIST: MessageType = MessageType {
    name: "KeyValueList",
    size: size_of::<proto::KeyValueList>(),
    fields: &[Field(1, &KEY_VALUE, Count::Repeated)],
};

#[cfg(test)]
mod tests {
    use prost::Message;

    use crate::source::decode_cost;

    use super::*;

    fn key_value(key: &str) -> proto::KeyValue {
        proto::KeyValue {
            key: key.into(),
            value: Some(proto::AnyValue {
                value: Some(proto::any_value::Value::ArrayValue(proto::ArrayValue {
                    values: vec![proto::AnyValue::default(); 3],
                })),
            }),
        }
    }

    #[test]
    fn every_message_of_a_request_is_counted() {
        let request = proto::ExportTraceServiceRequest {
            resource_spans: vec![proto::ResourceSpans {
                resource: Some(proto::Resource {
                    attributes: vec![key_value("service.name")],
                    ..Default::default()
                }),
                scope_spans: vec![proto::ScopeSpans {
                    spans: vec![
                        proto::Span {
                            name: "a".into(),
                            attributes: vec![key_value("k")],
                            events: vec![proto::SpanEvent::default()],
                            status: Some(proto::Status::default()),
                            ..Default::default()
                        };
                        2
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let body = request.encode_to_vec();
        let twice = |messages: &[(usize, usize)]| -> usize {
            messages.iter().map(|(n, size)| 2 * n * size).sum()
        };
        // Each attribute's value holds an array of three empty values: an
        // empty message is still a field on the wire, and so counted. A
        // resource, an attribute's value, its array and a status are
        // inside their parent, and cost nothing of their own.
        let expected = body.len()
            + twice(&[
                (1, size_of::<proto::ResourceSpans>()),
                (1, size_of::<proto::ScopeSpans>()),
                (2, size_of::<proto::Span>()),
                (3, size_of::<proto::KeyValue>()),
                (9, size_of::<proto::AnyValue>()),
                (2, size_of::<proto::SpanEvent>()),
            ]);
        assert_eq!(decode_cost::protobuf(&body, &TRACES_REQUEST), Ok(expected));
    }
}
