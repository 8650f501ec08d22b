//! The `ring` policy: the writer never waits; output over budget waits in a
//! bounded buffer and leaves at the budgeted rate; when the buffer is full
//! the oldest whole lines are dropped, counted and marked.
//!
//! The ring is a stage between a stream's reader and the file writer, on its
//! own thread: the reader hands it batches at full speed, it copies what it
//! keeps and gives the batch straight back, so the reader never waits on the
//! budget. Lines leave whole, when the budget has room for all of them, and a
//! line always sits in one held batch, so eviction never cuts a line either.
//! The bound counts the encoded bytes held, which is the memory used.
//!
//! While the ring holds nothing, the reader passes it by ([`RingBypass`]):
//! a batch of whole lines the budget has room for goes straight to the file
//! writer, so a ring whose budget is never hit costs no thread hop. The
//! stage's [`Lane`] count says when that is safe: it is non-zero from the
//! moment the reader sends the stage a batch until the stage has handed on
//! or dropped everything it had, so nothing the reader sends directly can
//! overtake what the stage still has to write.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::format::{Encoder, Timestamp};
use crate::gate::SharedBucket;
use crate::loss::LossRun;
use crate::reader::BATCH_LIMIT;
use crate::sink::{Batch, BatchInlet, BatchOutlet, batch_channel};
use crate::stats::Counts;

/// How long the stage sleeps when it has nothing to release.
const IDLE_WAIT: Duration = Duration::from_millis(50);

/// What the ring is asked to do.
#[derive(Debug, Clone)]
pub struct RingConfig {
    /// Largest number of encoded bytes held.
    pub max_bytes: usize,
    pub marker_interval: Duration,
    /// `ring 1MiB, container 5MiB/s`, as markers name the limits.
    pub description: String,
}

/// What the reader and the stage know of each other: batches sent to the
/// stage and not yet taken in, plus one while the stage holds anything.
#[derive(Debug, Default)]
struct Lane {
    busy: AtomicUsize,
}

/// The reader's way into a ring: straight to the file writer while the ring
/// is empty and the budget has room, through the ring stage otherwise.
#[derive(Debug)]
pub struct RingBypass {
    direct: BatchOutlet,
    ring: BatchOutlet,
    bucket: SharedBucket,
    lane: Arc<Lane>,
}

impl RingBypass {
    /// Takes an empty batch to start with.
    pub fn first(&self) -> Batch {
        self.direct.first()
    }

    /// Hands over a full batch and returns an empty one in its place.
    pub fn exchange(&self, full: Batch) -> Batch {
        // Whole lines only: a line whose start went straight through could
        // not be evicted whole if its rest had to wait in the ring.
        let whole_lines = full.spans.last().is_none_or(|s| s.ends_line);
        if self.lane.busy.load(Ordering::SeqCst) == 0
            && whole_lines
            && self.bucket.try_take(full.total().bytes)
        {
            return self.direct.exchange(full);
        }
        self.lane.busy.fetch_add(1, Ordering::SeqCst);
        self.ring.exchange(full)
    }

    /// Hands over the last batch and closes both ways; the stage ends once
    /// it has released what it holds.
    pub fn close(self, mut last: Batch) {
        if !last.is_empty() {
            last = self.exchange(last);
        }
        self.direct.close(last);
        self.ring.close_holding_none();
    }
}

/// A batch being released, from record `next` on.
#[derive(Debug)]
struct Held {
    batch: Batch,
    next: usize,
}

struct RingStage {
    config: RingConfig,
    bucket: SharedBucket,
    encoder: Encoder,
    outlet: BatchOutlet,
    out: Batch,
    held: VecDeque<Held>,
    held_bytes: usize,
    spare: Vec<Batch>,
    /// The line still arriving was evicted: its remaining pieces are dropped.
    dropping_line: bool,
    /// Overflow the log has not been told about yet.
    run: Option<LossRun>,
    dropped: Counts,
    /// Dropped bytes not yet told to the bucket (for the node share).
    unreported_drops: u64,
    /// The time of the batch being taken in, for markers.
    now: Timestamp,
    lane: Arc<Lane>,
    /// This stage counts one in `lane` for what it holds.
    counted_holding: bool,
}

/// Batches circulating between a reader and its ring stage: one filling,
/// one being taken in; the ring holds what it keeps in its own memory.
const INLET_BATCHES: usize = 2;

/// The two outlets to the file writer a ring needs: the reader's own, for
/// the bypass, and the stage's.
#[derive(Debug)]
pub struct RingOutlets {
    pub reader: BatchOutlet,
    pub stage: BatchOutlet,
}

