//! Delivery: one scheduler per sink takes batches from the sink's buffer,
//! hands them to the sink, retries what failed and acknowledges what
//! arrived, so the buffer can let go of it.
//!
//! - `ordered`: one batch in flight. Batch n+1 is taken only after batch n
//!   was acknowledged, and a failed batch is retried before anything newer,
//!   so the destination receives the records in order, each at least once,
//!   a record twice only if its batch was retried. The next batch is taken
//!   as soon as the previous is acknowledged.
//! - `concurrent`: up to N batches in flight, each retried on its own; the
//!   buffer takes acknowledgements in any order.
//!
//! A batch is what the buffer has, up to a count and a size; when the
//! buffer holds less, the batch waits at most `timeout` for more. Retries
//! back off exponentially with full jitter, honour `Retry-After`, and end
//! after `max_retry_age` if one is set: then the batch goes to the
//! dead-letter file, as do batches the destination refused for good.

mod backoff;
mod dead_letter;
mod keyed;

use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use self::backoff::{Backoff, Rng};
pub use self::dead_letter::DeadLetters;
use crate::buffer::Buffer;
use crate::metrics::SinkMetrics;
use crate::record::LogRecord;
use crate::sink::{Reads, SendError, Sink};

/// How a sink's batches are formed and sent.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub max_records: usize,
    pub max_bytes: usize,
    /// How long a batch waits to fill once its first record is there.
    pub timeout: Duration,
    /// Batches in flight at once: 1 is `ordered`.
    pub concurrency: usize,
    pub backoff: Backoff,
    /// Give up on a batch retried for this long (None: never).
    pub max_retry_age: Option<Duration>,
    pub dead_letter: PathBuf,
    /// Ordered per value of this field, the keys in parallel on
    /// `concurrency` workers (see [`keyed`]).
    pub order_key: Option<crate::transform::expr::Field>,
}

/// A batch on its way: the records, and the buffer ranges they came from.
#[derive(Debug)]
struct Batch {
    records: Vec<LogRecord>,
    /// Buffer ranges and their payload bytes, acknowledged together.
    ranges: Vec<(Range<u64>, u64)>,
    payload_bytes: u64,
}

/// Makes a sink for each delivery worker.
pub type SinkFactory = Box<dyn Fn() -> std::io::Result<Box<dyn Sink>> + Send + Sync>;

/// Starts delivering from `buffer` to the sinks `factory` makes. It runs
/// until `stop` is set, or the buffer is closed and read through.
pub fn start(
    name: &str,
    buffer: Arc<Buffer>,
    factory: SinkFactory,
    config: DeliveryConfig,
    metrics: Arc<SinkMetrics>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    let name = name.to_owned();
    let workers = config.concurrency.max(1);
    let mut senders = Vec::new();
    for index in 0..workers {
        senders.push(Sender {
            name: name.clone(),
            sink: factory()?,
            buffer: Arc::clone(&buffer),
            config: config.clone(),
            metrics: Arc::clone(&metrics),
            dead_letters: DeadLetters::new(&config.dead_letter, &name),
            rng: Rng::seeded(),
            stop: Arc::clone(&stop),
            index,
            refusals: 0,
        });
    }
    thread::Builder::new()
        .name(format!("weir-sink-{name}"))
        .spawn(move || {
            if let Some(key) = &config.order_key {
                keyed::run(senders, &buffer, &config, key, &metrics, &stop);
                return;
            }
            if workers == 1 {
                let mut sender = senders.pop().expect("one sender");
                let reads = sender.sink.reads();
                let mut spent = Vec::new();
                while let Some(batch) = next_batch(&buffer, &config, &metrics, &stop, reads, spent)
                {
                    spent = sender.deliver(batch);
                }
                return;
            }
            // Concurrent: batches go to whichever worker is free.
            let reads = senders[0].sink.reads();
            let (tx, rx) = mpsc::sync_channel::<Batch>(0);
            let rx = Arc::new(std::sync::Mutex::new(rx));
            let handles: Vec<JoinHandle<()>> = senders
                .into_iter()
                .map(|mut sender| {
                    let rx = Arc::clone(&rx);
                    thread::Builder::new()
                        .name(format!("weir-sink-{}-{}", sender.name, sender.index))
                        .spawn(move || {
                            loop {
                                let batch = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                                match batch {
                                    Ok(batch) => drop(sender.deliver(batch)),
                                    Err(_) => return,
                                }
                            }
                        })
                        .expect("spawning a delivery worker")
                })
                .collect();
            while let Some(batch) = next_batch(&buffer, &config, &metrics, &stop, reads, Vec::new())
            {
                if tx.send(batch).is_err() {
                    break;
                }
            }
            drop(tx);
            for handle in handles {
                let _ = handle.join();
            }
        })
}

