//! The gate applied to one stream of a monitored process.
//!
//! Both streams of a container draw from one shared bucket (the container's
//! budget). Under `block` the reader asks the gate how much it may read and
//! waits for the budget, so the writer waits in `write()`. Under `drop` every
//! line is admitted or dropped whole when it starts, and a marker record
//! states each run of drops when it ends, and at least every
//! `marker_interval` while it lasts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use weir_gate::bucket::monotonic_ns;
use weir_gate::{Budget, Policy, TokenBucket};

use crate::format::Timestamp;
use crate::framing::{Record, Tag};
use crate::loss::LossRun;
use crate::stats::{Counts, Dropped};

/// Smallest read worth waiting for under `block`, so a writer held back by
/// its budget is released in useful pieces rather than byte by byte.
const BLOCK_READ_QUANTUM: u64 = 4096;

/// What the monitor is told about the budget of the process it runs.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// The container's budget, both streams together.
    pub budget: Budget,
    /// Separate stdout and stderr budgets, used instead of `budget`.
    pub streams: Option<(Budget, Budget)>,
    pub policy: Policy,
    /// Longest time a run of drops goes unmarked in the log.
    pub marker_interval: Duration,
    /// The node budget this container shares with the others.
    pub node: Option<crate::node_share::NodeConfig>,
}

/// A bucket shared by the streams of one container (or one stream's own).
#[derive(Debug, Clone)]
pub struct SharedBucket {
    bucket: Arc<Mutex<Metered>>,
    /// What the budget belongs to, for markers: `container` or `stdout`.
    scope: &'static str,
}

impl SharedBucket {
    pub fn new(budget: Budget, scope: &'static str) -> SharedBucket {
        SharedBucket {
            bucket: Arc::new(Mutex::new(Metered {
                bucket: TokenBucket::new(budget, monotonic_ns()),
                configured: budget,
                passed: 0,
                dropped: 0,
                wanted_more: false,
            })),
            scope,
        }
    }

    /// Bytes passed so far, and whether output was held back or dropped since
    /// the last call: what the node share needs to know about demand.
    pub fn take_demand(&self) -> (u64, u64, bool) {
        let mut metered = self.lock();
        let wanted_more = std::mem::take(&mut metered.wanted_more);
        (metered.passed, metered.dropped, wanted_more)
    }

    /// Counts application bytes dropped against this budget.
    pub fn note_dropped(&self, bytes: u64) {
        let mut metered = self.lock();
        metered.dropped += bytes;
        metered.wanted_more = true;
    }

    /// The budget this bucket was configured with.
    pub fn configured(&self) -> Budget {
        self.lock().configured
    }

    /// Runs the bucket at `rate` from now on (the node share moved).
    /// The burst shrinks in proportion, so that containers joining the node
    /// together cannot each spend a whole node's burst at once.
    pub fn set_rate(&self, rate: f64) {
        let mut metered = self.lock();
        let configured = metered.configured;
        let fraction = (rate / configured.rate).min(1.0);
        let burst = ((configured.burst as f64 * fraction) as u64).max(4096.min(configured.burst));
        metered
            .bucket
            .set_budget(Budget { rate, burst }, monotonic_ns());
    }

    /// Output was held back: the container wants more than it gets.
    fn note_held_back(&self) {
        self.lock().wanted_more = true;
    }

    /// Admits `bytes` if the budget has room (see [`TokenBucket::try_admit`]).
    pub fn try_admit(&self, bytes: u64) -> bool {
        let mut metered = self.lock();
        let admitted = metered.bucket.try_admit(bytes, monotonic_ns());
        if admitted {
            metered.passed += bytes;
        } else {
            metered.wanted_more = true;
        }
        admitted
    }

