//! Transforms between sources and sinks. Each takes the records of one
//! read and changes, keeps or drops them; the record's body is kept as it
//! was unless a transform is told to replace it.

pub mod expr;
mod parse;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use self::expr::{Expr, severity_of};
use crate::metrics::Tally;
use crate::record::{CompactString, LogRecord, Value};

/// One configured transform.
#[derive(Debug, Clone)]
pub enum Transform {
    /// Parse the body as a JSON object into attributes.
    Json { body_from: Option<String> },
    /// Parse `key=value` pairs in the body into attributes.
    Logfmt { body_from: Option<String> },
    /// Set the severity from an attribute, or from a pattern's first group.
    Severity(SeveritySource),
    /// Add and remove attributes (or `resource.KEY`).
    Fields {
        add: Vec<(String, String)>,
        remove: Vec<String>,
    },
    /// Keep only the records the condition holds for.
    Filter(Expr),
    /// At most `limit` records per `window` for each value of `key`.
    Throttle {
        key: expr::Field,
        limit: u64,
        window: Duration,
    },
}

#[derive(Debug, Clone)]
pub enum SeveritySource {
    Attribute(String),
    Pattern(regex::Regex),
}

/// What a transform did, for /metrics.
#[derive(Debug, Default)]
pub struct TransformMetrics {
    pub records_in: AtomicU64,
    /// Bodies that were not in the format parsed (kept as they were).
    pub unparsed: Tally,
    /// Dropped by a filter: not wanted.
    pub filtered: Tally,
    /// Dropped by a throttle: over its limit.
    pub throttled: Tally,
}

/// A transform with the state it keeps between reads.
#[derive(Debug)]
pub struct Stage {
    transform: Transform,
    /// Throttle windows: key → (window start, records passed in it).
    windows: HashMap<String, (Instant, u64)>,
}

/// Keys a throttle remembers at most; the oldest windows are forgotten
/// beyond it, so a key with unbounded values cannot grow memory forever.
const MAX_THROTTLE_KEYS: usize = 10_000;

impl Stage {
    pub fn new(transform: Transform) -> Stage {
        Stage {
            transform,
            windows: HashMap::new(),
        }
    }

    /// Applies the transform to `records` in place.
    pub fn apply(&mut self, records: &mut Vec<LogRecord>, metrics: &TransformMetrics) {
        metrics
            .records_in
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        match &self.transform {
            Transform::Json { body_from } => {
                for record in records.iter_mut() {
                    if !parse::json_into(record, body_from.as_deref()) {
                        metrics.unparsed.add(1, record.body.len() as u64);
                    }
                }
            }
            Transform::Logfmt { body_from } => {
                for record in records.iter_mut() {
                    if !parse::logfmt_into(record, body_from.as_deref()) {
                        metrics.unparsed.add(1, record.body.len() as u64);
                    }
                }
            }
            Transform::Severity(source) => {
                for record in records.iter_mut() {
                    let found = match source {
                        SeveritySource::Attribute(key) => record
                            .attributes
                            .iter()
                            .find(|(k, _)| k == key)
                            .and_then(|(_, v)| severity_of(&v.to_string())),
                        SeveritySource::Pattern(pattern) => {
                            let body = String::from_utf8_lossy(&record.body);
                            pattern
                                .captures(&body)
                                .and_then(|c| c.get(1).or_else(|| c.get(0)))
                                .and_then(|m| severity_of(m.as_str()))
                        }
                    };
                    if found.is_some() {
                        record.severity = found;
                    }
                }
            }
            Transform::Fields { add, remove } => {
                for record in records.iter_mut() {
                    for key in remove {
                        match key.strip_prefix("resource.") {
                            Some(key) => record.resource.retain(|(k, _)| k != key),
                            None => record.attributes.retain(|(k, _)| k != key),
                        }
                    }
                    for (key, value) in add {
                        match key.strip_prefix("resource.") {
                            Some(key) => set(&mut record.resource, key, value.as_str().into()),
                            None => set(
                                &mut record.attributes,
                                key,
                                Value::Str(value.as_str().into()),
                            ),
                        }
                    }
                }
            }
            Transform::Filter(condition) => {
                records.retain(|record| {
                    let keep = condition.matches(record);
                    if !keep {
                        metrics.filtered.add(1, record.body.len() as u64);
                    }
                    keep
                });
            }
            Transform::Throttle { key, limit, window } => {
                let now = Instant::now();
                let (key, limit, window) = (key.clone(), *limit, *window);
                let windows = &mut self.windows;
                records.retain(|record| {
                    let value = key_of(&key, record);
                    if windows.len() >= MAX_THROTTLE_KEYS && !windows.contains_key(&value) {
                        windows.retain(|_, (start, _)| now.duration_since(*start) < window);
                    }
                    let (start, count) = windows.entry(value).or_insert((now, 0));
                    if now.duration_since(*start) >= window {
                        *start = now;
                        *count = 0;
                    }
                    *count += 1;
                    let keep = *count <= limit;
                    if !keep {
                        metrics.throttled.add(1, record.body.len() as u64);
                    }
                    keep
                });
            }
        }
    }
}

