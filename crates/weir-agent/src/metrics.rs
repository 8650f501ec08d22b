//! The counters each component keeps for `/metrics` and `/health`: plain
//! atomics, written on the hot path without locks and read by the
//! operations endpoint.

use std::sync::atomic::{AtomicU64, Ordering};

use weir_gate::bucket::monotonic_ns;

/// One counter pair: records and their bytes.
#[derive(Debug, Default)]
pub struct Tally {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
}

impl Tally {
    pub fn add(&self, records: u64, bytes: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn get(&self) -> (u64, u64) {
        (
            self.records.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// What one sink's delivery has done.
#[derive(Debug, Default)]
pub struct SinkMetrics {
    /// Acknowledged by the destination.
    pub delivered: Tally,
    pub batches: AtomicU64,
    pub retries: AtomicU64,
    /// Permanently refused, or given up on, and written to the dead-letter file.
    pub dead_lettered: Tally,
    /// Taken by the destination in a batch, then refused by it (OTLP's
    /// `partial_success`): lost there, and not known which. Their bytes
    /// are the batch's average record's.
    pub refused_by_destination: Tally,
    /// Buffer payloads that were not records (damage the checksum missed).
    pub undecodable: Tally,
    /// Left in a memory buffer that a reload replaced with a disk buffer,
    /// when the move did not finish in time (the records are lost).
    pub left_by_reload: Tally,
    pub in_flight: AtomicU64,
    /// When the destination last acknowledged a batch (monotonic ns), or
    /// when delivery started.
    pub last_progress_ns: AtomicU64,
    /// Observed time (ns since the epoch) of the oldest record not yet
    /// acknowledged, 0 when none waits.
    pub oldest_unacked_observed_ns: AtomicU64,
}

impl SinkMetrics {
    pub fn new() -> SinkMetrics {
        let metrics = SinkMetrics::default();
        metrics.note_progress();
        metrics
    }

    pub fn note_progress(&self) {
        self.last_progress_ns
            .store(monotonic_ns(), Ordering::Relaxed);
    }

    /// Seconds since the last acknowledgement.
    pub fn seconds_without_progress(&self) -> f64 {
        let last = self.last_progress_ns.load(Ordering::Relaxed);
        monotonic_ns().saturating_sub(last) as f64 / 1e9
    }
}

/// What one source has read.
#[derive(Debug, Default)]
pub struct SourceMetrics {
    pub read: Tally,
    /// Lines that could not be parsed in the source's format, kept as they are.
    pub malformed: Tally,
    /// Records the buffers refused (full, drop_newest).
    pub refused: Tally,
    /// Datagrams received while the pipeline was behind, which a datagram
    /// listener cannot push back on.
    pub shed: Tally,
    /// Messages longer than the maximum, cut there (what was kept is read).
    pub cut: Tally,
    /// The bytes of cut messages past the maximum, passed by unread.
    pub cut_off_bytes: AtomicU64,
    /// Connections closed at once because the listener had its maximum open.
    pub refused_connections: AtomicU64,
    /// Connections closed after being quiet longer than the read timeout.
    pub timed_out_connections: AtomicU64,
    /// Streams closed because their framing was broken.
    pub broken_streams: AtomicU64,
    /// Connections closed, or requests refused, because the client failed
    /// authentication.
    pub failed_auth: AtomicU64,
    /// Messages or requests refused as too large: past `max_message`, or
    /// asking more memory, unpacked or decoded, than a request may take.
    pub oversized: AtomicU64,
    /// Requests answered 503 with `Retry-After`, taken nothing from: the
    /// pipeline was behind, or the source's requests under way held its
    /// `max_memory`. Their clients send them again.
    pub deferred: AtomicU64,
    /// What an HTTP source's requests under way hold of its `max_memory`
    /// now, in bytes (see `source::memory`).
    pub memory_held: AtomicU64,
}
