//! Sources: where records come into the pipeline, and the routes that take
//! a source's records through transforms to the buffers of its sinks.

pub mod decode_cost;
pub mod file;
pub mod forward;
pub mod http_intake;
pub mod memory;
pub mod net;
pub mod otlp;
pub mod syslog;
pub mod tenant;
pub mod zipkin;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use self::file::checkpoint::Entry;
use crate::buffer::Buffer;
use crate::metrics::SourceMetrics;
use crate::record::LogRecord;
use crate::transform::{Stage, TransformMetrics};

/// What a running source is given: where its records go, how a reload
/// reaches it, its counters, and the flag that stops it.
pub struct Wiring {
    pub output: Output,
    pub control: Arc<Control>,
    pub metrics: Arc<SourceMetrics>,
    pub stop: Arc<std::sync::atomic::AtomicBool>,
}

/// How a reload reaches a running source: it parks the source between two
/// reads, changes what the source's records go to, and lets it go on.
#[derive(Debug, Default)]
pub struct Control {
    state: Mutex<ControlState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct ControlState {
    pause: bool,
    parked: bool,
    next_output: Option<Output>,
    /// Where the source was when it parked, file by file.
    positions: Option<Vec<Position>>,
}

/// Where a reader is in one file: acknowledged up to
/// `acknowledged.offset`, and read (handed to its buffers) up to `read`.
#[derive(Debug, Clone)]
pub struct Position {
    pub acknowledged: Entry,
    pub read: u64,
}

impl Position {
    /// The checkpoint entry of a reader that starts at `read`.
    pub fn read_entry(&self) -> Entry {
        Entry {
            offset: self.read,
            ..self.acknowledged.clone()
        }
    }
}

impl Control {
    fn lock(&self) -> std::sync::MutexGuard<'_, ControlState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the source to park between two reads and waits up to `within`
    /// for it to; false if it did not (it may be waiting on a full buffer).
    pub fn pause(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut state = self.lock();
        state.pause = true;
        while !state.parked {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        true
    }

    /// Where a parked source was: a reader that splits off it starts
    /// there. None when it did not park.
    pub fn positions(&self) -> Option<Vec<Position>> {
        let state = self.lock();
        if state.parked {
            state.positions.clone()
        } else {
            None
        }
    }

    /// Lets the source go on, with new routes if `output` is given.
    pub fn resume(&self, output: Option<Output>) {
        let mut state = self.lock();
        if output.is_some() {
            state.next_output = output;
        }
        state.pause = false;
        drop(state);
        self.changed.notify_all();
    }

    /// The source's side, between two reads: parks while asked to (saying
    /// where it is), and takes new routes when there are some.
    pub fn between_reads(&self, output: &mut Output, positions: impl FnOnce() -> Vec<Position>) {
        let mut state = self.lock();
        if state.pause {
            state.positions = Some(positions());
            state.parked = true;
            self.changed.notify_all();
            while state.pause {
                state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            state.parked = false;
            state.positions = None;
        }
        if let Some(next) = state.next_output.take() {
            *output = next;
        }
    }
}

/// Where a source's records go next.
#[derive(Debug)]
pub enum Route {
    /// A sink's buffer: index into [`Output`]'s buffers.
    Sink(usize),
    /// A transform, then on to its own routes. Each source has its own
    /// instance of a transform, and so its own throttle windows.
    Transform {
        stage: Stage,
        metrics: Arc<TransformMetrics>,
        next: Vec<Route>,
    },
}

/// Each buffer a read went to, with the sequence number after what it got:
/// the read is safe once every one [`Output::holds`] it.
pub type Handed = Vec<(Arc<Buffer>, u64)>;

/// A source's routes and the buffers they end in.
#[derive(Debug)]
pub struct Output {
    buffers: Vec<Arc<Buffer>>,
    routes: Vec<Route>,
    /// Set when the source stops: a wait for room in a full buffer ends.
    stopping: Arc<AtomicBool>,
    /// Records the buffers of the last emit left out because the source
    /// stopped while they waited for room.
    given_up: u64,
    /// Bytes a record took in the last encoding, to allocate the next at
    /// about the right size.
    bytes_per_record: usize,
    /// The records of the last emit that no transform took, for a source
    /// to parse into again ([`Output::take_spent`]).
    spent: Vec<LogRecord>,
}

impl Output {
    pub fn new(buffers: Vec<Arc<Buffer>>, routes: Vec<Route>) -> Output {
        Output {
            buffers,
            routes,
            stopping: Arc::new(AtomicBool::new(false)),
            given_up: 0,
            bytes_per_record: 128,
            spent: Vec::new(),
        }
    }

    /// Waits for room in a full buffer only until `stopping` is set (the
    /// source's stop flag).
    pub fn stopping_with(mut self, stopping: Arc<AtomicBool>) -> Output {
        self.stopping = stopping;
        self
    }

    /// Sends `records` down every route (waiting where a buffer blocks when
    /// full); returns each buffer with the sequence number after what it
    /// got. None when the source stopped while a buffer waited for room,
    /// and so the records did not all go in ([`Output::given_up`] says how
    /// many buffer places were left out): the source must not count them
    /// as handed on.
    pub fn emit(&mut self, records: Vec<LogRecord>, metrics: &SourceMetrics) -> Option<Handed> {
        self.given_up = 0;
        let mut routes = std::mem::take(&mut self.routes);
        self.spent = self.walk(&mut routes, records, metrics).unwrap_or_default();
        self.spent.retain(LogRecord::worth_reusing);
        self.routes = routes;
        (self.given_up == 0).then(|| {
            self.buffers
                .iter()
                .map(|b| (Arc::clone(b), b.next_seq()))
                .collect()
        })
    }

    /// Records the last [`Output::emit`] left out of a buffer because the
    /// source stopped (a record left out of two buffers counts twice).
    pub fn given_up(&self) -> u64 {
        self.given_up
    }

    /// Whether everything `buffer` got before sequence number `end` is
    /// safe: acknowledged by its sink, held on disk, or no longer the
    /// source's to keep (the sink was removed and its buffer closed).
    pub fn holds(buffer: &Buffer, end: u64) -> bool {
        buffer.is_durable() || buffer.is_closed() || buffer.acked_below() >= end
    }

    /// The records of the last [`Output::emit`] that went to sinks only
    /// (encoded, so done with): a source may parse into them again rather
    /// than allocate new ones.
    pub fn take_spent(&mut self) -> Vec<LogRecord> {
        std::mem::take(&mut self.spent)
    }

    /// Returns `records` if no transform took them.
    fn walk(
        &mut self,
        routes: &mut [Route],
        records: Vec<LogRecord>,
        metrics: &SourceMetrics,
    ) -> Option<Vec<LogRecord>> {
        // The sinks at this level share one encoding of the records.
        let sinks: Vec<usize> = routes
            .iter()
            .filter_map(|route| match route {
                Route::Sink(index) => Some(*index),
                Route::Transform { .. } => None,
            })
            .collect();
        if !sinks.is_empty() && !records.is_empty() {
            self.append(&sinks, &records, metrics);
        }
        // Each transform changes the records: the last takes them, the
        // others get copies.
        let transforms = routes.len() - sinks.len();
        let mut records = Some(records);
        let mut seen = 0;
        for route in routes.iter_mut() {
            let Route::Transform {
                stage,
                metrics: transform_metrics,
                next,
            } = route
            else {
                continue;
            };
            seen += 1;
            let mut mine = if seen == transforms {
                records.take().unwrap_or_default()
            } else {
                records.clone().unwrap_or_default()
            };
            stage.apply(&mut mine, transform_metrics);
            if !mine.is_empty() {
                self.walk(next, mine, metrics);
            }
        }
        records
    }

    /// Encodes `records` once, into one allocation that their payloads
    /// share, and appends them to the buffers `indexes`.
    fn append(&mut self, indexes: &[usize], records: &[LogRecord], metrics: &SourceMetrics) {
        let mut encoded = Vec::with_capacity(records.len() * self.bytes_per_record);
        let mut ends = Vec::with_capacity(records.len());
        for record in records {
            record.encode(&mut encoded);
            ends.push(encoded.len());
        }
        self.bytes_per_record = encoded.len().div_ceil(records.len().max(1)) + 8;
        // The buffers hold the whole allocation while they hold any record
        // of it: no more than a little spare room.
        if encoded.capacity() > encoded.len() + encoded.len() / 4 {
            encoded.shrink_to_fit();
        }
        let encoded = Bytes::from(encoded);
        let mut start = 0;
        let payloads: Vec<Bytes> = ends
            .into_iter()
            .map(|end| {
                let payload = encoded.slice(start..end);
                start = end;
                payload
            })
            .collect();
        for &index in indexes {
            match self.buffers[index].append_unless(&payloads, &self.stopping) {
                Ok(appended) => {
                    if appended.refused > 0 {
                        metrics.refused.add(appended.refused, 0);
                    }
                    self.given_up += appended.given_up;
                }
                Err(e) => {
                    metrics.refused.add(payloads.len() as u64, 0);
                    eprintln!("weir: appending to a buffer: {e}");
                }
            }
        }
    }
}
