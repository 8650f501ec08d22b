//! What OTLP's logs and traces share: resources, scopes, attribute
//! values, ids.

use super::proto::{self, AnyValue, KeyValue, any_value};
use crate::record::{CompactString, LogRecord, Value};

pub const SCOPE_NAME: &str = "otel.scope.name";
pub const SCOPE_VERSION: &str = "otel.scope.version";
pub const SEVERITY_NUMBER: &str = "otel.severity_number";
pub const SEVERITY_TEXT: &str = "otel.severity_text";
pub const EVENT_NAME: &str = "otel.event_name";

/// The attributes in which weir keeps OTLP fields that a record has no
/// field of its own for; on export they go back to those fields.
const OWN: [&str; 5] = [
    SCOPE_NAME,
    SCOPE_VERSION,
    SEVERITY_NUMBER,
    SEVERITY_TEXT,
    EVENT_NAME,
];

/// Resource attributes as a record's resource (values as text).
pub fn resource_of(resource: Option<proto::Resource>) -> Vec<(CompactString, CompactString)> {
    resource
        .map(|r| r.attributes)
        .unwrap_or_default()
        .into_iter()
        .map(|kv| {
            let value = kv.value.as_ref().map(text_of).unwrap_or_default();
            (kv.key.into(), value)
        })
        .collect()
}

/// A scope's name and version as attributes.
pub fn scope_attributes(
    scope: Option<&proto::InstrumentationScope>,
) -> Vec<(CompactString, Value)> {
    let mut attributes = Vec::new();
    if let Some(s) = scope {
        if !s.name.is_empty() {
            attributes.push((SCOPE_NAME.into(), Value::Str(s.name.as_str().into())));
        }
        if !s.version.is_empty() {
            attributes.push((SCOPE_VERSION.into(), Value::Str(s.version.as_str().into())));
        }
    }
    attributes
}

/// OTLP attributes as a record's.
pub fn attributes_of(attributes: Vec<KeyValue>) -> impl Iterator<Item = (CompactString, Value)> {
    attributes.into_iter().map(|kv| {
        (
            kv.key.into(),
            kv.value
                .as_ref()
                .map_or(Value::Str(CompactString::default()), value_of),
        )
    })
}

/// A record's attributes as OTLP's, less the ones weir keeps OTLP's own
/// fields in ([`OWN`]); a sender's other `otel.*` attributes go as sent.
pub fn key_values(attributes: &[(CompactString, Value)]) -> Vec<KeyValue> {
    attributes
        .iter()
        .filter(|(k, _)| !OWN.contains(&k.as_str()))
        .map(|(k, v)| key_value(k, v))
        .collect()
}

/// The value of attribute `key` as text, or empty.
pub fn text_attribute(attributes: &[(CompactString, Value)], key: &str) -> String {
    match attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v) {
        Some(Value::Str(s)) => s.to_string(),
        _ => String::new(),
    }
}

/// Where in `groups` the records of `record`'s resource and scope go, made
/// with `new` if there are none yet: one resource entry per distinct
/// resource, one scope entry per scope within it.
pub fn group_for<'a, R, S>(
    groups: &'a mut Vec<R>,
    record: &LogRecord,
    resource: impl Fn(&R) -> Option<&proto::Resource>,
    scopes: impl Fn(&mut R) -> &mut Vec<S>,
    scope: impl Fn(&S) -> Option<&proto::InstrumentationScope>,
    new_resource: impl FnOnce(proto::Resource) -> R,
    new_scope: impl FnOnce(proto::InstrumentationScope) -> S,
) -> &'a mut S {
    let at = match groups
        .iter()
        .position(|r| same_resource(resource(r), &record.resource))
    {
        Some(at) => at,
        None => {
            groups.push(new_resource(proto::Resource {
                attributes: record
                    .resource
                    .iter()
                    .map(|(k, v)| key_value(k, &Value::Str(v.clone())))
                    .collect(),
                dropped_attributes_count: 0,
            }));
            groups.len() - 1
        }
    };
    let name = text_attribute(&record.attributes, SCOPE_NAME);
    let version = text_attribute(&record.attributes, SCOPE_VERSION);
    let list = scopes(&mut groups[at]);
    let at = match list.iter().position(|s| {
        scope(s).map_or((String::new(), String::new()), |s| {
            (s.name.clone(), s.version.clone())
        }) == (name.clone(), version.clone())
    }) {
        Some(at) => at,
        None => {
            list.push(new_scope(proto::InstrumentationScope {
                name,
                version,
                ..Default::default()
            }));
            list.len() - 1
        }
    };
    &mut list[at]
}

/// An id of the right length that is not all zeros (OTLP's "none").
pub fn id<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    let id: [u8; N] = bytes.try_into().ok()?;
    (id != [0; N]).then_some(id)
}

/// A value as an attribute: scalars as they are, the rest as JSON text.
fn value_of(any: &AnyValue) -> Value {
    match &any.value {
        Some(any_value::Value::StringValue(s)) => Value::Str(s.as_str().into()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(n)) => Value::Int(*n),
        Some(any_value::Value::DoubleValue(x)) => Value::Float(*x),
        Some(other) => {
            let mut json = String::new();
            json_of(other, &mut json);
            Value::Str(json.into())
        }
        None => Value::Str(CompactString::default()),
    }
}

/// A value as text, for the resource.
fn text_of(any: &AnyValue) -> CompactString {
    match value_of(any) {
        Value::Str(s) => s,
        other => other.to_string().into(),
    }
}

pub fn json_of(value: &any_value::Value, out: &mut String) {
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

fn same_resource(
    resource: Option<&proto::Resource>,
    wanted: &[(CompactString, CompactString)],
) -> bool {
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
        Value::Str(s) => any_value::Value::StringValue(s.to_string()),
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

    #[test]
    fn only_weirs_own_otel_attributes_stay_behind_on_export() {
        let attributes = [
            (SCOPE_NAME.into(), Value::Str("lib".into())),
            (SEVERITY_TEXT.into(), Value::Str("WARN".into())),
            ("otel.library.name".into(), Value::Str("kept".into())),
            ("user".into(), Value::Int(7)),
        ];
        let keys: Vec<String> = key_values(&attributes)
            .into_iter()
            .map(|kv| kv.key)
            .collect();
        assert_eq!(keys, ["otel.library.name", "user"]);
    }
}
