//! The file-writer thread: readers hand it full batches and get empty ones
//! back, so framing the next read overlaps with writing the previous one.
//!
//! Each outlet owns a fixed number of batches that circulate between its
//! sender and this thread; a sender that finds none free waits for one, which
//! bounds memory and passes a slow disk's back-pressure on to the reader
//! exactly as an inline write would. Disk *errors* never block: the sink
//! counts and drops.

use std::io;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::{self, JoinHandle};

use super::{Batch, LogSink, SinkReport};
use crate::stats::Stream;

/// Batches per outlet: one being filled, one being written, two queued.
const BATCHES_PER_OUTLET: usize = 4;

/// Where a reader (or a stage after it) sends its batches.
#[derive(Debug)]
pub struct BatchOutlet {
    full: SyncSender<Batch>,
    empty: Receiver<Batch>,
    /// Batches circulating through this outlet.
    count: usize,
    /// This outlet's index at the receiving end, where empties go back.
    origin: usize,
}

impl BatchOutlet {
    /// Hands over a full batch and returns an empty one in its place,
    /// waiting for one if all of this outlet's batches are in flight.
    pub fn exchange(&self, mut full: Batch) -> Batch {
        full.origin = self.origin;
        self.full
            .send(full)
            .expect("the file-writer thread outlives the readers");
        self.empty
            .recv()
            .expect("the file-writer thread outlives the readers")
    }

    /// Takes an empty batch to start with.
    pub fn first(&self) -> Batch {
        self.empty
            .recv()
            .expect("the file-writer thread outlives the readers")
    }

    /// Hands over the last batch, the one taken with [`BatchOutlet::first`]
    /// or returned by the last exchange, and waits until everything sent
    /// through this outlet has been taken in.
    pub fn close(self, mut last: Batch) {
        // Of this outlet's batches, the sender holds one.
        let mut owed = self.count - 1;
        if !last.is_empty() {
            last.origin = self.origin;
            self.full
                .send(last)
                .expect("the file-writer thread outlives the readers");
            owed += 1;
        }
        for _ in 0..owed {
            let _ = self.empty.recv();
        }
    }

    /// Closes an outlet whose sender holds none of its batches (it never
    /// took one with [`BatchOutlet::first`]), once everything sent through
    /// it has been taken in.
    pub fn close_holding_none(self) {
        for _ in 0..self.count {
            let _ = self.empty.recv();
        }
    }
}

/// The receiving end of one stream's batches, for a stage that sits between
/// a reader and the file writer (the ring).
#[derive(Debug)]
pub struct BatchInlet {
    full: Receiver<Batch>,
    empty: Sender<Batch>,
}

impl BatchInlet {
    /// Waits up to `timeout` for a full batch. `Err(true)`: the reader is
    /// gone and nothing more will come; `Err(false)`: timed out.
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Result<Batch, bool> {
        use std::sync::mpsc::RecvTimeoutError;
        self.full
            .recv_timeout(timeout)
            .map_err(|e| e == RecvTimeoutError::Disconnected)
    }

    /// Returns a batch, emptied, to the reader.
    pub fn give_back(&self, mut batch: Batch) {
        batch.clear();
        let _ = self.empty.send(batch);
    }
}

/// A private channel of `count` circulating batches for one stream.
pub fn batch_channel(
    stream: Stream,
    batch_capacity: usize,
    count: usize,
) -> (BatchOutlet, BatchInlet) {
    let (full_tx, full_rx) = sync_channel::<Batch>(count);
    let (empty_tx, empty_rx) = channel();
    for _ in 0..count {
        let _ = empty_tx.send(Batch::new(stream, batch_capacity));
    }
    (
        BatchOutlet {
            full: full_tx,
            empty: empty_rx,
            count,
            origin: 0,
        },
        BatchInlet {
            full: full_rx,
            empty: empty_tx,
        },
    )
}

/// The running file-writer thread.
#[derive(Debug)]
pub struct SinkWriter {
    thread: JoinHandle<SinkReport>,
}

impl SinkWriter {
    /// Moves `sink` onto its own thread and returns an outlet for each
    /// entry of `outlets`, which names the stream it carries. A stream may
    /// have more than one: all of them feed one queue, so what is sent
    /// through them is written in the order it was sent.
    pub fn start(
        sink: LogSink,
        outlets: &[Stream],
        batch_capacity: usize,
    ) -> io::Result<(SinkWriter, Vec<BatchOutlet>)> {
        let (full_tx, full_rx) = sync_channel::<Batch>(BATCHES_PER_OUTLET * outlets.len());
        let mut returns = Vec::new();
        let mut created = Vec::new();
        for (origin, &stream) in outlets.iter().enumerate() {
            let (empty_tx, empty_rx) = channel();
            for _ in 0..BATCHES_PER_OUTLET {
                let _ = empty_tx.send(Batch::new(stream, batch_capacity));
            }
            returns.push(empty_tx);
            created.push(BatchOutlet {
                full: full_tx.clone(),
                empty: empty_rx,
                count: BATCHES_PER_OUTLET,
                origin,
            });
        }
        let outlets = created;
        drop(full_tx);
        let thread = thread::Builder::new()
            .name("weir-writer".into())
            .spawn(move || write_until_closed(sink, full_rx, returns))?;
        Ok((SinkWriter { thread }, outlets))
    }

    /// Waits for every outlet to close and the sink to finish.
    pub fn finish(self) -> SinkReport {
        self.thread
            .join()
            .expect("the file-writer thread does not panic")
    }
}

fn write_until_closed(
    mut sink: LogSink,
    full: Receiver<Batch>,
    returns: Vec<Sender<Batch>>,
) -> SinkReport {
    for mut batch in full {
        sink.write_batch(&batch);
        batch.clear();
        if let Some(back) = returns.get(batch.origin) {
            // The sender may be gone already after its last batch.
            let _ = back.send(batch);
        }
    }
    sink.finish()
}