    /// Takes `bytes` only if all of them are there now: a batch of many lines
    /// may not use the allowance an oversized single line gets.
    pub fn try_take(&self, bytes: u64) -> bool {
        let mut metered = self.lock();
        let now = monotonic_ns();
        if metered.bucket.available(now) < bytes as f64 {
            metered.wanted_more = true;
            return false;
        }
        metered.bucket.charge(bytes, now);
        metered.passed += bytes;
        true
    }

    /// Takes `bytes` whatever the balance (see [`TokenBucket::charge`]).
    pub fn charge(&self, bytes: u64) {
        let mut metered = self.lock();
        metered.bucket.charge(bytes, monotonic_ns());
        metered.passed += bytes;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Metered> {
        self.bucket.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `container 5MiB/s`, as markers name the budget.
    pub fn describe_budget(&self) -> String {
        self.with(|bucket, _| format!("{} {}", self.scope, bucket.budget().describe()))
    }

    /// How long until `bytes` may pass.
    pub fn wait_for(&self, bytes: u64) -> Duration {
        self.with(|bucket, now| bucket.wait_for(bytes, now))
    }

    fn with<R>(&self, f: impl FnOnce(&mut TokenBucket, u64) -> R) -> R {
        f(&mut self.lock().bucket, monotonic_ns())
    }
}

/// A bucket and what passed through it.
#[derive(Debug)]
struct Metered {
    bucket: TokenBucket,
    configured: Budget,
    passed: u64,
    /// Application bytes dropped (rate limit or ring overflow).
    dropped: u64,
    /// Output was held back or dropped since the node share last looked.
    wanted_more: bool,
}

/// Whether a record goes to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Pass,
    Drop,
}

/// What one frame of records took from and owes to the bucket.
#[derive(Debug, Default)]
struct Frame {
    /// The credit covers every byte of the frame and nothing awaits a
    /// marker: every record passes, unjudged.
    passes: bool,
    taken: u64,
    debt: u64,
    dropped: u64,
    burst: u64,
    full_bucket: bool,
}

/// The gate of one stream.
#[derive(Debug)]
pub struct StreamGate {
    bucket: SharedBucket,
    policy: Policy,
    marker_interval: Duration,
    /// A `P` record was seen and the line's `F` has not come yet.
    in_line: bool,
    /// The verdict for the line now open.
    line_admission: Admission,
    /// Drops the log has not been told about yet.
    run: Option<LossRun>,
    dropped: Dropped,
    /// Tokens taken for the frame being judged (see [`StreamGate::begin_frame`]).
    credit: u64,
    frame: Frame,
    /// The record just judged starts a line (markers may go before it).
    at_line_start: bool,
    /// Every new line is dropped (see [`StreamGate::refuse_new_lines`]).
    refusing: bool,
}

impl StreamGate {
    pub fn new(config: &GateConfig, bucket: SharedBucket) -> StreamGate {
        StreamGate {
            bucket,
            policy: config.policy,
            marker_interval: config.marker_interval,
            in_line: false,
            line_admission: Admission::Pass,
            run: None,
            dropped: Dropped::default(),
            credit: 0,
            frame: Frame::default(),
            at_line_start: true,
            refusing: false,
        }
    }

    /// Under `drop`: takes every token the budget holds, once per frame of
    /// records, so each line is judged against that credit without the
    /// bucket's lock or clock; [`StreamGate::end_frame`] returns what the
    /// frame did not use. Output over budget thus costs one lock per read,
    /// not one per line, and the writer is not slowed by its own drops.
    pub fn begin_frame(&mut self, frame_bytes: usize) {
        if self.policy != Policy::Drop {
            return;
        }
        let mut metered = self.bucket.lock();
        let now = monotonic_ns();
        let available = metered.bucket.available(now);
        let burst = metered.bucket.budget().burst;
        // No more than this frame can use, so the other stream sharing the
        // bucket is not starved meanwhile.
        let taken = (available.max(0.0).floor() as u64).min(frame_bytes as u64);
        metered.bucket.charge(taken, now);
        drop(metered);
        // The records of a frame carry at most its bytes, so the credit pays
        // for all of them, unless a line already being dropped goes on.
        let passes = taken == frame_bytes as u64
            && self.run.is_none()
            && !self.refusing
            && (!self.in_line || self.line_admission == Admission::Pass);
        self.frame = Frame {
            passes,
            taken,
            full_bucket: available >= burst as f64,
            burst,
            ..Frame::default()
        };
        self.credit = taken;
    }

