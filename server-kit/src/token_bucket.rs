//! A token bucket: `rate` tokens a second sustained, `burst` at once. The signaling server
//! limits messages per connection with it; the relay limits unauthenticated answers and
//! bytes per allocation.

use std::time::{Duration, Instant};

/// `rate` tokens a second up to `burst`; time is given, never read.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_s: u64, burst: u64, now: Instant) -> Self {
        Self {
            rate: rate_per_s as f64,
            burst: burst as f64,
            tokens: burst as f64,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn allow(&mut self, now: Instant) -> bool {
        self.allow_n(1, now)
    }

    /// Takes `n` tokens if there are that many.
    pub fn allow_n(&mut self, n: u64, now: Instant) -> bool {
        self.refill(now);
        let n = n as f64;
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// How long until one token is there (zero when one is there now). Takes nothing:
    /// a sender that must not be refused waits this long, then calls [`allow`](Self::allow).
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 || self.rate <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }

    /// Whether the bucket is full again at `now` (its owner has been quiet long enough to
    /// be forgotten).
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods)]
    fn burst_then_sustained_rate() {
        let t0 = Instant::now(); // test code: any instant will do
        let mut b = TokenBucket::new(50, 200, t0);
        assert_eq!((0..300).filter(|_| b.allow(t0)).count(), 200);
        // 100 ms later, 5 more tokens.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!((0..20).filter(|_| b.allow(t1)).count(), 5);
        // Never more than the burst, however long it rested.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!((0..1000).filter(|_| b.allow(t2)).count(), 200);
    }

    #[test]
    #[allow(clippy::disallowed_methods)]
    fn wait_says_when_the_next_token_is_there() {
        let t0 = Instant::now(); // test code: any instant will do
        let mut b = TokenBucket::new(10, 2, t0);
        assert_eq!(b.wait(t0), Duration::ZERO);
        assert!(b.allow(t0) && b.allow(t0));
        assert_eq!(b.wait(t0), Duration::from_millis(100));
        let t1 = t0 + Duration::from_millis(40);
        assert_eq!(b.wait(t1).as_millis(), 60);
        let t2 = t0 + Duration::from_millis(100);
        assert_eq!(b.wait(t2), Duration::ZERO);
        assert!(b.allow(t2));
    }
}
