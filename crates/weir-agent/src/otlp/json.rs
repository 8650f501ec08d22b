//! The OTLP/JSON encodings of the fields protobuf carries as binary: ids as
//! hex (the spec's exception to proto3's base64), `bytesValue` as base64,
//! and 64-bit integers as decimal strings, with plain numbers accepted on
//! input as the spec allows.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serializer};

/// Trace and span ids: lowercase hex.
pub mod hex_bytes {
    use super::*;

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::source::forward::auth::hex(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() % 2 != 0 {
            return Err(de::Error::custom(format!("{text:?} is not hex")));
        }
        text.as_bytes()
            .chunks_exact(2)
            .map(|pair| {
                let digit = |c: u8| (c as char).to_digit(16);
                match (digit(pair[0]), digit(pair[1])) {
                    (Some(high), Some(low)) => Ok((high << 4 | low) as u8),
                    _ => Err(de::Error::custom(format!("{text:?} is not hex"))),
                }
            })
            .collect()
    }
}

/// `bytesValue`: standard base64.
pub mod base64_bytes {
    use super::*;

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let mut out = Vec::new();
        crate::sink::ndjson::base64_into(bytes, &mut out);
        s.serialize_str(&String::from_utf8_lossy(&out))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        decode_base64(&text).ok_or_else(|| de::Error::custom("bytesValue is not base64"))
    }

    fn decode_base64(text: &str) -> Option<Vec<u8>> {
        let value = |c: u8| -> Option<u32> {
            Some(match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' | b'-' => 62,
                b'/' | b'_' => 63,
                _ => return None,
            } as u32)
        };
        let digits = text.trim_end_matches('=').as_bytes();
        let mut out = Vec::with_capacity(digits.len() * 3 / 4);
        for group in digits.chunks(4) {
            if group.len() == 1 {
                return None;
            }
            let mut n = 0u32;
            for (i, c) in group.iter().enumerate() {
                n |= value(*c)? << (18 - 6 * i);
            }
            let bytes = n.to_be_bytes();
            out.extend_from_slice(&bytes[1..group.len()]);
        }
        Some(out)
    }
}

/// A number sent as a decimal string or as a JSON number.
struct Flexible<T>(std::marker::PhantomData<T>);

macro_rules! flexible_int {
    ($module:ident, $int:ty) => {
        pub mod $module {
            use super::*;

            pub fn serialize<S: Serializer>(n: &$int, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&n.to_string())
            }

            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<$int, D::Error> {
                d.deserialize_any(Flexible::<$int>(std::marker::PhantomData))
            }
        }

        impl<'de> Visitor<'de> for Flexible<$int> {
            type Value = $int;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(
                    "a ",
                    stringify!($int),
                    " as a number or a decimal string"
                ))
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<$int, E> {
                <$int>::try_from(n).map_err(|_| E::custom(format!("{n} is out of range")))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<$int, E> {
                <$int>::try_from(n).map_err(|_| E::custom(format!("{n} is out of range")))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<$int, E> {
                text.parse()
                    .map_err(|_| E::custom(format!("{text:?} is not a whole number")))
            }
        }
    };
}

flexible_int!(u64_string, u64);
flexible_int!(i64_string, i64);

/// An `AnyValue` object: the one key it has names the value's kind; keys
/// it does not know are passed over without being kept.
impl<'de> Deserialize<'de> for super::proto::AnyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(AnyValueVisitor)
    }
}

