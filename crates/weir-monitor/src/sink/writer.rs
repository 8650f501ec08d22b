//! The file-writer thread: readers hand it full batches and get empty ones
//! back, so framing the next read overlaps with writing the previous one.
//!
//! Each stream owns a fixed number of batches that circulate between its
//! reader and this thread; a reader that finds none free waits for one, which
//! bounds memory and passes a slow disk's back-pressure on to the reader
//! exactly as an inline write would. Disk *errors* never block: the sink
//! counts and drops.

use std::io;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::{self, JoinHandle};

use super::{Batch, LogSink, SinkReport};
use crate::stats::{PerStream, Stream};

/// Batches per stream: one being filled, one being written, two queued.
const BATCHES_PER_STREAM: usize = 4;

/// Where a reader sends its batches.
#[derive(Debug)]
pub struct BatchOutlet {
    full: SyncSender<Batch>,
    empty: Receiver<Batch>,
    /// Batches circulating through this outlet.
    count: usize,
}

impl BatchOutlet {
    /// Hands over a full batch and returns an empty one in its place,
    /// waiting for one if all of this stream's batches are in flight.
    pub fn exchange(&self, full: Batch) -> Batch {
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

    /// Hands over the last batch and waits until everything this stream sent
    /// has been written.
    pub fn close(self, last: Batch) {
        self.full
            .send(last)
            .expect("the file-writer thread outlives the readers");
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
    /// Moves `sink` onto its own thread and returns an outlet per stream.
    pub fn start(
        sink: LogSink,
        streams: &[Stream],
        batch_capacity: usize,
    ) -> io::Result<(SinkWriter, Vec<BatchOutlet>)> {
        let (full_tx, full_rx) = sync_channel::<Batch>(BATCHES_PER_STREAM * streams.len());
        let mut returns: PerStream<Option<Sender<Batch>>> = PerStream::default();
        let mut outlets = Vec::new();
        for &stream in streams {
            let (empty_tx, empty_rx) = channel();
            for _ in 0..BATCHES_PER_STREAM {
                let _ = empty_tx.send(Batch::new(stream, batch_capacity));
            }
            *returns.get_mut(stream) = Some(empty_tx);
            outlets.push(BatchOutlet {
                full: full_tx.clone(),
                empty: empty_rx,
                count: BATCHES_PER_STREAM,
            });
        }
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
    returns: PerStream<Option<Sender<Batch>>>,
) -> SinkReport {
    for mut batch in full {
        sink.write_batch(&batch);
        batch.clear();
        if let Some(back) = returns.get(batch.stream) {
            // The reader may be gone already after its last batch.
            let _ = back.send(batch);
        }
    }
    sink.finish()
}