    /// Settles the frame with the bucket: unused credit back, debt of lines
    /// larger than the credit charged, and what passed and dropped noted for
    /// the node share.
    pub fn end_frame(&mut self) {
        if self.policy != Policy::Drop {
            return;
        }
        let frame = std::mem::take(&mut self.frame);
        let unused = std::mem::take(&mut self.credit);
        let mut metered = self.bucket.lock();
        let now = monotonic_ns();
        metered.bucket.refund(unused, now);
        metered.bucket.charge(frame.debt, now);
        metered.passed += frame.taken - unused + frame.debt;
        metered.dropped += frame.dropped;
        metered.wanted_more |= frame.dropped > 0;
    }

    /// Whether records are admitted one line at a time (`drop`), rather than
    /// paid for by the read (`block`).
    #[inline]
    pub fn judges_lines(&self) -> bool {
        self.policy == Policy::Drop
    }

    /// Under `drop`: the frame begun passes whole, so its records need not
    /// be admitted one by one; the caller settles them with
    /// [`StreamGate::pass_whole_frame`] instead. While the budget is not hit
    /// this is every frame, and the gate costs nothing per line.
    pub fn frame_passes(&self) -> bool {
        self.frame.passes
    }

    /// Settles the records of a frame that passed whole: `bytes` of
    /// application output, the last line still `open`.
    pub fn pass_whole_frame(&mut self, bytes: u64, open: bool) {
        debug_assert!(self.frame.passes && bytes <= self.credit);
        self.credit = self.credit.saturating_sub(bytes);
        if bytes > 0 {
            self.in_line = open;
            self.line_admission = Admission::Pass;
        }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// What this gate dropped, by reason.
    pub fn dropped(&self) -> Dropped {
        self.dropped
    }

    /// Under `block`: how many bytes may be read now (at most `space`), or
    /// how long to wait before asking again.
    pub fn read_allowance(&self, space: usize) -> Result<usize, Duration> {
        let allowance = self.bucket.with(|bucket, now| {
            let quantum = BLOCK_READ_QUANTUM.min(bucket.budget().burst);
            let wait = bucket.wait_for(quantum, now);
            if wait > Duration::ZERO {
                return Err(wait);
            }
            let available = bucket.available(now).max(quantum as f64) as usize;
            Ok(available.min(space))
        });
        if allowance.is_err() {
            self.bucket.note_held_back();
        }
        allowance
    }

    /// Under `block`: takes the bytes just read from the budget.
    pub fn charge_read(&self, bytes: usize) {
        self.bucket.charge(bytes as u64);
    }

    /// From now on every new line is dropped (rate limit); a line already
    /// started is finished. For the output taken from the pipe after the
    /// drain timeout under `block`, when the budget has run out of time.
    pub fn refuse_new_lines(&mut self) {
        if self.policy == Policy::Block {
            self.policy = Policy::Drop;
            self.refusing = true;
        }
    }

    /// Decides whether `record` (read at `time`) goes to the log. Under
    /// `block` everything read was paid for already; under `drop` a line is
    /// judged whole when it starts, against the frame's credit.
    #[inline]
    pub fn admit(&mut self, record: &Record<'_>, time: Timestamp) -> Admission {
        if self.policy == Policy::Block {
            return Admission::Pass;
        }
        let bytes = u64::from(record.app_bytes);
        self.at_line_start = !self.in_line;
        let admission = if self.in_line {
            // The rest of a line follows the verdict on its start.
            if self.line_admission == Admission::Pass {
                self.spend(bytes);
            }
            self.line_admission
        } else if self.refusing {
            Admission::Drop
        } else if self.credit >= bytes {
            self.credit -= bytes;
            Admission::Pass
        } else if bytes > self.frame.burst
            && self.frame.full_bucket
            && self.credit == self.frame.taken
        {
            // Larger than the burst: it passes on a full bucket, in debt.
            self.frame.full_bucket = false;
            self.spend(bytes);
            Admission::Pass
        } else {
            Admission::Drop
        };
        self.in_line = record.tag == Tag::Partial;
        self.line_admission = admission;
        if admission == Admission::Drop {
            let lost = Counts {
                bytes,
                lines: record.lines(),
            };
            self.dropped.rate_limit.merge(lost);
            self.frame.dropped += bytes;
            self.run
                .get_or_insert(LossRun::new(time))
                .record(lost, time);
        }
        admission
    }

    /// Pays `bytes` of an admitted line from the credit, the rest as debt.
    fn spend(&mut self, bytes: u64) {
        let from_credit = bytes.min(self.credit);
        self.credit -= from_credit;
        self.frame.debt += bytes - from_credit;
    }

    /// The marker for the drops not yet stated, if one is due after a
    /// record was admitted or dropped. A run of drops ends, and is marked,
    /// when output passes with the budget no longer tight (half the burst
    /// saved up again); while it lasts it is marked once per marker interval,
    /// so a writer held at its budget gets one marker per interval, not one
    /// per line that slips through.
    pub fn due_marker(&mut self, admission: Admission, time: Timestamp) -> Option<String> {
        // A marker goes only between lines, never inside one.
        let run = self.run.as_ref()?;
        if !self.at_line_start {
            return None;
        }
        let interval_over = run.overdue(time, self.marker_interval);
        // Within a frame: the credit left says how much budget is saved up.
        let recovered = admission == Admission::Pass
            && self.frame.burst > 0
            && self.credit >= self.frame.burst / 2;
        (interval_over || recovered).then(|| self.take_marker())
    }

    /// Drops happened that no marker has stated yet.
    pub fn has_pending_drops(&self) -> bool {
        self.run.is_some()
    }

    /// The marker for drops not yet stated, at the end of the stream.
    pub fn final_marker(&mut self) -> Option<String> {
        self.run.as_ref()?;
        Some(self.take_marker())
    }

    fn take_marker(&mut self) -> String {
        let run = self.run.take().expect("callers check for a run");
        run.marker("rate limit", &self.describe())
    }

    /// `container 5MiB/s`, as markers name the budget.
    pub fn describe(&self) -> String {
        self.bucket.describe_budget()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tag: Tag, content: &[u8], newline: bool) -> Record<'_> {
        Record {
            tag,
            content,
            app_bytes: content.len() as u32 + u32::from(newline),
        }
    }

