//! Which records a sink has acknowledged: every record below the mark, and
//! ranges above it that came back out of order (concurrent delivery). The
//! mark moves up as soon as the ranges above it join up with it.

use std::collections::BTreeMap;
use std::ops::Range;

#[derive(Debug, Default)]
pub struct Acks {
    mark: u64,
    /// Acknowledged ranges above the mark, by start.
    above: BTreeMap<u64, u64>,
}

/// Where an acknowledged range fell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acked {
    /// Below the mark already: the records were dropped while in flight.
    BelowMark,
    /// Above the mark, kept until the ranges between join up.
    Above,
    /// The mark moved up.
    MarkMoved,
}

impl Acks {
    pub fn new(mark: u64) -> Acks {
        Acks {
            mark,
            above: BTreeMap::new(),
        }
    }

    /// Every record below this is acknowledged or dropped.
    pub fn mark(&self) -> u64 {
        self.mark
    }

    /// Notes that `range` (not empty, read once) was acknowledged. A range
    /// never straddles the mark: read batches never span a drop.
    pub fn ack(&mut self, range: Range<u64>) -> Acked {
        if range.end <= self.mark {
            return Acked::BelowMark;
        }
        if range.start > self.mark {
            self.above.insert(range.start, range.end);
            return Acked::Above;
        }
        self.advance_to(range.end);
        Acked::MarkMoved
    }

    /// Moves the mark up to `mark` (records dropped, or acknowledged), then
    /// on over the ranges above that join it.
    pub fn advance_to(&mut self, mark: u64) {
        let mut mark = self.mark.max(mark);
        // Ranges now below the mark are part of it.
        while let Some((&start, &end)) = self.above.first_key_value() {
            if start > mark {
                break;
            }
            self.above.remove(&start);
            mark = mark.max(end);
        }
        self.mark = mark;
    }

    /// Whether record `seq` was acknowledged (at or above the mark).
    pub fn is_acked(&self, seq: u64) -> bool {
        seq < self.mark
            || self
                .above
                .range(..=seq)
                .next_back()
                .is_some_and(|(_, end)| seq < *end)
    }
}

/// Notes an acknowledgement of `range` (`payload_bytes`) in `acks` and in
/// the account `stats`; returns whether the mark moved, so the buffer can
/// let go of what is below it.
pub fn account(
    acks: &mut Acks,
    stats: &mut super::BufferStats,
    range: Range<u64>,
    payload_bytes: u64,
) -> bool {
    let count = range.end - range.start;
    stats.acked.add(count, payload_bytes);
    match acks.ack(range) {
        Acked::BelowMark => {
            // Dropped (drop_oldest) while in flight, delivered after all.
            stats.dropped_oldest.sub(count, payload_bytes);
            false
        }
        Acked::Above => {
            stats.held.sub(count, payload_bytes);
            false
        }
        Acked::MarkMoved => {
            stats.held.sub(count, payload_bytes);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_moves_when_ranges_join_up() {
        let mut acks = Acks::new(0);
        assert_eq!(acks.ack(10..20), Acked::Above);
        assert_eq!(acks.ack(30..40), Acked::Above);
        assert_eq!(acks.mark(), 0);
        assert!(acks.is_acked(15) && !acks.is_acked(25));
        assert_eq!(acks.ack(0..10), Acked::MarkMoved);
        assert_eq!(acks.mark(), 20);
        assert_eq!(acks.ack(20..30), Acked::MarkMoved);
        assert_eq!(acks.mark(), 40);
        assert_eq!(acks.ack(5..8), Acked::BelowMark);
        // A drop moves the mark past ranges it swallows.
        acks.ack(50..60);
        acks.advance_to(55);
        assert_eq!(acks.mark(), 60);
    }
}
