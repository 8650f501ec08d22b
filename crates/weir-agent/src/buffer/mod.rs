//! Buffers between the pipeline and each sink: records wait here until the
//! sink has acknowledged them.

mod acks;
pub mod disk;
pub mod memory;

use std::io;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use serde::Serialize;

/// What an append does when the buffer is at its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait for the sink to acknowledge enough.
    Block,
    /// Refuse the records being appended (counted).
    DropNewest,
    /// Drop the oldest records (whole segments on disk), counted, to make room.
    DropOldest,
}

/// Records and their payload bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub records: u64,
    pub bytes: u64,
}

impl Counts {
    fn add(&mut self, records: u64, bytes: u64) {
        self.records += records;
        self.bytes += bytes;
    }

    fn sub(&mut self, records: u64, bytes: u64) {
        self.records -= records;
        self.bytes -= bytes;
    }
}

/// The buffer's account since it was opened. It balances:
/// `recovered + appended = acked + dropped_oldest + cut_read + held`, where
/// `held` is what waits on disk; `dropped_newest` were never appended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BufferStats {
    /// Unacknowledged records found on disk at open.
    pub recovered: Counts,
    pub appended: Counts,
    pub acked: Counts,
    pub held: Counts,
    pub dropped_newest: Counts,
    pub dropped_oldest: Counts,
    /// Damaged records found by a read after open (bytes only: a damaged
    /// record's own length cannot be trusted; the records skipped are known
    /// from the sequence numbers).
    pub cut_read: Counts,
    /// Bytes cut at open, and the records that were lost with them where the
    /// numbering shows it.
    pub cut_at_open: Counts,
}

/// A record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    /// Shared with the buffer: reading a memory buffer copies nothing.
    pub payload: bytes::Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    #[error("the disk buffer at {dir} is in use by another process")]
    InUse { dir: PathBuf },
    #[error("a record of {len} bytes is over the buffer's limit of {max} bytes")]
    TooLarge { len: usize, max: u32 },
    #[error("the buffer is closed")]
    Closed,
    #[error("disk buffer {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What an append did with the records it was given.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub accepted: u64,
    /// Refused for room (`drop_newest`, or `drop_oldest` when deleting old
    /// segments cannot make room).
    pub refused: u64,
    /// Left out, the last ones given: the buffer was full, it waits for
    /// room (`block`), and the appender gave up waiting because it stops.
    pub given_up: u64,
}

/// A sink's buffer, in memory or on disk: one producer appends, one consumer
/// reads and acknowledges.
#[derive(Debug)]
pub enum Buffer {
    Memory(memory::MemoryBuffer),
    Disk(disk::DiskBuffer),
}

impl Buffer {
    /// Appends records in their binary form. A memory buffer keeps the
    /// `Bytes` themselves (slices of one allocation, as a source encodes a
    /// read's records together); a disk buffer writes them out.
    pub fn append(&self, payloads: &[bytes::Bytes]) -> Result<Appended, BufferError> {
        self.append_unless(payloads, &AtomicBool::new(false))
    }

    /// [`Buffer::append`], but a wait for room ends once `stopping` is
    /// set, leaving the rest out ([`Appended::given_up`]): a source that
    /// stops must not wait on a sink that may never take anything again.
    pub fn append_unless(
        &self,
        payloads: &[bytes::Bytes],
        stopping: &AtomicBool,
    ) -> Result<Appended, BufferError> {
        match self {
            Buffer::Memory(b) => b.append_unless(payloads, stopping),
            Buffer::Disk(b) => {
                let refs: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
                b.append_unless(&refs, stopping)
            }
        }
    }

    pub fn read(
        &self,
        max_records: usize,
        max_bytes: usize,
        wait: std::time::Duration,
    ) -> Result<Vec<Entry>, BufferError> {
        match self {
            Buffer::Memory(b) => b.read(max_records, max_bytes, wait),
            Buffer::Disk(b) => b.read(max_records, max_bytes, wait),
        }
    }

    pub fn ack(&self, range: std::ops::Range<u64>, payload_bytes: u64) -> Result<(), BufferError> {
        match self {
            Buffer::Memory(b) => b.ack(range, payload_bytes),
            Buffer::Disk(b) => b.ack(range, payload_bytes),
        }
    }

    pub fn stats(&self) -> BufferStats {
        match self {
            Buffer::Memory(b) => b.stats(),
            Buffer::Disk(b) => b.stats(),
        }
    }

    /// Whether a record appended is on disk, so a source may checkpoint past
    /// it before the sink acknowledges it.
    pub fn is_durable(&self) -> bool {
        matches!(self, Buffer::Disk(_))
    }

