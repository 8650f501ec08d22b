//! The token bucket: `rate` bytes per second flow in, up to `burst` are
//! kept, and passing output takes them out.
//!
//! Whole lines are the unit of admission. A line larger than the burst would
//! never fit, so it is admitted when the bucket is full and leaves it in
//! debt, which later output repays: over any window the bucket passes at
//! most `burst + rate × window` bytes, plus at most one line's excess over
//! the burst.

use std::time::Duration;

use crate::units::format_rate;

/// A rate and how much of it may be saved up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Bytes per second.
    pub rate: f64,
    /// Largest number of bytes that may pass at once after a quiet period.
    pub burst: u64,
}

impl Budget {
    /// A budget; `burst` defaults to a tenth of a second of `rate` (at
    /// least 4 KiB), so a full bucket adds at most 1 % to a 10 s average.
    pub fn new(rate: f64, burst: Option<u64>) -> Budget {
        let burst = burst.unwrap_or_else(|| ((rate / 10.0) as u64).max(4096));
        Budget {
            rate,
            burst: burst.max(1),
        }
    }

    /// `5MiB/s`, for markers and messages.
    pub fn describe(&self) -> String {
        format_rate(self.rate)
    }
}

/// Nanoseconds on CLOCK_MONOTONIC: the one clock of bucket arithmetic and
/// of the node state, the same in every process of the node.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A token bucket. Times are nanoseconds on one monotonic clock.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    budget: Budget,
    /// Bytes that may pass now; negative while repaying an oversized line.
    tokens: f64,
    last_refill: u64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(budget: Budget, now: u64) -> TokenBucket {
        TokenBucket {
            budget,
            tokens: budget.burst as f64,
            last_refill: now,
        }
    }

    pub fn budget(&self) -> Budget {
        self.budget
    }

    fn refill(&mut self, now: u64) {
        if now > self.last_refill {
            let earned = (now - self.last_refill) as f64 * self.budget.rate / 1e9;
            self.tokens = (self.tokens + earned).min(self.budget.burst as f64);
            self.last_refill = now;
        }
    }

    /// Changes the budget from `now` on; what was earned so far is kept, up
    /// to the new burst.
    pub fn set_budget(&mut self, budget: Budget, now: u64) {
        self.refill(now);
        self.budget = Budget {
            rate: budget.rate.max(f64::MIN_POSITIVE),
            burst: budget.burst.max(1),
        };
        self.tokens = self.tokens.min(self.budget.burst as f64);
    }

    /// Bytes that may pass now (negative while in debt).
    pub fn available(&mut self, now: u64) -> f64 {
        self.refill(now);
        self.tokens
    }

    /// Admits a line of `bytes` if the budget has room for it (a line larger
    /// than the burst needs a full bucket) and takes its bytes.
    pub fn try_admit(&mut self, bytes: u64, now: u64) -> bool {
        self.refill(now);
        let needed = bytes.min(self.budget.burst) as f64;
        if self.tokens >= needed {
            self.tokens -= bytes as f64;
            true
        } else {
            false
        }
    }

    /// Takes `bytes` whatever the balance: the rest of an admitted line, or
    /// output that has already been read under back-pressure.
    pub fn charge(&mut self, bytes: u64, now: u64) {
        self.refill(now);
        self.tokens -= bytes as f64;
    }

    /// Gives back `bytes` taken but not used, up to a full bucket.
    pub fn refund(&mut self, bytes: u64, now: u64) {
        self.refill(now);
        self.tokens = (self.tokens + bytes as f64).min(self.budget.burst as f64);
    }

    /// How long until `bytes` (at most a full bucket) may pass.
    pub fn wait_for(&mut self, bytes: u64, now: u64) -> Duration {
        self.refill(now);
        let needed = bytes.min(self.budget.burst) as f64;
        if self.tokens >= needed {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((needed - self.tokens) / self.budget.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn a_full_bucket_passes_the_burst_then_the_rate() {
        let mut bucket = TokenBucket::new(Budget::new(1000.0, Some(500)), 0);
        assert!(bucket.try_admit(500, 0));
        assert!(!bucket.try_admit(1, 0));
        assert!(bucket.try_admit(100, SEC / 10));
        assert!(!bucket.try_admit(100, SEC / 10));
        assert_eq!(bucket.wait_for(100, SEC / 10), Duration::from_millis(100));
    }

    #[test]
    fn an_oversized_line_needs_a_full_bucket_and_leaves_debt() {
        let mut bucket = TokenBucket::new(Budget::new(1000.0, Some(500)), 0);
        assert!(bucket.try_admit(2000, 0));
        assert_eq!(bucket.available(0), -1500.0);
        // 1.5 s to repay, then 0.5 s to fill the bucket for the next one.
        assert!(!bucket.try_admit(2000, 3 * SEC / 2));
        assert_eq!(
            bucket.wait_for(2000, 3 * SEC / 2),
            Duration::from_millis(500)
        );
        assert!(bucket.try_admit(2000, 2 * SEC));
    }

    proptest! {
        /// Over every window, admitted bytes stay within burst + rate × window.
        #[test]
        fn never_exceeds_the_budget_over_any_window(
            rate in 100.0f64..1e6,
            burst in 64u64..100_000,
            requests in proptest::collection::vec((0u64..50_000_000, 1u64..64), 1..300),
        ) {
            let mut bucket = TokenBucket::new(Budget::new(rate, Some(burst)), 0);
            let mut now = 0;
            let mut admitted = Vec::new();
            for (gap, bytes) in requests {
                now += gap;
                if bucket.try_admit(bytes, now) {
                    admitted.push((now, bytes));
                }
            }
            for i in 0..admitted.len() {
                let mut sum = 0;
                for &(t, bytes) in &admitted[i..] {
                    sum += bytes;
                    let window = (t - admitted[i].0) as f64 / 1e9;
                    prop_assert!(sum as f64 <= burst as f64 + rate * window + 1e-6,
                        "{sum} bytes in {window} s over budget {rate}/s burst {burst}");
                }
            }
        }

        /// A writer that stays within the rate is never refused.
        #[test]
        fn output_within_the_rate_is_never_throttled(
            rate in 100.0f64..1e6,
            line in 1u64..4096,
            count in 1usize..200,
        ) {
            let budget = Budget::new(rate, Some(line.max(4096)));
            let mut bucket = TokenBucket::new(budget, 0);
            let interval = (line as f64 / rate * 1e9).ceil() as u64;
            for i in 0..count as u64 {
                prop_assert!(bucket.try_admit(line, i * interval), "line {i} refused");
            }
        }
    }
}
