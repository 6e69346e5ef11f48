//! Checks a stream of numbered messages (or datagrams): each of `0..expected` must arrive
//! exactly once and in order.

/// What arrived of a numbered stream, and what was wrong with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SequenceCheck {
    /// The next number expected in order.
    next: u64,
    /// Numbers seen so far (a number below `next` that is not in here was skipped).
    seen: std::collections::BTreeSet<u64>,
    /// Everything that arrived, duplicates included.
    pub received: u64,
    /// Numbers that arrived a second (or later) time.
    pub duplicated: u64,
    /// Numbers that arrived after a higher one (late, but not duplicates).
    pub reordered: u64,
}

impl SequenceCheck {
    /// Records the arrival of number `n`.
    pub fn record(&mut self, n: u64) {
        self.received += 1;
        if !self.seen.insert(n) {
            self.duplicated += 1;
        } else if n < self.next {
            self.reordered += 1;
        } else {
            self.next = n + 1;
        }
    }

    /// How many of `0..expected` never arrived.
    pub fn lost(&self, expected: u64) -> u64 {
        expected - self.seen.range(..expected).count() as u64
    }

    /// Whether each of `0..expected` arrived (duplicates and reordering aside).
    pub fn complete(&self, expected: u64) -> bool {
        self.lost(expected) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(arrivals: &[u64]) -> SequenceCheck {
        let mut c = SequenceCheck::default();
        for &n in arrivals {
            c.record(n);
        }
        c
    }

    #[test]
    fn an_exact_stream_passes() {
        let c = check(&[0, 1, 2, 3]);
        assert!(c.complete(4));
        assert_eq!(
            (c.received, c.lost(4), c.duplicated, c.reordered),
            (4, 0, 0, 0)
        );
    }

    #[test]
    fn losses_duplicates_and_reordering_are_counted_apart() {
        let c = check(&[0, 2, 1, 2, 4]);
        assert_eq!(c.lost(5), 1, "3 never came");
        assert_eq!(c.duplicated, 1, "2 came twice");
        assert_eq!(c.reordered, 1, "1 came after 2");
        assert!(!c.complete(5));
        assert!(check(&[1, 0]).complete(2));
    }

    #[test]
    fn an_empty_stream_lost_everything() {
        assert_eq!(SequenceCheck::default().lost(3), 3);
        assert!(SequenceCheck::default().complete(0));
    }
}