    #[test]
    fn drop_policy_drops_whole_lines_and_marks_the_run() {
        let config = GateConfig {
            budget: Budget::new(1.0, Some(10)),
            streams: None,
            node: None,
            policy: Policy::Drop,
            marker_interval: Duration::from_secs(3600),
        };
        let mut gate = StreamGate::new(&config, SharedBucket::new(config.budget, "container"));
        let t = Timestamp { secs: 0, nanos: 0 };
        gate.begin_frame(64);
        assert_eq!(
            gate.admit(&record(Tag::Full, b"12345678", true), t),
            Admission::Pass
        );
        // The bucket is spent: a long line is dropped from its first piece to its last.
        assert_eq!(
            gate.admit(&record(Tag::Partial, b"abcd", false), t),
            Admission::Drop
        );
        assert_eq!(
            gate.admit(&record(Tag::Partial, b"efgh", false), t),
            Admission::Drop
        );
        assert_eq!(
            gate.admit(&record(Tag::Full, b"ij", true), t),
            Admission::Drop
        );
        assert_eq!(gate.due_marker(Admission::Drop, t), None);
        assert_eq!(
            gate.due_marker(Admission::Pass, t),
            None,
            "the budget is still tight"
        );
        gate.end_frame();
        let marker = gate.final_marker().unwrap();
        assert_eq!(
            marker,
            "weir: dropped 1 lines (11 bytes) from 1970-01-01T00:00:00.000000000Z to \
             1970-01-01T00:00:00.000000000Z: rate limit (container 1B/s)"
        );
        assert_eq!(
            gate.dropped().rate_limit,
            Counts {
                bytes: 11,
                lines: 1
            }
        );
        assert_eq!(gate.final_marker(), None);
    }

