//! A run of lost lines that the log has not been told about yet, and the
//! marker record that tells it. The drop policy and the ring keep one each;
//! a marker names what was lost, when, why, and the limit that caused it.

use std::time::Duration;

use crate::format::Timestamp;
use crate::stats::Counts;

/// Lines lost since the last marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LossRun {
    since: Timestamp,
    until: Timestamp,
    lost: Counts,
    /// When the run began (the last marker ended the previous one).
    began: Timestamp,
}

impl LossRun {
    /// A run whose first loss happened at `time`.
    pub fn new(time: Timestamp) -> LossRun {
        LossRun {
            since: time,
            until: time,
            lost: Counts::default(),
            began: time,
        }
    }

    /// Adds `lost`, which happened at `time`.
    pub fn record(&mut self, lost: Counts, time: Timestamp) {
        self.until = time;
        self.lost.merge(lost);
    }

    /// The run has gone unmarked for at least `interval` by `now`.
    pub fn overdue(&self, now: Timestamp, interval: Duration) -> bool {
        now.as_nanos() - self.began.as_nanos() >= interval.as_nanos() as i128
    }

    /// `weir: dropped N lines (B bytes) from T1 to T2: CAUSE (LIMIT)`.
    pub fn marker(&self, cause: &str, limit: &str) -> String {
        format!(
            "weir: dropped {} lines ({} bytes) from {} to {}: {cause} ({limit})",
            self.lost.lines, self.lost.bytes, self.since, self.until
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_lines_bytes_period_cause_and_limit() {
        let at = |secs| Timestamp { secs, nanos: 0 };
        let mut run = LossRun::new(at(0));
        run.record(
            Counts {
                bytes: 100,
                lines: 1,
            },
            at(0),
        );
        run.record(
            Counts {
                bytes: 50,
                lines: 1,
            },
            at(3),
        );
        assert!(!run.overdue(at(9), Duration::from_secs(10)));
        assert!(run.overdue(at(10), Duration::from_secs(10)));
        assert_eq!(
            run.marker("rate limit", "container 1KiB/s"),
            "weir: dropped 2 lines (150 bytes) from 1970-01-01T00:00:00.000000000Z to \
             1970-01-01T00:00:03.000000000Z: rate limit (container 1KiB/s)"
        );
    }
}