    /// One past the sequence number of the last record appended.
    pub fn next_seq(&self) -> u64 {
        match self {
            Buffer::Memory(b) => b.next_seq(),
            Buffer::Disk(b) => b.next_seq(),
        }
    }

    /// Every record below this sequence number has been acknowledged by the
    /// sink (or dropped, counted).
    pub fn acked_below(&self) -> u64 {
        match self {
            Buffer::Memory(b) => b.acked_below(),
            Buffer::Disk(b) => b.acked_below(),
        }
    }

    /// Takes new settings in place, keeping every record, if they are for
    /// the same kind of buffer; false if the kind changes (memory ↔ disk).
    pub fn reconfigure(&self, config: &crate::config::BufferConfig) -> bool {
        match self {
            Buffer::Memory(b) if !config.disk => {
                b.reconfigure(memory::MemoryConfig {
                    max_bytes: config.max_size,
                    when_full: config.when_full,
                });
                true
            }
            Buffer::Disk(b) if config.disk => {
                b.reconfigure(
                    config.max_size,
                    config.segment_size,
                    config.when_full,
                    config.fsync,
                );
                true
            }
            _ => false,
        }
    }

    /// Moves what a memory buffer holds into `disk` (a sink's new buffer,
    /// on a reload), oldest first, for at most `within`, and sends every
    /// append after, or waiting meanwhile, there too: a source still
    /// appending here (one blocked on this full buffer, say) loses nothing
    /// with it, and what it appends lands after what was moved. The disk
    /// buffer holds it durably, so a source may count it as held once this
    /// one is closed. Returns the records moved.
    pub fn move_to_disk(&self, disk: &std::sync::Arc<Buffer>, within: std::time::Duration) -> u64 {
        debug_assert!(disk.is_durable(), "moved to a buffer that keeps it");
        let Buffer::Memory(memory) = self else {
            return 0;
        };
        memory.seal();
        let moved = self.transfer_to(disk, within);
        memory.hand_on(std::sync::Arc::clone(disk));
        moved
    }

    /// Moves what `self` holds, oldest first, into `to`, for at most
    /// `within`; returns the records moved. What is moved is acknowledged
    /// here, so it is held once.
    fn transfer_to(&self, to: &Buffer, within: std::time::Duration) -> u64 {
        let deadline = std::time::Instant::now() + within;
        self.rewind();
        // A full `to` that blocks waits no longer than the deadline.
        let late = std::sync::Arc::new(AtomicBool::new(false));
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let timer = {
            let late = std::sync::Arc::clone(&late);
            std::thread::spawn(move || {
                if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    finished.recv_timeout(within)
                {
                    late.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            })
        };
        let mut moved = 0;
        while std::time::Instant::now() < deadline {
            let entries = match self.read(10_000, 8 << 20, std::time::Duration::ZERO) {
                Ok(entries) if !entries.is_empty() => entries,
                _ => break,
            };
            let payloads: Vec<bytes::Bytes> = entries.iter().map(|e| e.payload.clone()).collect();
            let Ok(appended) = to.append_unless(&payloads, &late) else {
                break;
            };
            // What `to` took, or refused and counted, is settled here;
            // what it gave up at the deadline (the last ones) stays, said
            // and counted by the caller.
            let settled = payloads.len() - appended.given_up as usize;
            let taken = &entries[..settled];
            if let (Some(first), Some(last)) = (taken.first(), taken.last()) {
                let bytes = taken.iter().map(|e| e.payload.len() as u64).sum();
                let _ = self.ack(first.seq..last.seq + 1, bytes);
                moved += appended.accepted;
            }
            if appended.given_up > 0 {
                break;
            }
        }
        drop(done);
        let _ = timer.join();
        moved
    }

    /// Reads again from the oldest record not acknowledged: for a new
    /// delivery taking over from one stopped with batches in flight.
    pub fn rewind(&self) {
        match self {
            Buffer::Memory(b) => b.rewind(),
            Buffer::Disk(b) => b.rewind(),
        }
    }

    /// Appends have ended (see [`Buffer::close`]).
    pub fn is_closed(&self) -> bool {
        match self {
            Buffer::Memory(b) => b.is_closed(),
            Buffer::Disk(b) => b.is_closed(),
        }
    }

    /// Ends appends; the reader gets what is left.
    pub fn close(&self) -> Result<(), BufferError> {
        match self {
            Buffer::Memory(b) => {
                b.close();
                Ok(())
            }
            Buffer::Disk(b) => b.close(),
        }
    }

    /// Syncs a disk buffer whose fsync interval has passed.
    pub fn sync_if_due(&self) -> Result<(), BufferError> {
        match self {
            Buffer::Memory(_) => Ok(()),
            Buffer::Disk(b) => b.sync_if_due(),
        }
    }
}
