//! A token bucket in packets, with no knowledge of networking (after
//! Firecracker's rate limiter): storm control uses it, and so can link
//! impairments. Time is passed in, in milliseconds.

/// Admits up to `rate` events per second with bursts of up to `burst`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    rate_per_s: u64,
    burst: u64,
    /// Tokens scaled by 1000 so sub-token refills per millisecond add up.
    milli_tokens: u64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_s: u64, burst: u64, now_ms: u64) -> Self {
        let burst = burst.max(1);
        TokenBucket {
            rate_per_s,
            burst,
            milli_tokens: burst * 1000,
            last_ms: now_ms,
        }
    }

    pub fn rate(&self) -> u64 {
        self.rate_per_s
    }

    #[inline]
    fn refill(&mut self, now_ms: u64) {
        let dt = now_ms.saturating_sub(self.last_ms);
        if dt > 0 {
            self.last_ms = now_ms;
            // rate/s * dt ms = rate * dt milli-tokens
            self.milli_tokens =
                (self.milli_tokens + self.rate_per_s.saturating_mul(dt)).min(self.burst * 1000);
        }
    }

    /// Take one token if there is one.
    #[inline]
    pub fn admit(&mut self, now_ms: u64) -> bool {
        self.refill(now_ms);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let mut b = TokenBucket::new(100, 10, 0);
        let first: usize = (0..50).filter(|_| b.admit(0)).count();
        assert_eq!(first, 10, "burst size at t=0");
        // 100/s: after 50 ms, 5 more.
        let next: usize = (0..50).filter(|_| b.admit(50)).count();
        assert_eq!(next, 5);
        // A long pause refills only up to the burst.
        let later: usize = (0..50).filter(|_| b.admit(10_000)).count();
        assert_eq!(later, 10);
    }

    #[test]
    fn slow_rates_accumulate_fractions() {
        let mut b = TokenBucket::new(1, 1, 0);
        assert!(b.admit(0));
        assert!(!b.admit(500));
        assert!(b.admit(1000));
    }

    #[test]
    fn time_going_backwards_does_not_underflow() {
        let mut b = TokenBucket::new(10, 1, 1000);
        assert!(b.admit(1000));
        assert!(!b.admit(0));
    }
}
