//! Draining one output stream of the child.
//!
//! Each stream gets a thread that blocks in `read(2)` into a buffer larger
//! than the pipe, so one read empties the pipe. It deliberately never polls
//! the pipe: once a pipe has been polled, every later write into it pays for
//! waking the poll queue.
//!
//! Between reads the thread sleeps a little while data trickles in, so that a
//! writer issuing one `write(2)` per line fills the pipe for a while instead of
//! waking weir for every line; the sleep is bounded by `max_latency` and by
//! the time the writer would need to fill half the pipe at its observed rate,
//! so the writer never finds the pipe full because of it.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::format::{Encoder, Timestamp};
use crate::framing::{Framer, Record, Tag};
use crate::gate::{Admission, StreamGate};
use crate::ring::RingBypass;
use crate::sink::{Batch, BatchOutlet};
use crate::stats::{Counts, Dropped, Stream};
use crate::sys;
use weir_gate::Policy;

/// Encoded bytes gathered before the sink is called, bounding memory when a
/// read of short lines expands many times over (empty lines gain ~40 bytes
/// of CRI prefix each).
pub const BATCH_LIMIT: usize = 128 << 10;

/// A writer quiet this long after drops has stopped being dropped: the
/// marker goes into the log then.
const QUIET_MARK_AFTER: Duration = Duration::from_secs(1);

/// Sleeps shorter than this are not worth a timer.
const MIN_COALESCE_SLEEP: Duration = Duration::from_micros(200);

/// How one reader behaves.
#[derive(Debug, Clone)]
pub struct ReaderConfig {
    pub max_line: usize,
    /// Capacity of the pipe being read; the read buffer is at least this big.
    pub pipe_capacity: usize,
    pub max_latency: Duration,
    /// The stream is a terminal: EIO means the other side closed.
    pub is_tty: bool,
    /// Set by the supervisor when the child has exited: end of stream is
    /// near, so nothing should wait on a timer for more output.
    pub child_exited: Arc<AtomicBool>,
}

/// What one reader saw.
#[derive(Debug)]
pub struct ReadReport {
    pub stream: Stream,
    /// Application bytes and lines read (all of them framed into records).
    pub read: Counts,
    /// Dropped by the gate (rate limit, ring overflow); disk losses are the sink's.
    pub dropped: Dropped,
    /// A read error other than end of stream.
    pub error: Option<io::Error>,
    /// The reader was told to stop before end of stream (drain timeout).
    pub stopped: bool,
}

/// Where a reader's batches go.
#[derive(Debug)]
pub enum Destination {
    /// The file writer.
    Sink(BatchOutlet),
    /// A ring stage, passed by while it is empty.
    Ring(RingBypass),
}

impl Destination {
    fn first(&self) -> Batch {
        match self {
            Destination::Sink(outlet) => outlet.first(),
            Destination::Ring(ring) => ring.first(),
        }
    }

    fn exchange(&self, full: Batch) -> Batch {
        match self {
            Destination::Sink(outlet) => outlet.exchange(full),
            Destination::Ring(ring) => ring.exchange(full),
        }
    }

    fn close(self, last: Batch) {
        match self {
            Destination::Sink(outlet) => outlet.close(last),
            Destination::Ring(ring) => ring.close(last),
        }
    }
}