/// How often an idle scheduler looks at `stop`.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// Takes the next batch: waits for a first record, then up to the timeout
/// for the batch to fill. None: stopped, or the buffer is closed and empty.
/// The records are decoded as far as the sink `reads` them, into those of
/// `spent` (a batch delivered before), reusing what they allocated.
fn next_batch(
    buffer: &Buffer,
    config: &DeliveryConfig,
    metrics: &SinkMetrics,
    stop: &AtomicBool,
    reads: Reads,
    mut spent: Vec<LogRecord>,
) -> Option<Batch> {
    let mut batch = Batch {
        records: Vec::new(),
        ranges: Vec::new(),
        payload_bytes: 0,
    };
    let mut deadline: Option<Instant> = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            // What was read but not sent stays unacknowledged: a disk buffer
            // sends it again after a restart.
            return None;
        }
        let wait = match deadline {
            None => IDLE_POLL,
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
        };
        let entries = match buffer.read(
            config.max_records - batch.records.len(),
            config
                .max_bytes
                .saturating_sub(batch.payload_bytes as usize),
            wait,
        ) {
            Ok(entries) => entries,
            Err(e) => {
                eprintln!("weir: reading the buffer: {e}");
                thread::sleep(IDLE_POLL);
                Vec::new()
            }
        };
        if entries.is_empty() {
            if deadline.is_some() || buffer_done(buffer) {
                return (!batch.records.is_empty()).then_some(batch);
            }
            metrics
                .oldest_unacked_observed_ns
                .store(0, Ordering::Relaxed);
            continue;
        }
        let first = entries[0].seq;
        let last = entries[entries.len() - 1].seq;
        let bytes: u64 = entries.iter().map(|e| e.payload.len() as u64).sum();
        batch.ranges.push((first..last + 1, bytes));
        batch.payload_bytes += bytes;
        for entry in entries {
            let mut record = spent.pop().unwrap_or_default();
            let decoded = match reads {
                Reads::Whole => record.decode_into(&entry.payload),
                Reads::Core => record.decode_core_into(&entry.payload),
            };
            match decoded {
                Ok(()) => batch.records.push(record),
                Err(e) => {
                    metrics.undecodable.add(1, entry.payload.len() as u64);
                    eprintln!(
                        "weir: buffer record {} is not a record ({e}); skipped",
                        entry.seq
                    );
                }
            }
        }
        if deadline.is_none() {
            deadline = Some(Instant::now() + config.timeout);
            if let Some(first) = batch.records.first() {
                metrics
                    .oldest_unacked_observed_ns
                    .store(first.observed_ns.max(0) as u64, Ordering::Relaxed);
            }
        }
        let full = batch.records.len() >= config.max_records
            || batch.payload_bytes as usize >= config.max_bytes;
        if full {
            return Some(batch);
        }
    }
}

/// A closed buffer read through has nothing more to give.
fn buffer_done(buffer: &Buffer) -> bool {
    buffer.is_closed() && buffer.stats().held.records == 0
}

/// Sends batches to one sink, retrying as configured.
struct Sender {
    name: String,
    sink: Box<dyn Sink>,
    buffer: Arc<Buffer>,
    config: DeliveryConfig,
    metrics: Arc<SinkMetrics>,
    dead_letters: DeadLetters,
    rng: Rng,
    stop: Arc<AtomicBool>,
    index: usize,
    /// Batches the destination took with some records refused: said on
    /// stderr the first time and at each power of two.
    refusals: u64,
}

impl Sender {
    /// Sends `batch` until it arrives, is refused for good, or is given up
    /// on, then acknowledges it to the buffer. Returns early, without an
    /// acknowledgement, only when told to stop.
    /// Gives the records back, for the next batch to decode into.
    fn deliver(&mut self, batch: Batch) -> Vec<LogRecord> {
        if self.settle(&batch.records) {
            self.acknowledge(batch.ranges);
        }
        let mut records = batch.records;
        records.retain(LogRecord::worth_reusing);
        records
    }

