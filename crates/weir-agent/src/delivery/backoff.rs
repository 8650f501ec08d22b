//! Exponential backoff with full jitter (AWS Architecture Blog, "Exponential
//! Backoff And Jitter"): the n-th retry waits a uniformly random time between
//! zero and `min(cap, initial × 2ⁿ)`, so senders that failed together do not
//! come back together.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// The wait before retry number `attempt` (0 for the first retry),
    /// drawing from `rng`; at least what the destination asked for.
    pub fn delay(&self, attempt: u32, asked: Option<Duration>, rng: &mut Rng) -> Duration {
        let ceiling = self
            .initial
            .saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .min(self.cap);
        let jittered = ceiling.mul_f64(rng.unit());
        jittered.max(asked.unwrap_or_default())
    }
}

/// A small xorshift generator: jitter needs spread, not secrecy.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn seeded() -> Rng {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid, writable timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let seed = (ts.tv_nsec as u64) ^ (u64::from(std::process::id()) << 32) ^ ts.tv_sec as u64;
        Rng(seed | 1)
    }

    /// A number in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_spread_below_it_and_honour_retry_after() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            cap: Duration::from_secs(5),
        };
        let mut rng = Rng::seeded();
        for attempt in 0..40 {
            let ceiling = Duration::from_millis(100)
                .saturating_mul(1 << attempt.min(31))
                .min(backoff.cap);
            let delays: Vec<Duration> = (0..200)
                .map(|_| backoff.delay(attempt, None, &mut rng))
                .collect();
            assert!(delays.iter().all(|d| *d <= ceiling), "attempt {attempt}");
            // Full jitter: spread over the whole range, not bunched at the top.
            assert!(delays.iter().any(|d| *d < ceiling / 2), "attempt {attempt}");
        }
        let asked = Some(Duration::from_secs(30));
        assert!(backoff.delay(0, asked, &mut rng) >= Duration::from_secs(30));
    }
}