/// Reads `fd` to end of stream (or until `stop` is set and the thread is
/// woken), handing batches of encoded records to `outlet`.
pub fn read_stream(
    fd: OwnedFd,
    encoder: Encoder,
    outlet: Destination,
    gate: Option<StreamGate>,
    config: &ReaderConfig,
    stop: &AtomicBool,
) -> ReadReport {
    let stream = encoder.stream();
    let framer = Framer::new(config.max_line);
    let max_line = framer.max_line();
    let mut reader = StreamReader {
        fd,
        framer,
        out: RecordOut {
            encoder,
            time: Timestamp::now(),
            batch: outlet.first(),
            outlet,
            read: Counts::default(),
            gate,
        },
    };
    let read_size = config.pipe_capacity.max(64 << 10);
    // Untouched pages of a large zeroed allocation cost no memory until used.
    // The unframed tail of a line is at most `max_line` bytes.
    let mut buf = vec![0u8; read_size + max_line];
    let mut filled = 0;
    let mut error = None;
    let mut stopped = false;
    let mut cycle_start = Instant::now();
    let blocking_gate = reader
        .out
        .gate
        .as_ref()
        .is_some_and(|g| g.policy() == Policy::Block);
    loop {
        let mut space = buf.len() - filled;
        if blocking_gate {
            let gate = reader.out.gate.as_ref().expect("checked above");
            match wait_for_budget(gate, space, stop) {
                Some(allowed) => space = allowed,
                None => {
                    stopped = true;
                    break;
                }
            }
        }
        let got = match reader.fill(&mut buf[filled..filled + space], config.is_tty) {
            Ok(Fill::Data(n)) => n,
            Ok(Fill::Eof) => break,
            Ok(Fill::Interrupted) => {
                if stop.load(Ordering::Relaxed) {
                    stopped = true;
                    break;
                }
                continue;
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        };
        if blocking_gate {
            reader
                .out
                .gate
                .as_ref()
                .expect("checked above")
                .charge_read(got);
        }
        // One read into a buffer larger than the pipe empties the pipe,
        // unless it filled the buffer: then more may be waiting.
        // A read that took a whole pipe found the writer blocked on a full
        // pipe, not paused: more is coming at once.
        let drained = got < space && got < config.pipe_capacity;
        filled = reader.frame(&mut buf, filled + got);
        reader.flush();
        if stop.load(Ordering::Relaxed) {
            stopped = true;
            break;
        }
        if !drained {
            continue;
        }
        let now = Instant::now();
        let interval = now.duration_since(cycle_start);
        cycle_start = now;
        if filled > 0 {
            if sys::bytes_available(reader.fd.as_raw_fd()).unwrap_or(0) > 0 {
                // The rest of the line is already waiting.
                continue;
            }
            // The writer stopped mid-line: give it `max_latency` to go on,
            // then write what there is as a partial record.
            sleep(config.max_latency);
            if sys::bytes_available(reader.fd.as_raw_fd()).unwrap_or(0) == 0 {
                reader.flush_idle(&buf[..filled]);
                filled = 0;
            }
            continue;
        }
        let pause = coalescing_pause(got, interval, read_size, config.max_latency);
        if pause >= MIN_COALESCE_SLEEP {
            if reader
                .out
                .gate
                .as_ref()
                .is_some_and(StreamGate::has_pending_drops)
            {
                // Dropping has stopped if the writer stays quiet: say so in
                // the log then, not whenever it writes again. Looking as
                // often as the pause lets the writer fill at most half the
                // pipe in between, as the pause itself does.
                if reader.mark_drops_when_quiet(stop, &config.child_exited, pause) {
                    stopped = true;
                    break;
                }
            } else {
                sleep(pause);
            }
        }
    }
    if stopped {
        // Told to stop (drain timeout): what the writers already put in the
        // pipe is taken too, so it is stored or counted, never left unseen.
        // Under `block` the budget is over: those lines are dropped.
        if let Some(gate) = reader.out.gate.as_mut() {
            gate.refuse_new_lines();
        }
        let mut allowance = config.pipe_capacity.saturating_mul(4);
        while allowance > 0 {
            let waiting = sys::bytes_available(reader.fd.as_raw_fd()).unwrap_or(0);
            let space = (buf.len() - filled).min(waiting).min(allowance);
            if space == 0 {
                break;
            }
            match sys::read(reader.fd.as_raw_fd(), &mut buf[filled..filled + space]) {
                Ok(0) | Err(_) => break,
                Ok(got) => {
                    filled = reader.frame(&mut buf, filled + got);
                    allowance -= got;
                }
            }
        }
    }
    reader.finish(&buf[..filled]);
    let RecordOut {
        read,
        outlet,
        batch,
        gate,
        ..
    } = reader.out;
    outlet.close(batch);
    ReadReport {
        stream,
        read,
        dropped: gate.map(|g| g.dropped()).unwrap_or_default(),
        error,
        stopped,
    }
}

/// How long to let data accumulate after reading `got` bytes that took
/// `interval` to arrive: long enough to batch many small writes, short
/// enough that the writer fills at most half of the pipe meanwhile.
fn coalescing_pause(
    got: usize,
    interval: Duration,
    capacity: usize,
    max_latency: Duration,
) -> Duration {
    if got == 0 || got >= capacity / 2 {
        return Duration::ZERO;
    }
    let half_fill = interval.mul_f64((capacity / 2) as f64 / got as f64);
    half_fill.min(max_latency)
}

/// Under `block`: waits until the budget allows a read and returns how many
/// bytes it allows, or `None` if the reader was told to stop meanwhile.
fn wait_for_budget(gate: &StreamGate, space: usize, stop: &AtomicBool) -> Option<usize> {
    loop {
        match gate.read_allowance(space) {
            Ok(allowed) => return Some(allowed),
            Err(wait) => {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                sleep(wait.min(Duration::from_millis(100)));
            }
        }
    }
}

/// One `nanosleep`, cut short by the wake-up signal (unlike std's sleep,
/// which resumes after EINTR).
fn sleep(duration: Duration) {
    let ts = libc::timespec {
        tv_sec: duration.as_secs() as libc::time_t,
        tv_nsec: duration.subsec_nanos() as libc::c_long,
    };
    // SAFETY: a valid timespec; the remainder is not requested.
    unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
}

enum Fill {
    Data(usize),
    Eof,
    Interrupted,
}

struct StreamReader {
    fd: OwnedFd,
    framer: Framer,
    out: RecordOut,
}

/// Where framed records go: encoded into the current batch, which is handed
/// to the file writer when full.
struct RecordOut {
    encoder: Encoder,
    /// The time of the read the records come from.
    time: Timestamp,
    batch: Batch,
    outlet: Destination,
    read: Counts,
    gate: Option<StreamGate>,
}

impl StreamReader {
    /// Blocks until data arrives and reads what is there into `space`.
    fn fill(&mut self, space: &mut [u8], is_tty: bool) -> io::Result<Fill> {
        match sys::read(self.fd.as_raw_fd(), space) {
            Ok(0) => Ok(Fill::Eof),
            Ok(n) => Ok(Fill::Data(n)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Fill::Interrupted),
            // A terminal whose last writer closed reports EIO, not EOF.
            Err(e) if is_tty && e.raw_os_error() == Some(libc::EIO) => Ok(Fill::Eof),
            Err(e) => Err(e),
        }
    }

    /// Frames and encodes `buf[..filled]`, moves the unframed tail to the
    /// front and returns its length.
    fn frame(&mut self, buf: &mut [u8], filled: usize) -> usize {
        let out = &mut self.out;
        out.begin_frame(Timestamp::now(), filled);
        let used = if out.frame_passes() {
            let before = out.read.bytes;
            let mut open = false;
            let used = self.framer.frame(&buf[..filled], |record| {
                open = record.tag == Tag::Partial;
                out.push_unjudged(&record);
            });
            out.pass_whole_frame(out.read.bytes - before, open);
            used
        } else {
            self.framer
                .frame(&buf[..filled], |record| out.push(&record))
        };
        out.end_frame();
        buf.copy_within(used..filled, 0);
        filled - used
    }

    /// Writes an unterminated tail as a partial record: the writer went idle.
    fn flush_idle(&mut self, rest: &[u8]) {
        let out = &mut self.out;
        out.begin_frame(Timestamp::now(), rest.len());
        self.framer.flush_idle(rest, |record| out.push(&record));
        out.end_frame();
        out.flush();
    }

    /// Closes the stream's last line and hands over everything left.
    fn finish(&mut self, rest: &[u8]) {
        let out = &mut self.out;
        out.begin_frame(Timestamp::now(), rest.len());
        self.framer.finish(rest, |record| out.push(&record));
        out.end_frame();
        if let Some(marker) = out.gate.as_mut().and_then(StreamGate::final_marker) {
            out.write_marker(&marker);
        }
        out.flush();
    }

    fn flush(&mut self) {
        self.out.flush();
    }

    /// Waits, without a blocking read, for the writer to go on; once it has
    /// been quiet for [`QUIET_MARK_AFTER`], writes the pending drop marker.
    /// Returns true if told to stop meanwhile.
    fn mark_drops_when_quiet(
        &mut self,
        stop: &AtomicBool,
        child_exited: &AtomicBool,
        poll: Duration,
    ) -> bool {
        let quiet_since = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                return true;
            }
            if child_exited.load(Ordering::Relaxed) {
                // The stream is about to end; its end marks the drops.
                return false;
            }
            if sys::bytes_available(self.fd.as_raw_fd()).unwrap_or(0) > 0 {
                return false;
            }
            if quiet_since.elapsed() >= QUIET_MARK_AFTER {
                let out = &mut self.out;
                out.set_time(Timestamp::now());
                if let Some(marker) = out.gate.as_mut().and_then(StreamGate::final_marker) {
                    out.write_marker(&marker);
                }
                out.flush();
                return false;
            }
            sleep(poll);
        }
    }
}

