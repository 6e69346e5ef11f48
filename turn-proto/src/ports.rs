//! The relay port range: which ports are taken, and a random free one on request.

use std::collections::HashSet;
use std::ops::RangeInclusive;

use rand::Rng;
use rand::rngs::StdRng;

/// The relay ports in use, within the configured range.
pub struct PortPool {
    range: RangeInclusive<u16>,
    used: HashSet<u16>,
}

impl PortPool {
    /// A pool of the ports in `range`, all free.
    pub fn new(range: RangeInclusive<u16>) -> Self {
        Self {
            range,
            used: HashSet::new(),
        }
    }

    /// A free port (an even one with `even`), chosen at random so relay addresses are
    /// not guessable; `None` when the range is full.
    pub fn take(&mut self, rng: &mut StdRng, even: bool) -> Option<u16> {
        let (lo, hi) = (*self.range.start(), *self.range.end());
        let size = u32::from(hi - lo) + 1;
        if self.used.len() as u32 >= size {
            return None;
        }
        // Random probes first, then a scan from a random start (bounded either way).
        for _ in 0..32 {
            let port = rng.random_range(lo..=hi);
            if self.fits(port, even) {
                self.used.insert(port);
                return Some(port);
            }
        }
        let start = rng.random_range(0..size);
        (0..size)
            .map(|i| lo + ((start + i) % size) as u16)
            .find(|p| self.fits(*p, even))
            .inspect(|p| {
                self.used.insert(*p);
            })
    }

    /// Frees `port` (its allocation is gone).
    pub fn release(&mut self, port: u16) {
        self.used.remove(&port);
    }

    fn fits(&self, port: u16, even: bool) -> bool {
        !self.used.contains(&port) && (!even || port.is_multiple_of(2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn takes_every_port_once_then_none() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut pool = PortPool::new(50_000..=50_009);
        let mut got: Vec<u16> = (0..10)
            .map(|_| pool.take(&mut rng, false).unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, (50_000..=50_009).collect::<Vec<_>>());
        assert_eq!(pool.take(&mut rng, false), None);
        pool.release(50_004);
        assert_eq!(pool.take(&mut rng, true), Some(50_004));
    }

    #[test]
    fn even_ports_only_when_asked() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut pool = PortPool::new(50_000..=50_003);
        assert_eq!(pool.take(&mut rng, true).map(|p| p % 2), Some(0));
        assert_eq!(pool.take(&mut rng, true).map(|p| p % 2), Some(0));
        assert_eq!(pool.take(&mut rng, true), None);
        assert!(pool.take(&mut rng, false).is_some());
    }
}
