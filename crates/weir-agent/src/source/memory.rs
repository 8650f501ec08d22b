//! The memory one listening source's requests may hold at once.
//!
//! Each request is bounded on its own (its body by `max_message`, its
//! decoded form by a multiple of that), but a source takes up to
//! `max_connections` of them at once, so the bound on each alone is no
//! bound on the source: 256 connections of 8 MiB bodies, unpacked and
//! decoded, would ask for far more than a node has. A request reserves
//! what it will take here, step by step, as it learns it: its body when it
//! starts reading, the body unpacked, the body decoded. When the others
//! hold too much for the next step, the request is answered 503 with
//! `Retry-After` (it is deferred, not lost: the client sends it again, as
//! it does when the pipeline is behind); when a request alone would take
//! more than the whole limit, 413. Nothing waits for room, so requests
//! holding part of the limit can never wait on each other. A request gives
//! back what it held once its records are handed to the pipeline, whose
//! own queues bound them from there.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::metrics::SourceMetrics;

/// The capacity a vector of `len` bytes in `capacity` takes to hold
/// `more`, as `Vec` grows (doubling): what to hold before it grows, then
/// `reserve_exact` to.
pub fn grown_capacity(len: usize, capacity: usize, more: usize) -> usize {
    let wanted = len.saturating_add(more);
    if wanted <= capacity {
        capacity
    } else {
        wanted.max(capacity.saturating_mul(2))
    }
}

/// The memory a source's requests may hold at once; what they hold is
/// the source's `memory_held`, so /metrics shows it.
#[derive(Debug)]
pub struct MemoryLimit {
    limit: usize,
    metrics: Arc<SourceMetrics>,
}

/// Why a reservation could not grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Short {
    /// Other requests hold the room: the request fits once they are done.
    Busy,
    /// The request alone would hold more than the limit: it never fits.
    TooLarge,
}

impl MemoryLimit {
    pub fn new(limit: usize, metrics: Arc<SourceMetrics>) -> Arc<MemoryLimit> {
        Arc::new(MemoryLimit { limit, metrics })
    }

    /// The most the source's requests may hold at once, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// What the requests under way hold now, in bytes.
    pub fn held(&self) -> usize {
        self.metrics.memory_held.load(Ordering::Relaxed) as usize
    }

    /// An empty reservation, for a request to grow.
    pub fn reservation(self: &Arc<MemoryLimit>) -> Reservation {
        Reservation {
            memory: Arc::clone(self),
            bytes: 0,
        }
    }

    /// Takes `bytes` more if they fit beside what is held.
    fn take(&self, bytes: usize) -> bool {
        let (bytes, limit) = (bytes as u64, self.limit as u64);
        self.metrics
            .memory_held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|&total| total <= limit)
            })
            .is_ok()
    }
}

/// What one request holds of its source's [`MemoryLimit`]; given back
/// when it is dropped.
#[derive(Debug)]
pub struct Reservation {
    memory: Arc<MemoryLimit>,
    bytes: usize,
}

impl Reservation {
    /// Holds `bytes` more, or says why it cannot.
    pub fn grow(&mut self, bytes: usize) -> Result<(), Short> {
        if self.bytes.saturating_add(bytes) > self.memory.limit {
            return Err(Short::TooLarge);
        }
        if !self.memory.take(bytes) {
            return Err(Short::Busy);
        }
        self.bytes += bytes;
        Ok(())
    }

    /// Gives back what it holds past `bytes`: a step's estimate was more
    /// than it came to, or what it held for is gone.
    pub fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            let given_back = self.bytes - bytes;
            self.memory
                .metrics
                .memory_held
                .fetch_sub(given_back as u64, Ordering::AcqRel);
            self.bytes = bytes;
        }
    }

    /// What this reservation holds, in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The most its source's requests may hold at once, in bytes.
    pub fn limit(&self) -> usize {
        self.memory.limit
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.memory
            .metrics
            .memory_held
            .fetch_sub(self.bytes as u64, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_share_the_limit_and_give_back_what_they_held() {
        let memory = MemoryLimit::new(100, Arc::default());
        let mut first = memory.reservation();
        let mut second = memory.reservation();
        assert_eq!(first.grow(60), Ok(()));
        assert_eq!(second.grow(30), Ok(()));
        // The room is the others': the second waits its turn.
        assert_eq!(second.grow(20), Err(Short::Busy));
        assert_eq!(second.bytes(), 30);
        assert_eq!(memory.held(), 90);
        // More than the whole limit never fits, however empty it is.
        assert_eq!(first.grow(41), Err(Short::TooLarge));
        drop(first);
        assert_eq!(memory.held(), 30);
        assert_eq!(second.grow(70), Ok(()));
        assert_eq!(memory.held(), 100);
        second.shrink_to(40);
        assert_eq!((second.bytes(), memory.held()), (40, 40));
        second.shrink_to(50);
        assert_eq!(second.bytes(), 40, "shrinking never grows");
        drop(second);
        assert_eq!(memory.held(), 0);
    }

    #[test]
    fn a_reservation_never_overflows_the_count() {
        let memory = MemoryLimit::new(usize::MAX, Arc::default());
        let mut one = memory.reservation();
        assert_eq!(one.grow(usize::MAX), Ok(()));
        let mut other = memory.reservation();
        assert_eq!(other.grow(1), Err(Short::Busy));
        drop(one);
        assert_eq!(other.grow(1), Ok(()));
    }
}