impl RecordOut {
    /// Starts a frame of `bytes` read at `time`.
    fn begin_frame(&mut self, time: Timestamp, bytes: usize) {
        self.set_time(time);
        if let Some(gate) = self.gate.as_mut() {
            gate.begin_frame(bytes);
        }
    }

    /// Stamps the records (and markers) encoded from now on.
    fn set_time(&mut self, time: Timestamp) {
        self.time = time;
        self.encoder.set_time(time);
    }

    fn end_frame(&mut self) {
        if let Some(gate) = self.gate.as_mut() {
            gate.end_frame();
        }
    }

    /// Whether the frame begun passes the gate whole (or there is no gate
    /// judging lines): its records may go in with [`RecordOut::push_unjudged`].
    fn frame_passes(&self) -> bool {
        self.gate
            .as_ref()
            .is_none_or(|gate| !gate.judges_lines() || gate.frame_passes())
    }

    /// Settles a frame whose records went in unjudged.
    fn pass_whole_frame(&mut self, bytes: u64, open: bool) {
        if let Some(gate) = self.gate.as_mut().filter(|gate| gate.judges_lines()) {
            gate.pass_whole_frame(bytes, open);
        }
    }

    #[inline]
    fn push(&mut self, record: &Record<'_>) {
        // Under `block` the read was paid for; only `drop` judges lines.
        if let Some(gate) = self.gate.as_mut().filter(|gate| gate.judges_lines()) {
            let admission = gate.admit(record, self.time);
            if let Some(marker) = gate.due_marker(admission, self.time) {
                self.write_marker(&marker);
            }
            if admission == Admission::Drop {
                self.read.add(u64::from(record.app_bytes), record.lines());
                return;
            }
        }
        self.push_unjudged(record);
    }

