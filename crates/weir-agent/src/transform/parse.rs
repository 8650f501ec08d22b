//! Parsing a record's body into attributes: JSON objects and logfmt.

use crate::record::{LogRecord, Value};

/// Parses the body as a JSON object into attributes; with `body_from`, the
/// body becomes that field's text. False (record unchanged) if the body is
/// not a JSON object.
pub fn json_into(record: &mut LogRecord, body_from: Option<&str>) -> bool {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(&record.body) else {
        return false;
    };
    for (key, value) in fields {
        let value = match value {
            serde_json::Value::Null => continue,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Str(s.into()),
            nested => Value::Str(nested.to_string().into()),
        };
        record.attributes.push((key.into(), value));
    }
    replace_body(record, body_from);
    true
}

/// Parses `key=value key="quoted \" value" flag` pairs into attributes (a
/// bare key is `true`). False (record unchanged) if the body holds no pair
/// or a quote is not closed.
pub fn logfmt_into(record: &mut LogRecord, body_from: Option<&str>) -> bool {
    let text = String::from_utf8_lossy(&record.body).into_owned();
    let mut pairs = Vec::new();
    let mut rest = text.as_str();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let key_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        if key.is_empty() || key.contains('"') {
            return false;
        }
        rest = &rest[key_end..];
        let Some(after) = rest.strip_prefix('=') else {
            pairs.push((key.into(), Value::Bool(true)));
            continue;
        };
        rest = after;
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut closed = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        closed = Some(i + 1);
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, 't')) => value.push('\t'),
                        Some((_, c)) => value.push(c),
                        None => return false,
                    },
                    c => value.push(c),
                }
            }
            let Some(end) = closed else {
                return false;
            };
            rest = &quoted[end..];
            value
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let value = rest[..end].to_owned();
            rest = &rest[end..];
            value
        };
        pairs.push((key.into(), Value::Str(value.into())));
    }
    if pairs.is_empty() || pairs.iter().all(|(_, v)| *v == Value::Bool(true)) {
        return false;
    }
    record.attributes.extend(pairs);
    replace_body(record, body_from);
    true
}

fn replace_body(record: &mut LogRecord, body_from: Option<&str>) {
    let Some(key) = body_from else { return };
    if let Some((_, value)) = record.attributes.iter().find(|(k, _)| k == key) {
        record.body = value.to_string().into_bytes();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(body: &str, logfmt: bool) -> Option<LogRecord> {
        let mut record = LogRecord {
            body: body.as_bytes().to_vec(),
            ..LogRecord::default()
        };
        let ok = if logfmt {
            logfmt_into(&mut record, Some("msg"))
        } else {
            json_into(&mut record, Some("msg"))
        };
        ok.then_some(record)
    }

    #[test]
    fn logfmt_pairs_quotes_and_flags() {
        let record = parsed(
            r#"level=warn msg="disk \"almost\" full" took=12ms cached"#,
            true,
        )
        .unwrap();
        assert_eq!(
            record.attributes,
            vec![
                ("level".into(), Value::Str("warn".into())),
                ("msg".into(), Value::Str("disk \"almost\" full".into())),
                ("took".into(), Value::Str("12ms".into())),
                ("cached".into(), Value::Bool(true)),
            ]
        );
        assert_eq!(
            record.body, b"disk \"almost\" full",
            "body_from replaces the body"
        );
        assert!(parsed("just words here", true).is_none());
        assert!(parsed(r#"msg="never closed"#, true).is_none());
    }

    #[test]
    fn json_objects_only_with_nested_values_as_text() {
        let record = parsed(
            r#"{"msg":"hi","n":1.5,"tags":["a"],"ok":true,"none":null}"#,
            false,
        )
        .unwrap();
        assert_eq!(
            record.attributes,
            vec![
                ("msg".into(), Value::Str("hi".into())),
                ("n".into(), Value::Float(1.5)),
                ("tags".into(), Value::Str("[\"a\"]".into())),
                ("ok".into(), Value::Bool(true)),
            ]
        );
        assert!(parsed("[1,2]", false).is_none());
        assert!(parsed("{\"cut", false).is_none());
    }
}