struct AnyValueVisitor;

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum AnyValueKey {
    StringValue,
    BoolValue,
    IntValue,
    DoubleValue,
    ArrayValue,
    KvlistValue,
    BytesValue,
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize)]
struct IntValue(#[serde(with = "i64_string")] i64);

#[derive(Deserialize)]
struct BytesValue(#[serde(with = "base64_bytes")] Vec<u8>);

impl<'de> Visitor<'de> for AnyValueVisitor {
    type Value = super::proto::AnyValue;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an AnyValue object, like {\"stringValue\": \"…\"}")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use super::proto::any_value::Value;
        // A member that is null is unset, as proto3's JSON has it; of two
        // set, the first stands.
        let mut value = None;
        while let Some(key) = map.next_key::<AnyValueKey>()? {
            let member = match key {
                AnyValueKey::StringValue => map.next_value::<Option<_>>()?.map(Value::StringValue),
                AnyValueKey::BoolValue => map.next_value::<Option<_>>()?.map(Value::BoolValue),
                AnyValueKey::IntValue => map
                    .next_value::<Option<IntValue>>()?
                    .map(|n| Value::IntValue(n.0)),
                AnyValueKey::DoubleValue => map.next_value::<Option<_>>()?.map(Value::DoubleValue),
                AnyValueKey::ArrayValue => map.next_value::<Option<_>>()?.map(Value::ArrayValue),
                AnyValueKey::KvlistValue => map.next_value::<Option<_>>()?.map(Value::KvlistValue),
                AnyValueKey::BytesValue => map
                    .next_value::<Option<BytesValue>>()?
                    .map(|b| Value::BytesValue(b.0)),
                AnyValueKey::Unknown => {
                    map.next_value::<de::IgnoredAny>()?;
                    None
                }
            };
            if value.is_none() {
                value = member;
            }
        }
        Ok(super::proto::AnyValue { value })
    }
}

#[cfg(test)]
mod tests {
    use super::super::proto::*;

    #[test]
    fn otlp_json_reads_as_the_spec_writes_it() {
        let text = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"cart"}}]},
            "scopeLogs":[{"scope":{"name":"lib"},"logRecords":[{"timeUnixNano":"1700000000000000001",
            "observedTimeUnixNano":1700000000000000002,"severityNumber":17,"severityText":"ERROR",
            "body":{"stringValue":"boom"},"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "attributes":[{"key":"n","value":{"intValue":"-3"}},{"key":"b","value":{"bytesValue":"aGk="}},
            {"key":"l","value":{"arrayValue":{"values":[{"doubleValue":1.5}]}}}]}]}]}]}"#;
        let request: ExportLogsServiceRequest = serde_json::from_str(text).unwrap();
        let record = &request.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(record.time_unix_nano, 1_700_000_000_000_000_001);
        assert_eq!(record.observed_time_unix_nano, 1_700_000_000_000_000_002);
        assert_eq!(record.severity_number, 17);
        assert_eq!(record.trace_id.len(), 16);
        assert_eq!(
            record.span_id,
            [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]
        );
        assert_eq!(
            record.attributes[0].value.as_ref().unwrap().value,
            Some(any_value::Value::IntValue(-3))
        );
        assert_eq!(
            record.attributes[1].value.as_ref().unwrap().value,
            Some(any_value::Value::BytesValue(b"hi".to_vec()))
        );
        // Every kind of value, and keys no value has passed over.
        let values: Vec<AnyValue> = serde_json::from_str(
            r#"[{"boolValue":true,"junk":[[0,0,0],{"x":{}}]},{"kvlistValue":{"values":[{"key":"k","value":{}}]}},
                {},{"stringValue":"a","extra":null},{"stringValue":null},{"intValue":"7","boolValue":true}]"#,
        )
        .unwrap();
        assert_eq!(values[0].value, Some(any_value::Value::BoolValue(true)));
        let Some(any_value::Value::KvlistValue(list)) = &values[1].value else {
            panic!("{:?}", values[1].value)
        };
        assert_eq!(list.values[0].key, "k");
        assert_eq!(values[2].value, None);
        assert_eq!(
            values[3].value,
            Some(any_value::Value::StringValue("a".into()))
        );
        assert_eq!(values[4].value, None, "null is unset");
        assert_eq!(
            values[5].value,
            Some(any_value::Value::IntValue(7)),
            "the first stands"
        );
        assert!(serde_json::from_str::<AnyValue>("[1]").is_err());
        // And back: what serde writes, serde reads the same.
        let again: ExportLogsServiceRequest =
            serde_json::from_str(&serde_json::to_string(&request).unwrap()).unwrap();
        assert_eq!(again, request);
    }
}
