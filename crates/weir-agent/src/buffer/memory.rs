//! The memory buffer: records wait in a bounded queue until the sink has
//! acknowledged them. Nothing survives a restart; the sources' checkpoints,
//! which follow the sink's acknowledgements, are what make that safe.

use std::collections::VecDeque;

use bytes::Bytes;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::acks::{self, Acks};
use super::{Appended, BufferError, BufferStats, Entry, WhenFull};

/// Memory a held record takes beyond its payload (the queue slot and the
/// allocation), counted against the bound so it bounds memory, not payload.
const RECORD_OVERHEAD: u64 = 48;

#[derive(Debug, Clone, Copy)]
pub struct MemoryConfig {
    /// Bytes the held records may take, overhead included.
    pub max_bytes: u64,
    pub when_full: WhenFull,
}

#[derive(Debug)]
struct State {
    /// Records from the mark on, in order: `records[i]` has sequence number
    /// `first_seq + i`. Some may be acknowledged already, out of order.
    records: VecDeque<Bytes>,
    first_seq: u64,
    /// Memory taken, as counted against the bound.
    used: u64,
    next_read: u64,
    acks: Acks,
    stats: BufferStats,
    closed: bool,
    /// Its records are being moved to a disk buffer: appends wait.
    moving: bool,
    /// The disk buffer its records moved to: appends go there.
    successor: Option<Arc<super::Buffer>>,
}

/// A bounded queue of records for one sink; one producer, one consumer.
#[derive(Debug)]
pub struct MemoryBuffer {
    /// Changed in place by [`MemoryBuffer::reconfigure`].
    config: Mutex<MemoryConfig>,
    state: Mutex<State>,
    changed: Condvar,
}

fn cost(payload: &[u8]) -> u64 {
    payload.len() as u64 + RECORD_OVERHEAD
}

impl MemoryBuffer {
    pub fn new(config: MemoryConfig) -> MemoryBuffer {
        MemoryBuffer {
            config: Mutex::new(config),
            state: Mutex::new(State {
                records: VecDeque::new(),
                first_seq: 0,
                used: 0,
                next_read: 0,
                acks: Acks::new(0),
                stats: BufferStats::default(),
                closed: false,
                moving: false,
                successor: None,
            }),
            changed: Condvar::new(),
        }
    }

    pub fn stats(&self) -> BufferStats {
        self.lock().stats
    }

