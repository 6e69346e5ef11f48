//! Exponential backoff for the background tasks' retries: 100 ms doubling to 2 s.

use std::time::Duration;

/// The first retry delay.
pub(crate) const MIN: Duration = Duration::from_millis(100);
/// The longest retry delay.
pub(crate) const MAX: Duration = Duration::from_secs(2);

/// The delay before the next retry; `reset` after a success.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: MIN }
    }
}

impl Backoff {
    /// The delay to wait now; the one after it is twice as long, up to `MAX`.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(MAX);
        d
    }

    /// Back to `MIN`.
    pub(crate) fn reset(&mut self) {
        self.next = MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let ms: Vec<u128> = (0..7).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 2000, 2000]);
        b.reset();
        assert_eq!(b.next_delay(), MIN);
    }
}