fn set<V>(pairs: &mut Vec<(CompactString, V)>, key: &str, value: V) {
    match pairs.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => pairs.push((key.into(), value)),
    }
}

/// The value of `field` in `record`, as text (empty when absent).
pub fn key_of(field: &expr::Field, record: &LogRecord) -> String {
    use expr::Field;
    match field {
        Field::Body => String::from_utf8_lossy(&record.body).into_owned(),
        Field::Stream => record.stream.as_str().to_owned(),
        Field::Severity => record.severity.map(|s| s.to_string()).unwrap_or_default(),
        Field::Partial => record.partial.to_string(),
        Field::Attribute(key) => record
            .attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.to_string())
            .unwrap_or_default(),
        Field::Resource(key) => record.resource(key).unwrap_or_default().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(bodies: &[&str]) -> Vec<LogRecord> {
        bodies
            .iter()
            .map(|b| LogRecord {
                body: b.as_bytes().to_vec(),
                ..LogRecord::default()
            })
            .collect()
    }

    #[test]
    fn json_then_severity_then_filter() {
        let metrics = TransformMetrics::default();
        let mut batch = records(&[
            r#"{"level":"error","msg":"disk full","code":507}"#,
            r#"{"level":"info","msg":"ok"}"#,
            "not json",
        ]);
        Stage::new(Transform::Json { body_from: None }).apply(&mut batch, &metrics);
        assert_eq!(metrics.unparsed.get().0, 1);
        assert_eq!(
            batch[0].body, br#"{"level":"error","msg":"disk full","code":507}"#,
            "the body is kept"
        );
        assert!(
            batch[0]
                .attributes
                .contains(&("code".into(), Value::Int(507)))
        );
        Stage::new(Transform::Severity(SeveritySource::Attribute(
            "level".into(),
        )))
        .apply(&mut batch, &metrics);
        assert_eq!(batch[0].severity, Some(3));
        assert_eq!(batch[1].severity, Some(6));
        Stage::new(Transform::Filter(Expr::parse("severity <= 4").unwrap()))
            .apply(&mut batch, &metrics);
        assert_eq!(batch.len(), 1);
        assert_eq!(metrics.filtered.get().0, 2);
    }

    #[test]
    fn severity_from_a_pattern_and_fields_added_and_removed() {
        let metrics = TransformMetrics::default();
        let mut batch = records(&["2026-01-01 WARN low disk", "plain"]);
        let pattern = regex::Regex::new(r"\b(WARN|ERROR|INFO)\b").unwrap();
        Stage::new(Transform::Severity(SeveritySource::Pattern(pattern)))
            .apply(&mut batch, &metrics);
        assert_eq!(batch[0].severity, Some(4));
        assert_eq!(batch[1].severity, None);
        batch[0]
            .attributes
            .push(("password".into(), Value::Str("x".into())));
        Stage::new(Transform::Fields {
            add: vec![
                ("env".into(), "prod".into()),
                ("resource.node".into(), "n1".into()),
            ],
            remove: vec!["password".into()],
        })
        .apply(&mut batch, &metrics);
        assert_eq!(
            batch[0].attributes,
            vec![("env".into(), Value::Str("prod".into()))]
        );
        assert_eq!(batch[0].resource("node"), Some("n1"));
    }

    #[test]
    fn a_throttle_passes_its_limit_per_key_per_window() {
        let metrics = TransformMetrics::default();
        let mut stage = Stage::new(Transform::Throttle {
            key: expr::Field::Body,
            limit: 2,
            window: Duration::from_secs(3600),
        });
        let mut batch = records(&["a", "a", "a", "b", "a", "b"]);
        stage.apply(&mut batch, &metrics);
        let kept: Vec<&[u8]> = batch.iter().map(|r| r.body.as_slice()).collect();
        assert_eq!(kept, [&b"a"[..], b"a", b"b", b"b"]);
        assert_eq!(metrics.throttled.get().0, 2);
    }
}