    #[test]
    fn a_marker_never_lands_inside_a_line() {
        let config = GateConfig {
            budget: Budget::new(1e12, Some(100)),
            streams: None,
            node: None,
            policy: Policy::Drop,
            marker_interval: Duration::from_secs(3600),
        };
        let mut gate = StreamGate::new(&config, SharedBucket::new(config.budget, "container"));
        let t = Timestamp { secs: 0, nanos: 0 };
        gate.begin_frame(1000);
        let long = [b'x'; 90];
        assert_eq!(
            gate.admit(&record(Tag::Full, &long, true), t),
            Admission::Pass
        );
        assert_eq!(
            gate.admit(&record(Tag::Full, &[b'y'; 50], true), t),
            Admission::Drop
        );
        // A line starts with the credit left, which is still tight: no marker.
        assert_eq!(
            gate.admit(&record(Tag::Partial, b"start", false), t),
            Admission::Pass
        );
        assert_eq!(gate.due_marker(Admission::Pass, t), None);
        gate.end_frame();
        // Next read: the budget has recovered, but the line is still open.
        gate.begin_frame(1000);
        assert_eq!(
            gate.admit(&record(Tag::Full, b"end", true), t),
            Admission::Pass
        );
        assert_eq!(
            gate.due_marker(Admission::Pass, t),
            None,
            "a marker inside the line"
        );
        // The next line starts: now the run of drops is stated.
        assert_eq!(
            gate.admit(&record(Tag::Full, b"next", true), t),
            Admission::Pass
        );
        assert!(gate.due_marker(Admission::Pass, t).is_some());
        gate.end_frame();
    }

    #[test]
    fn a_line_begun_in_a_frame_that_passed_whole_is_finished_over_budget() {
        let config = GateConfig {
            budget: Budget::new(1.0, Some(100)),
            streams: None,
            node: None,
            policy: Policy::Drop,
            marker_interval: Duration::from_secs(3600),
        };
        let mut gate = StreamGate::new(&config, SharedBucket::new(config.budget, "container"));
        let t = Timestamp { secs: 0, nanos: 0 };
        // 60 bytes read, all covered: the frame passes unjudged and its last
        // line is left open.
        gate.begin_frame(60);
        assert!(gate.frame_passes());
        gate.pass_whole_frame(60, true);
        gate.end_frame();
        // 50 more: 40 tokens are left, so the frame does not pass whole, but
        // the open line's rest follows its start in.
        gate.begin_frame(50);
        assert!(!gate.frame_passes());
        assert_eq!(
            gate.admit(&record(Tag::Full, &[b'z'; 44], true), t),
            Admission::Pass,
            "the rest of a line that passed is not dropped"
        );
        assert_eq!(
            gate.admit(&record(Tag::Full, b"new", true), t),
            Admission::Drop,
            "a new line waits for budget"
        );
        gate.end_frame();
        // A run of drops is pending: no frame passes unjudged until it is marked.
        gate.begin_frame(1);
        assert!(!gate.frame_passes());
        gate.end_frame();
        assert_eq!(gate.dropped().rate_limit.lines, 1);
    }
}
