//! Ordered delivery per key: where a destination wants records in order
//! per stream (a Forward tag, an OTLP resource, a label), each batch is
//! split by the value of the sink's `order_key`, and each key has at most
//! one part in flight, retried before anything newer of that key, while
//! parts of different keys go out in parallel on the sink's workers. A
//! batch is acknowledged to the buffer once all its parts have settled.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;

use super::{Batch, DeliveryConfig, IDLE_POLL, Sender, next_batch};
use crate::buffer::Buffer;
use crate::metrics::SinkMetrics;
use crate::record::LogRecord;
use crate::sink::Reads;
use crate::transform::expr::Field;

/// One key's share of a batch.
struct Part {
    records: Vec<LogRecord>,
    whole: Arc<Whole>,
}

/// A batch split into parts: its buffer ranges are acknowledged when the
/// last part settles.
struct Whole {
    ranges: Mutex<Vec<(Range<u64>, u64)>>,
    parts_left: AtomicUsize,
}

#[derive(Default)]
struct Queues {
    by_key: HashMap<String, VecDeque<Part>>,
    /// Keys with a part in flight.
    busy: HashSet<String>,
    /// Keys with a part waiting and none in flight, oldest first.
    ready: VecDeque<String>,
    waiting: usize,
    /// No more batches will come.
    done: bool,
}

struct Shared {
    queues: Mutex<Queues>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, Queues>) -> MutexGuard<'a, Queues> {
        self.changed
            .wait_timeout(guard, IDLE_POLL)
            .map(|(guard, _)| guard)
            .unwrap_or_else(|e| e.into_inner().0)
    }
}

/// Runs the scheduler on this thread and the senders on threads of their
/// own, until `stop` is set or the buffer is closed and read through.
pub(super) fn run(
    senders: Vec<Sender>,
    buffer: &Buffer,
    config: &DeliveryConfig,
    key: &Field,
    metrics: &SinkMetrics,
    stop: &Arc<AtomicBool>,
) {
    let shared = Arc::new(Shared {
        queues: Mutex::new(Queues::default()),
        changed: Condvar::new(),
    });
    let most_waiting = senders.len() * 2;
    let workers: Vec<_> = senders
        .into_iter()
        .map(|sender| {
            let shared = Arc::clone(&shared);
            let name = format!("weir-sink-{}-{}", sender.name, sender.index);
            thread::Builder::new()
                .name(name)
                .spawn(move || work(sender, &shared))
                .expect("spawning a delivery worker")
        })
        .collect();
    // The key may be any field: records are decoded whole.
    let whole = Reads::Whole;
    while let Some(batch) = next_batch(buffer, config, metrics, stop, whole, Vec::new()) {
        let parts = split(batch, key);
        let mut queues = shared.lock();
        while queues.waiting >= most_waiting && !stop.load(Ordering::Relaxed) {
            queues = shared.wait(queues);
        }
        for (value, part) in parts {
            queues.waiting += 1;
            let queue = queues.by_key.entry(value.clone()).or_default();
            queue.push_back(part);
            // A key is ready while it has parts waiting and none in flight:
            // one whose queue was not empty is ready or busy already.
            if queue.len() == 1 && !queues.busy.contains(&value) {
                queues.ready.push_back(value);
            }
        }
        drop(queues);
        shared.changed.notify_all();
    }
    shared.lock().done = true;
    shared.changed.notify_all();
    for worker in workers {
        let _ = worker.join();
    }
}

/// Splits a batch by key, keeping each key's records in order.
fn split(batch: Batch, key: &Field) -> Vec<(String, Part)> {
    let mut order: Vec<String> = Vec::new();
    let mut by_key: HashMap<String, Vec<LogRecord>> = HashMap::new();
    for record in batch.records {
        let value = crate::transform::key_of(key, &record);
        by_key
            .entry(value.clone())
            .or_insert_with(|| {
                order.push(value);
                Vec::new()
            })
            .push(record);
    }
    let whole = Arc::new(Whole {
        ranges: Mutex::new(batch.ranges),
        parts_left: AtomicUsize::new(order.len().max(1)),
    });
    if order.is_empty() {
        // Nothing decoded: acknowledge through one empty part.
        order.push(String::new());
    }
    order
        .into_iter()
        .map(|value| {
            let records = by_key.remove(&value).unwrap_or_default();
            let whole = Arc::clone(&whole);
            (value, Part { records, whole })
        })
        .collect()
}

/// A worker: takes the oldest ready key's next part, settles it, and
/// makes the key ready again if more of it waits.
fn work(mut sender: Sender, shared: &Shared) {
    loop {
        let mut queues = shared.lock();
        let (value, part) = loop {
            if let Some(value) = queues.ready.pop_front() {
                let part = queues
                    .by_key
                    .get_mut(&value)
                    .and_then(VecDeque::pop_front)
                    .expect("a ready key has a part waiting");
                queues.waiting -= 1;
                queues.busy.insert(value.clone());
                break (value, part);
            }
            if (queues.done && queues.busy.is_empty()) || sender.stop.load(Ordering::Relaxed) {
                return;
            }
            queues = shared.wait(queues);
        };
        drop(queues);
        shared.changed.notify_all();
        if !sender.settle(&part.records) {
            return;
        }
        if part.whole.parts_left.fetch_sub(1, Ordering::AcqRel) == 1 {
            let ranges =
                std::mem::take(&mut *part.whole.ranges.lock().unwrap_or_else(|e| e.into_inner()));
            sender.acknowledge(ranges);
        }
        let mut queues = shared.lock();
        queues.busy.remove(&value);
        match queues.by_key.get(&value) {
            Some(waiting) if !waiting.is_empty() => queues.ready.push_back(value),
            _ => {
                queues.by_key.remove(&value);
            }
        }
        drop(queues);
        shared.changed.notify_all();
    }
}