    fn config(&self) -> MemoryConfig {
        *self.config.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a new bound and policy, keeping every record held (a smaller
    /// bound only refuses or makes room on the next append).
    pub fn reconfigure(&self, config: MemoryConfig) {
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = config;
        self.changed.notify_all();
    }

    /// Appends `payloads`, as the policy for a full buffer allows. Under
    /// [`WhenFull::Block`] it waits for room.
    pub fn append(&self, payloads: &[Bytes]) -> Result<Appended, BufferError> {
        self.append_unless(payloads, &AtomicBool::new(false))
    }

    /// [`MemoryBuffer::append`], giving up a wait for room once `stopping`
    /// is set.
    pub fn append_unless(
        &self,
        payloads: &[Bytes],
        stopping: &AtomicBool,
    ) -> Result<Appended, BufferError> {
        // Read once per call, not per record; again after each wait.
        let mut config = self.config();
        let mut state = self.lock();
        let mut outcome = Appended::default();
        // The payloads share their source's read buffer: a kept one would
        // keep all of it, the refused ones' bytes too, and a full buffer
        // that keeps one record of each read would hold far more than its
        // bound. Under drop_newest (which never waits, so this look is
        // exact) the kept ones are copied out when some will be refused.
        // (Any policy refuses a payload larger than the whole buffer.)
        let refusing = payloads.iter().any(|p| cost(p) > config.max_bytes)
            || config.when_full == WhenFull::DropNewest
                && state.used + payloads.iter().map(|p| cost(p)).sum::<u64>() > config.max_bytes;
        'payloads: for (index, payload) in payloads.iter().enumerate() {
            loop {
                if let Some(successor) = state.successor.clone() {
                    drop(state);
                    let rest = &payloads[index..];
                    match successor.append_unless(rest, stopping) {
                        Ok(appended) => {
                            outcome.accepted += appended.accepted;
                            outcome.refused += appended.refused;
                            outcome.given_up += appended.given_up;
                        }
                        // Those before went in: only the rest is refused.
                        Err(e) => {
                            eprintln!("weir: appending to a buffer: {e}");
                            outcome.refused += rest.len() as u64;
                        }
                    }
                    self.changed.notify_all();
                    return Ok(outcome);
                }
                if state.closed {
                    return Err(BufferError::Closed);
                }
                if state.moving {
                    // After what is being moved, not into the room it left.
                    if stopping.load(Ordering::Relaxed) {
                        outcome.given_up = (payloads.len() - index) as u64;
                        break 'payloads;
                    }
                    state = self
                        .changed
                        .wait_timeout(state, Duration::from_millis(100))
                        .map(|(guard, _)| guard)
                        .unwrap_or_else(|e| e.into_inner().0);
                    continue;
                }
                let fits = state.used + cost(payload) <= config.max_bytes;
                if fits {
                    state.used += cost(payload);
                    state.records.push_back(if refusing {
                        Bytes::copy_from_slice(payload)
                    } else {
                        payload.clone()
                    });
                    state.stats.appended.add(1, payload.len() as u64);
                    state.stats.held.add(1, payload.len() as u64);
                    outcome.accepted += 1;
                    break;
                }
                let can_make_room = !state.records.is_empty();
                match config.when_full {
                    WhenFull::Block if can_make_room => {
                        if stopping.load(Ordering::Relaxed) {
                            outcome.given_up = (payloads.len() - index) as u64;
                            break 'payloads;
                        }
                        // The reader may be waiting for what was just added.
                        self.changed.notify_all();
                        state = self
                            .changed
                            .wait_timeout(state, Duration::from_millis(100))
                            .map(|(guard, _)| guard)
                            .unwrap_or_else(|e| e.into_inner().0);
                        config = self.config();
                        continue;
                    }
                    WhenFull::DropOldest if can_make_room => {
                        drop_oldest(&mut state);
                        continue;
                    }
                    // Refused: the policy says so, or the record is larger
                    // than the whole buffer.
                    _ => {
                        state.stats.dropped_newest.add(1, payload.len() as u64);
                        outcome.refused += 1;
                        break;
                    }
                }
            }
        }
        drop(state);
        self.changed.notify_all();
        Ok(outcome)
    }

    /// Reads up to `max_records` records (and about `max_bytes` of payload,
    /// at least one record) from where the last read stopped, waiting up to
    /// `wait` for the first. Empty: nothing came in time, or closed and read
    /// through.
    pub fn read(
        &self,
        max_records: usize,
        max_bytes: usize,
        wait: Duration,
    ) -> Result<Vec<Entry>, BufferError> {
        let deadline = Instant::now() + wait;
        let mut state = self.lock();
        loop {
            // Records below the mark were dropped meanwhile.
            state.next_read = state.next_read.max(state.first_seq);
            let end = state.first_seq + state.records.len() as u64;
            if state.next_read < end || state.closed {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        let mut entries = Vec::new();
        let mut bytes = 0;
        let first = (state.next_read - state.first_seq) as usize;
        for (index, payload) in state.records.iter().enumerate().skip(first) {
            if entries.len() >= max_records || (bytes >= max_bytes && !entries.is_empty()) {
                break;
            }
            bytes += payload.len();
            entries.push(Entry {
                seq: state.first_seq + index as u64,
                payload: payload.clone(),
            });
        }
        state.next_read += entries.len() as u64;
        Ok(entries)
    }

    /// Acknowledges the records `range` holding `payload_bytes`, in any order.
    pub fn ack(&self, range: Range<u64>, payload_bytes: u64) -> Result<(), BufferError> {
        if range.is_empty() {
            return Ok(());
        }
        let mut state = self.lock();
        let moved = {
            let state = &mut *state;
            acks::account(&mut state.acks, &mut state.stats, range, payload_bytes)
        };
        if !moved {
            return Ok(());
        }
        release_below_mark(&mut state);
        drop(state);
        self.changed.notify_all();
        Ok(())
    }

    pub fn next_seq(&self) -> u64 {
        let state = self.lock();
        state.first_seq + state.records.len() as u64
    }

    pub fn acked_below(&self) -> u64 {
        self.lock().acks.mark()
    }

    pub fn rewind(&self) {
        let mut state = self.lock();
        state.next_read = state.first_seq;
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Ends appends; readers get what is left, then empty reads.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// Holds appends back while its records move elsewhere
    /// ([`super::Buffer::move_to_disk`]).
    pub fn seal(&self) {
        self.lock().moving = true;
    }

    /// Sends the appends held back, and every one after, to `successor`,
    /// and ends reads.
    pub fn hand_on(&self, successor: Arc<super::Buffer>) {
        let mut state = self.lock();
        state.successor = Some(successor);
        state.moving = false;
        state.closed = true;
        drop(state);
        self.changed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Drops the oldest record, counting it unless it was acknowledged already.
fn drop_oldest(state: &mut State) {
    let seq = state.first_seq;
    let payload = state.records.pop_front().expect("callers check");
    state.first_seq += 1;
    state.used -= cost(&payload);
    if !state.acks.is_acked(seq) {
        state.stats.dropped_oldest.add(1, payload.len() as u64);
        state.stats.held.sub(1, payload.len() as u64);
    }
    state.acks.advance_to(seq + 1);
    release_below_mark(state);
}

/// Frees the records below the mark.
fn release_below_mark(state: &mut State) {
    while state.first_seq < state.acks.mark() {
        let Some(payload) = state.records.pop_front() else {
            break;
        };
        state.used -= cost(&payload);
        state.first_seq += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::Counts;

    fn buffer(max_bytes: u64, when_full: WhenFull) -> MemoryBuffer {
        MemoryBuffer::new(MemoryConfig {
            max_bytes,
            when_full,
        })
    }

    fn payloads(range: Range<u64>) -> Vec<Vec<u8>> {
        range
            .map(|i| format!("record {i:04}").into_bytes())
            .collect()
    }

    fn append(buffer: &MemoryBuffer, payloads: &[Vec<u8>]) -> Appended {
        let shared: Vec<Bytes> = payloads.iter().map(|p| Bytes::from(p.clone())).collect();
        buffer.append(&shared).unwrap()
    }

    fn balanced(stats: &BufferStats) -> bool {
        stats.appended.records
            == stats.acked.records + stats.dropped_oldest.records + stats.held.records
            && stats.appended.bytes
                == stats.acked.bytes + stats.dropped_oldest.bytes + stats.held.bytes
    }

    #[test]
    fn records_come_out_in_order_and_leave_when_acknowledged() {
        let buffer = buffer(1 << 20, WhenFull::Block);
        append(&buffer, &payloads(0..10));
        let first = buffer.read(4, usize::MAX, Duration::ZERO).unwrap();
        let second = buffer.read(100, usize::MAX, Duration::ZERO).unwrap();
        assert_eq!(
            first.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        assert_eq!(second.len(), 6);
        assert_eq!(&second[0].payload[..], b"record 0004");
        buffer.ack(4..10, 6 * 11).unwrap();
        assert_eq!(buffer.stats().held.records, 4, "0..4 still waits");
        buffer.ack(0..4, 4 * 11).unwrap();
        let stats = buffer.stats();
        assert_eq!(stats.held, Counts::default());
        assert!(balanced(&stats));
        assert_eq!(buffer.lock().used, 0, "the memory is given back");
    }

    #[test]
    fn drop_oldest_keeps_the_newest_and_counts_the_rest() {
        // Room for 10 records of 11 bytes.
        let buffer = buffer(10 * (11 + RECORD_OVERHEAD), WhenFull::DropOldest);
        let in_flight = {
            append(&buffer, &payloads(0..3));
            buffer.read(3, usize::MAX, Duration::ZERO).unwrap()
        };
        append(&buffer, &payloads(3..25));
        let stats = buffer.stats();
        assert_eq!(stats.dropped_oldest.records, 15);
        let rest = buffer.read(100, usize::MAX, Duration::ZERO).unwrap();
        assert_eq!(rest.first().map(|e| e.seq), Some(15));
        assert_eq!(rest.len(), 10);
        assert!(balanced(&stats));
        // The batch that was in flight is delivered after all.
        buffer
            .ack(0..3, in_flight.iter().map(|e| e.payload.len() as u64).sum())
            .unwrap();
        let stats = buffer.stats();
        assert_eq!(stats.dropped_oldest.records, 12);
        assert!(balanced(&stats));
    }

    #[test]
    fn drop_newest_refuses_what_does_not_fit() {
        let buffer = buffer(5 * (11 + RECORD_OVERHEAD), WhenFull::DropNewest);
        let outcome = append(&buffer, &payloads(0..8));
        assert_eq!((outcome.accepted, outcome.refused), (5, 3));
        assert_eq!(
            buffer.stats().dropped_newest,
            Counts {
                records: 3,
                bytes: 33
            }
        );
    }

    #[test]
    fn what_drop_newest_keeps_does_not_hold_on_to_what_it_refused() {
        let buffer = buffer(2 * (11 + RECORD_OVERHEAD), WhenFull::DropNewest);
        // Eight payloads cut from one read's buffer, as a source hands them.
        let read = Bytes::from(payloads(0..8).concat());
        let shared: Vec<Bytes> = (0..8).map(|i| read.slice(i * 11..(i + 1) * 11)).collect();
        let outcome = buffer.append(&shared).unwrap();
        assert_eq!((outcome.accepted, outcome.refused), (2, 6));
        let held = buffer.read(10, usize::MAX, Duration::ZERO).unwrap();
        let whole = read.as_ptr_range();
        for entry in &held {
            assert!(
                !whole.contains(&entry.payload.as_ptr()),
                "a copy, not a slice"
            );
        }
        assert_eq!(held[1].payload, shared[1]);
    }

    #[test]
    fn block_waits_until_the_reader_acknowledges() {
        let buffer = std::sync::Arc::new(buffer(4 * (11 + RECORD_OVERHEAD), WhenFull::Block));
        let writer = {
            let buffer = std::sync::Arc::clone(&buffer);
            std::thread::spawn(move || append(&buffer, &payloads(0..50)))
        };
        let mut seen = Vec::new();
        while seen.len() < 50 {
            let batch = buffer.read(3, usize::MAX, Duration::from_secs(5)).unwrap();
            assert!(!batch.is_empty(), "stalled at {}", seen.len());
            let bytes = batch.iter().map(|e| e.payload.len() as u64).sum();
            buffer
                .ack(batch[0].seq..batch[batch.len() - 1].seq + 1, bytes)
                .unwrap();
            seen.extend(batch.iter().map(|e| e.seq));
        }
        assert_eq!(writer.join().unwrap().accepted, 50);
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn a_wait_for_room_ends_when_the_appender_stops() {
        let buffer = std::sync::Arc::new(buffer(4 * (11 + RECORD_OVERHEAD), WhenFull::Block));
        let stopping = std::sync::Arc::new(AtomicBool::new(false));
        let writer = {
            let (buffer, stopping) = (buffer.clone(), stopping.clone());
            std::thread::spawn(move || {
                let shared: Vec<Bytes> = payloads(0..10).into_iter().map(Bytes::from).collect();
                buffer.append_unless(&shared, &stopping).unwrap()
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(!writer.is_finished(), "it waits for room");
        stopping.store(true, Ordering::Relaxed);
        let appended = writer.join().unwrap();
        assert_eq!((appended.accepted, appended.given_up), (4, 6));
        assert_eq!(buffer.stats().held.records, 4);
        assert!(balanced(&buffer.stats()));
    }
}

#[cfg(test)]
mod moving {
    use super::*;
    use crate::buffer::Buffer;
    use crate::buffer::disk::{DiskBuffer, DiskConfig};

    #[test]
    fn an_append_blocked_while_the_records_move_to_disk_lands_after_them() {
        let dir = std::env::temp_dir().join(format!("weir-move-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let memory = Arc::new(Buffer::Memory(MemoryBuffer::new(MemoryConfig {
            max_bytes: 10 * (RECORD_OVERHEAD + 8),
            when_full: WhenFull::Block,
        })));
        let payload = |n: u64| Bytes::from(format!("rec {n:04}"));
        let first: Vec<Bytes> = (0..10).map(payload).collect();
        assert_eq!(memory.append(&first).unwrap().accepted, 10);
        // A source blocked on the full buffer with ten more.
        let appender = {
            let memory = Arc::clone(&memory);
            std::thread::spawn(move || {
                let more: Vec<Bytes> = (10..20).map(payload).collect();
                memory.append(&more).unwrap()
            })
        };
        // Time for it to block (the result is the same if it has not yet:
        // it then waits for the move instead).
        std::thread::sleep(Duration::from_millis(300));
        let (disk, _) = DiskBuffer::open(&dir, DiskConfig::default()).unwrap();
        let disk = Arc::new(Buffer::Disk(disk));
        assert_eq!(memory.move_to_disk(&disk, Duration::from_secs(5)), 10);
        let appended = appender.join().unwrap();
        assert_eq!(appended.accepted, 10, "{appended:?}");
        assert!(memory.is_closed());
        // Every record once, in order, on disk; nothing left behind.
        let mut got: Vec<Bytes> = Vec::new();
        loop {
            let batch = disk.read(100, usize::MAX, Duration::ZERO).unwrap();
            if batch.is_empty() {
                break;
            }
            got.extend(batch.into_iter().map(|e| e.payload));
        }
        assert_eq!(got, (0..20).map(payload).collect::<Vec<_>>());
        assert_eq!(memory.stats().held.records, 0);
        // And so does every append after.
        memory.append(&[payload(20)]).unwrap();
        assert_eq!(disk.next_seq(), 21);
        drop(disk);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_move_into_a_full_blocking_disk_buffer_ends_at_its_deadline() {
        let dir = std::env::temp_dir().join(format!("weir-move-late-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let memory = Buffer::Memory(MemoryBuffer::new(MemoryConfig {
            max_bytes: 1 << 20,
            when_full: WhenFull::Block,
        }));
        let records: Vec<Bytes> = (0..200)
            .map(|n| Bytes::from(format!("record {n:04} {}", "x".repeat(40))))
            .collect();
        memory.append(&records).unwrap();
        // Room for a few records, and nobody reading it.
        let config = DiskConfig {
            max_bytes: 1024,
            segment_bytes: 512,
            when_full: WhenFull::Block,
            ..DiskConfig::default()
        };
        let (disk, _) = DiskBuffer::open(&dir, config).unwrap();
        let disk = Arc::new(Buffer::Disk(disk));
        let started = Instant::now();
        let moved = memory.move_to_disk(&disk, Duration::from_millis(300));
        assert!(started.elapsed() < Duration::from_secs(5), "it waited on");
        assert!(moved > 0 && moved < 200, "{moved}");
        // What did not go is still held here, for the caller to count.
        assert_eq!(memory.stats().held.records, 200 - moved);
        assert_eq!(disk.stats().held.records, moved);
        drop(disk);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
