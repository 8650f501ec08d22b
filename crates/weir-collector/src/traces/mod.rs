//! What the trace queries compute over stored spans, whatever the store.

pub mod dependencies;

use weir_agent::record::{LogRecord, Value};

/// The service a span calls: Zipkin's remote endpoint, or OpenTelemetry's
/// `peer.service`; "" if it names none.
pub fn remote_service(span: &LogRecord) -> &str {
    let attribute = |key: &str| {
        span.attributes.iter().find_map(|(k, v)| match v {
            Value::Str(s) if k == key => Some(s.as_str()),
            _ => None,
        })
    };
    attribute("zipkin.remote_endpoint.service_name")
        .or_else(|| attribute("peer.service"))
        .unwrap_or("")
}

/// Whether a span failed: an error status (OpenTelemetry), or an `error`
/// tag (Zipkin's convention).
pub fn is_error(span: &LogRecord) -> bool {
    span.span.as_ref().is_some_and(|f| f.status.code == 2)
        || span.attributes.iter().any(|(k, _)| k == "error")
}