    /// Encodes a record the gate let through, or did not need to judge.
    #[inline]
    fn push_unjudged(&mut self, record: &Record<'_>) {
        self.read.add(u64::from(record.app_bytes), record.lines());
        self.encoder.encode(record, &mut self.batch.bytes);
        self.batch.push_encoded(record);
        if self.batch.bytes.len() >= BATCH_LIMIT {
            self.flush();
        }
    }

    /// Writes a marker record of weir's own: no application bytes.
    fn write_marker(&mut self, text: &str) {
        self.batch.push_marker(&self.encoder, text);
    }

    /// Hands the batch, if it holds anything, to the file writer.
    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let placeholder = Batch::new(self.batch.stream, 0);
        let full = std::mem::replace(&mut self.batch, placeholder);
        self.batch = self.outlet.exchange(full);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_is_bounded_by_latency_and_by_half_the_pipe() {
        let cap = 1 << 20;
        let max = Duration::from_millis(10);
        // A trickle: wait the full latency bound.
        assert_eq!(
            coalescing_pause(100, Duration::from_millis(50), cap, max),
            max
        );
        // 64 KiB arrived in 1 ms: half the pipe fills in 8 ms.
        assert_eq!(
            coalescing_pause(64 << 10, Duration::from_millis(1), cap, max),
            Duration::from_millis(8)
        );
        // Half the pipe or more in one go: keep reading, no pause.
        assert_eq!(
            coalescing_pause(cap / 2, Duration::from_millis(1), cap, max),
            Duration::ZERO
        );
    }
}
