//! What the `monitor` source adds to the file source: whose each of
//! `weir run`'s logs is (from its `.meta.json` sidecar), and the gate's and
//! the disk's loss markers turned into loss records, with what was lost,
//! why and when as attributes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use weir_monitor::meta;

use crate::record::{CompactString, LogRecord, Value};

/// The resource of each live log, read from its sidecar once.
#[derive(Debug, Default)]
pub struct Owners {
    known: HashMap<PathBuf, Arc<Vec<(CompactString, CompactString)>>>,
}

impl Owners {
    /// Reads the sidecar again next time (a new `weir run` may write it).
    pub fn forget(&mut self, path: &Path) {
        self.known.remove(&meta::live_log_of(path));
    }

    /// The resource pairs for the records of `path` (a live or rotated log).
    pub fn resource_of(&mut self, path: &Path) -> Arc<Vec<(CompactString, CompactString)>> {
        let live = meta::live_log_of(path);
        if let Some(known) = self.known.get(&live) {
            return Arc::clone(known);
        }
        let mut resource = Vec::new();
        match meta::read(&live) {
            Ok(Some(owner)) => {
                resource.push(("container.name".into(), owner.name.into()));
                for (key, value) in owner.labels {
                    resource.push((format!("container.label.{key}").into(), value.into()));
                }
                resource.push((
                    "weir.monitor.pid".into(),
                    owner.monitor_pid.to_string().into(),
                ));
                if let Some(budget) = owner.budget {
                    resource.push(("weir.budget".into(), budget.to_string().into()));
                }
                if let Some(policy) = owner.policy {
                    resource.push(("weir.policy".into(), policy.into()));
                }
            }
            Ok(None) => {}
            Err(e) => eprintln!("weir: {e}; its records go without the container's name"),
        }
        let resource = Arc::new(resource);
        self.known.insert(live, Arc::clone(&resource));
        resource
    }
}

/// If `record` is one of weir's loss markers, says so in its attributes
/// (`weir.loss.reason`, `.lines`, `.bytes`, `.from`, `.to`) and gives it
/// the severity warning. The markers read:
///
/// - `weir: dropped N lines (B bytes) from T1 to T2: rate limit (…)`, or
///   `ring overflow (…)`;
/// - `weir: B bytes in N lines lost: disk full from T1 to T2`.
pub fn mark_loss(record: &mut LogRecord) {
    let Ok(text) = std::str::from_utf8(&record.body) else {
        return;
    };
    let Some(rest) = text.strip_prefix("weir: ") else {
        return;
    };
    let words: Vec<&str> = rest.split(' ').collect();
    let parsed = if words.first() == Some(&"dropped") {
        // dropped N lines (B bytes) from T1 to T2: CAUSE (LIMIT)
        (|| {
            let lines: i64 = words.get(1)?.parse().ok()?;
            let bytes: i64 = words.get(3)?.trim_start_matches('(').parse().ok()?;
            let from = *words.get(6)?;
            let to = words.get(8)?.trim_end_matches(':');
            let cause = rest.split_once(": ")?.1;
            let reason = if cause.starts_with("rate limit") {
                "rate_limit"
            } else if cause.starts_with("ring overflow") {
                "ring_overflow"
            } else {
                return None;
            };
            Some((reason, lines, bytes, from, to))
        })()
    } else {
        // B bytes in N lines lost: CAUSE from T1 to T2
        (|| {
            if words.get(1) != Some(&"bytes") || words.get(5) != Some(&"lost:") {
                return None;
            }
            let bytes: i64 = words.first()?.parse().ok()?;
            let lines: i64 = words.get(3)?.parse().ok()?;
            let n = words.len();
            (words.get(n - 4) == Some(&"from")).then_some(())?;
            Some(("disk", lines, bytes, words[n - 3], words[n - 1]))
        })()
    };
    let Some((reason, lines, bytes, from, to)) = parsed else {
        return;
    };
    record.severity = Some(4);
    record.attributes.extend([
        ("weir.loss.reason".into(), Value::Str(reason.into())),
        ("weir.loss.lines".into(), Value::Int(lines)),
        ("weir.loss.bytes".into(), Value::Int(bytes)),
        ("weir.loss.from".into(), Value::Str(from.into())),
        ("weir.loss.to".into(), Value::Str(to.into())),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(body: &str) -> LogRecord {
        let mut record = LogRecord {
            body: body.as_bytes().to_vec(),
            ..LogRecord::default()
        };
        mark_loss(&mut record);
        record
    }

    #[test]
    fn gate_and_disk_markers_become_loss_records() {
        let gate = marked(
            "weir: dropped 198940 lines (19894000 bytes) from 2026-11-21T15:19:09.641413380Z to \
             2026-11-21T15:19:09.675666660Z: rate limit (container 100KiB/s)",
        );
        assert_eq!(gate.severity, Some(4));
        assert_eq!(
            gate.attributes[..3],
            [
                ("weir.loss.reason".into(), Value::Str("rate_limit".into())),
                ("weir.loss.lines".into(), Value::Int(198940)),
                ("weir.loss.bytes".into(), Value::Int(19894000)),
            ]
        );
        assert_eq!(
            gate.attributes[4],
            (
                "weir.loss.to".into(),
                Value::Str("2026-11-21T15:19:09.675666660Z".into())
            )
        );
        let ring = marked(
            "weir: dropped 3 lines (300 bytes) from 2026-01-01T00:00:00Z to 2026-01-01T00:00:01Z: \
             ring overflow (ring 64KiB, container 100KiB/s)",
        );
        assert_eq!(ring.attributes[0].1, Value::Str("ring_overflow".into()));
        let disk = marked(
            "weir: 2210000 bytes in 22100 lines lost: disk full from 2026-11-21T14:32:23.1Z to \
             2026-11-21T14:32:24.6Z",
        );
        assert_eq!(disk.attributes[0].1, Value::Str("disk".into()));
        assert_eq!(disk.attributes[1].1, Value::Int(22100));
        assert_eq!(disk.attributes[2].1, Value::Int(2210000));
        for plain in ["weir: hello", "dropped 3 lines", "weir: dropped many lines"] {
            let record = marked(plain);
            assert!(
                record.attributes.is_empty() && record.severity.is_none(),
                "{plain}"
            );
        }
    }
}