/// Starts the ring stage of one stream and returns the reader's way in. The
/// stage ends when the reader has closed its side and everything held has
/// left, or when `stop` is set (the drain timeout): then what is left is
/// dropped and counted. The handle returns what it dropped.
pub fn start(
    config: RingConfig,
    outlets: RingOutlets,
    bucket: SharedBucket,
    encoder: Encoder,
    batch_capacity: usize,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(RingBypass, JoinHandle<Counts>)> {
    let (to_ring, inlet) = batch_channel(encoder.stream(), batch_capacity, INLET_BATCHES);
    let lane = Arc::new(Lane::default());
    let bypass = RingBypass {
        direct: outlets.reader,
        ring: to_ring,
        bucket: bucket.clone(),
        lane: Arc::clone(&lane),
    };
    let outlet = outlets.stage;
    let handle = thread::Builder::new()
        .name(format!("weir-ring-{}", encoder.stream().as_str()))
        .spawn(move || {
            let out = outlet.first();
            RingStage {
                config,
                bucket,
                encoder,
                outlet,
                out,
                held: VecDeque::new(),
                held_bytes: 0,
                spare: Vec::new(),
                dropping_line: false,
                run: None,
                dropped: Counts::default(),
                unreported_drops: 0,
                now: Timestamp::now(),
                lane,
                counted_holding: false,
            }
            .run(&inlet, &stop)
        })?;
    Ok((bypass, handle))
}

impl RingStage {
    fn run(mut self, inlet: &BatchInlet, stop: &AtomicBool) -> Counts {
        let mut closed = false;
        loop {
            let wait = self.next_release_wait();
            if closed {
                std::thread::sleep(wait);
            } else {
                match inlet.recv_timeout(wait) {
                    Ok(batch) => {
                        let emptied = self.accept(batch);
                        inlet.give_back(emptied);
                        // Count what is held before the batch stops counting.
                        self.count_holding();
                        self.lane.busy.fetch_sub(1, Ordering::SeqCst);
                    }
                    Err(disconnected) => closed = disconnected,
                }
            }
            if stop.load(Ordering::Relaxed) {
                // Drain timeout: what is still held will not be written,
                // nor the rest of a line whose start is among it.
                self.now = Timestamp::now();
                if self
                    .held
                    .back()
                    .is_some_and(|h| h.batch.spans.last().is_some_and(|s| !s.ends_line))
                {
                    self.dropping_line = true;
                }
                while let Some(front) = self.held.front() {
                    self.drop_front(front.batch.spans.len());
                }
            } else {
                self.release();
                if self.held.is_empty() && self.run.is_some() {
                    // Everything held has left: the overflow is over.
                    if let Some(marker) = self.take_marker() {
                        self.write_marker(&marker);
                    }
                    self.send_out();
                }
            }
            self.count_holding();
            if closed && self.held.is_empty() {
                break;
            }
        }
        if let Some(marker) = self.take_marker() {
            self.write_marker(&marker);
        }
        self.outlet.close(self.out);
        self.dropped
    }

    /// Keeps `lane` counting one for this stage exactly while it holds
    /// anything the reader's next batch must not overtake: lines, the rest
    /// of an evicted line, an unwritten marker or an unsent batch.
    fn count_holding(&mut self) {
        let holding = !self.held.is_empty()
            || self.dropping_line
            || self.run.is_some()
            || !self.out.is_empty();
        if holding != self.counted_holding {
            if holding {
                self.lane.busy.fetch_add(1, Ordering::SeqCst);
            } else {
                self.lane.busy.fetch_sub(1, Ordering::SeqCst);
            }
            self.counted_holding = holding;
        }
    }

    /// Keeps the records of `batch`, evicting the oldest lines to stay within
    /// the bound, and returns an empty batch for the reader.
    fn accept(&mut self, batch: Batch) -> Batch {
        // Within budget and nothing waiting: the batch itself goes on to the
        // sink, uncopied, and the reader gets the sink's empty one back.
        let whole_lines = batch.spans.last().is_none_or(|s| s.ends_line);
        if self.held.is_empty()
            && !self.dropping_line
            && whole_lines
            && self.bucket.try_take(batch.total().bytes)
        {
            self.send_out();
            return self.outlet.exchange(batch);
        }
        self.keep(&batch);
        batch
    }

    fn keep(&mut self, batch: &Batch) {
        // One clock read and one report to the bucket per batch, however
        // many lines it pushes out.
        self.now = Timestamp::now();
        self.keep_records(batch);
        if self.unreported_drops > 0 {
            self.bucket
                .note_dropped(std::mem::take(&mut self.unreported_drops));
        }
    }

    fn keep_records(&mut self, batch: &Batch) {
        let count = batch.spans.len();
        let mut first = 0;
        if self.dropping_line {
            // The rest of a line whose start was evicted goes too.
            match batch.spans.iter().position(|s| s.ends_line) {
                Some(end) => {
                    first = end + 1;
                    self.dropping_line = false;
                }
                None => first = count,
            }
            self.count_lost(batch.counts(0..first));
        }
        if first == count {
            return;
        }
        // A line lives in one held batch: continue the back one if its last
        // line is still open or it has room, else start a new one.
        let back_open = self
            .held
            .back()
            .is_some_and(|h| h.batch.spans.last().is_some_and(|s| !s.ends_line));
        let back_room = self
            .held
            .back()
            .is_some_and(|h| h.batch.bytes.len() < BATCH_LIMIT);
        if !(back_open || back_room) {
            let fresh = self
                .spare
                .pop()
                .unwrap_or_else(|| Batch::new(batch.stream, BATCH_LIMIT + 4096));
            self.held.push_back(Held {
                batch: fresh,
                next: 0,
            });
        }
        let back = self.held.back_mut().expect("a held batch exists");
        back.batch.append_records(batch, first..count);
        self.held_bytes += batch.bytes.len() - batch.start_of(first);
        self.evict_excess();
    }

    /// Drops the oldest whole lines until what is held fits the bound, in one
    /// pass per held batch.
    fn evict_excess(&mut self) {
        while self.held_bytes > self.config.max_bytes {
            let excess = self.held_bytes - self.config.max_bytes;
            let Some(front) = self.held.front() else {
                break;
            };
            let start = front.next;
            let base = front.batch.start_of(start);
            let len = front.batch.spans.len();
            let end = front.batch.spans[start..]
                .iter()
                .position(|s| s.ends_line && s.end - base >= excess)
                .map_or(len, |i| start + i + 1);
            if end == len && !front.batch.spans[len - 1].ends_line {
                // The line still arriving goes too, with its rest.
                self.dropping_line = true;
            }
            self.drop_front(end);
        }
    }

    /// Drops the front batch's records up to `end`.
    fn drop_front(&mut self, end: usize) {
        let lost = self.advance_front(end);
        self.count_lost(lost);
    }

    /// Moves past the front batch's records up to `end`, recycling the batch
    /// once it is used up; returns what those records held.
    fn advance_front(&mut self, end: usize) -> Counts {
        let front = self.held.front_mut().expect("callers check");
        let start = front.next;
        self.held_bytes -= front.batch.start_of(end) - front.batch.start_of(start);
        let counts = front.batch.counts(start..end);
        front.next = end;
        if end == front.batch.spans.len() {
            let mut done = self.held.pop_front().expect("front exists").batch;
            done.clear();
            self.spare.push(done);
        }
        counts
    }

    fn count_lost(&mut self, lost: Counts) {
        if lost.is_zero() {
            return;
        }
        self.dropped.merge(lost);
        self.unreported_drops += lost.bytes;
        self.run
            .get_or_insert(LossRun::new(self.now))
            .record(lost, self.now);
    }

    /// The whole line at the front: its record range and application bytes,
    /// if its end has arrived.
    fn front_line(&self) -> Option<(usize, usize, u64)> {
        let front = self.held.front()?;
        let start = front.next;
        let offset = front.batch.spans[start..]
            .iter()
            .position(|s| s.ends_line)?;
        let end = start + offset + 1;
        Some((start, end, front.batch.counts(start..end).bytes))
    }

    fn next_release_wait(&self) -> Duration {
        match self.front_line() {
            Some((_, _, bytes)) => self
                .bucket
                .wait_for(bytes)
                .clamp(Duration::from_micros(100), IDLE_WAIT),
            None => IDLE_WAIT,
        }
    }

    /// Sends on every whole line the budget has room for, oldest first.
    fn release(&mut self) {
        while let Some((start, end, bytes)) = self.front_line() {
            if !self.bucket.try_admit(bytes) {
                break;
            }
            if self.run.as_ref().is_some_and(|run| {
                self.held_bytes < self.config.max_bytes / 2
                    || run.overdue(Timestamp::now(), self.config.marker_interval)
            }) {
                let marker = self.take_marker().expect("checked above");
                self.write_marker(&marker);
            }
            let front = self.held.front().expect("front line exists");
            self.out.append_records(&front.batch, start..end);
            self.advance_front(end);
            if self.out.bytes.len() >= BATCH_LIMIT {
                self.send_out();
            }
        }
        self.send_out();
    }

    fn send_out(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let full = std::mem::replace(&mut self.out, Batch::new(self.encoder.stream(), 0));
        self.out = self.outlet.exchange(full);
    }

    fn take_marker(&mut self) -> Option<String> {
        let run = self.run.take()?;
        Some(run.marker("ring overflow", &self.config.description))
    }

    fn write_marker(&mut self, text: &str) {
        self.encoder.set_time(Timestamp::now());
        self.out.push_marker(&self.encoder, text);
    }
}
