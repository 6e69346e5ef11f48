//! Timers kept in deadline order, so a wake-up looks only at what is due.

use std::collections::BTreeSet;
use std::time::Instant;

/// An ordered set of `(deadline, key)`. Cancelling needs the deadline, which the owner
/// of the key keeps anyway.
#[derive(Debug)]
pub struct Deadlines<K: Ord + Copy> {
    set: BTreeSet<(Instant, K)>,
}

impl<K: Ord + Copy> Default for Deadlines<K> {
    fn default() -> Self {
        Self {
            set: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Copy> Deadlines<K> {
    pub fn insert(&mut self, at: Instant, key: K) {
        self.set.insert((at, key));
    }

    pub fn cancel(&mut self, at: Instant, key: K) {
        self.set.remove(&(at, key));
    }

    /// The earliest deadline, if any.
    pub fn next(&self) -> Option<Instant> {
        self.set.first().map(|(at, _)| *at)
    }

    /// Removes and returns one key whose deadline is at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<K> {
        match self.set.first() {
            Some((at, _)) if *at <= now => self.set.pop_first().map(|(_, k)| k),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_in_order_only_when_due() {
        let t0 = server_kit::clock::now();
        let mut d = Deadlines::default();
        d.insert(t0 + Duration::from_secs(2), 2);
        d.insert(t0 + Duration::from_secs(1), 1);
        d.insert(t0 + Duration::from_secs(3), 3);
        d.cancel(t0 + Duration::from_secs(3), 3);
        assert_eq!(d.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(d.pop_due(t0), None);
        assert_eq!(d.pop_due(t0 + Duration::from_secs(2)), Some(1));
        assert_eq!(d.pop_due(t0 + Duration::from_secs(2)), Some(2));
        assert_eq!(d.pop_due(t0 + Duration::from_secs(9)), None);
        assert_eq!(d.next(), None);
    }
}