    /// Sends `records` until they arrive, are refused for good (and written
    /// to the dead-letter file), or are given up on: true then; false if
    /// told to stop first.
    fn settle(&mut self, records: &[LogRecord]) -> bool {
        self.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let mut attempt = 0u32;
        self.sink.new_batch();
        // Ok: delivered, with how many records the destination then
        // refused.
        let outcome = loop {
            if records.is_empty() {
                break Ok(0);
            }
            match self.sink.send(records) {
                Ok(()) => break Ok(0),
                Err(SendError::PartlyRefused { refused, reason }) => {
                    if self.refusals == 0 || self.refusals.is_power_of_two() {
                        eprintln!(
                            "weir: sink {}: the destination took a batch of {} records but refused {refused} of them: {reason}",
                            self.name,
                            records.len()
                        );
                    }
                    self.refusals += 1;
                    break Ok(refused.min(records.len() as u64));
                }
                Err(SendError::Permanent { reason }) => break Err(reason),
                Err(SendError::Retryable {
                    reason,
                    retry_after,
                }) => {
                    if let Some(max_age) = self.config.max_retry_age
                        && started.elapsed() >= max_age
                    {
                        break Err(format!(
                            "gave up after {} attempts over {:.1} s: {reason}",
                            attempt + 1,
                            started.elapsed().as_secs_f64()
                        ));
                    }
                    let delay = self
                        .config
                        .backoff
                        .delay(attempt, retry_after, &mut self.rng);
                    if attempt == 0 || attempt.is_power_of_two() {
                        eprintln!(
                            "weir: sink {}: {reason}; retrying in {:.2} s (attempt {})",
                            self.name,
                            delay.as_secs_f64(),
                            attempt + 1
                        );
                    }
                    self.metrics.retries.fetch_add(1, Ordering::Relaxed);
                    attempt += 1;
                    if !self.sleep(delay) {
                        self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
                        return false;
                    }
                }
            }
        };
        let record_bytes: u64 = records.iter().map(|r| r.body.len() as u64).sum();
        match outcome {
            Ok(refused) => {
                self.count_arrived(records.len() as u64, record_bytes, refused);
                self.metrics.batches.fetch_add(1, Ordering::Relaxed);
            }
            Err(reason) => {
                // A sink that sends a batch in parts may have got some of
                // it through: only the rest is dead-lettered.
                let arrived = self.sink.arrived(records);
                let went = |i: usize| arrived.records.get(i).copied().unwrap_or(false);
                let failed = || {
                    records
                        .iter()
                        .enumerate()
                        .filter(move |(i, _)| !went(*i))
                        .map(|(_, r)| r)
                };
                let (failed_records, failed_bytes) =
                    failed().fold((0u64, 0u64), |(n, b), r| (n + 1, b + r.body.len() as u64));
                eprintln!(
                    "weir: sink {}: {failed_records} records to the dead-letter file {}: {reason}",
                    self.name,
                    self.dead_letters.path().display()
                );
                // Until the file takes them, nothing moves on: the batch is
                // not acknowledged (the buffer keeps it) and nothing newer
                // is sent, so nothing is dropped unrecorded.
                let mut attempt = 0u32;
                while let Err(e) = self.dead_letters.write(failed(), &reason) {
                    if attempt == 0 || attempt.is_power_of_two() {
                        eprintln!(
                            "weir: sink {}: cannot write the dead-letter file ({e}); trying again",
                            self.name
                        );
                    }
                    let delay = self.config.backoff.delay(attempt, None, &mut self.rng);
                    attempt += 1;
                    if !self.sleep(delay) {
                        self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
                        return false;
                    }
                }
                self.metrics.dead_lettered.add(failed_records, failed_bytes);
                let (arrived_records, arrived_bytes) = (
                    records.len() as u64 - failed_records,
                    record_bytes - failed_bytes,
                );
                self.count_arrived(arrived_records, arrived_bytes, arrived.refused);
            }
        }
        self.metrics.note_progress();
        self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        true
    }

    /// Counts `records` (of `bytes`) that reached the destination, of
    /// which it then refused `refused` without saying which: those are
    /// given the average record's bytes.
    fn count_arrived(&self, records: u64, bytes: u64, refused: u64) {
        if records == 0 {
            return;
        }
        let refused = refused.min(records);
        let refused_bytes = bytes * refused / records;
        self.metrics
            .delivered
            .add(records - refused, bytes - refused_bytes);
        if refused > 0 {
            self.metrics
                .refused_by_destination
                .add(refused, refused_bytes);
        }
    }

    /// Lets the buffer go of what `ranges` hold.
    fn acknowledge(&self, ranges: Vec<(Range<u64>, u64)>) {
        for (range, bytes) in ranges {
            if let Err(e) = self.buffer.ack(range, bytes) {
                eprintln!("weir: sink {}: acknowledging to the buffer: {e}", self.name);
            }
        }
    }

    /// Sleeps `delay`, waking early if told to stop; false if stopped.
    fn sleep(&self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            thread::sleep(left.min(IDLE_POLL));
        }
    }
}
