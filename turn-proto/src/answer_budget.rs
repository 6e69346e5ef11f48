//! How many answers the relay gives to requests it cannot authenticate: one budget for all
//! sources together, and a smaller one per source IP, so that one flooding source spends its
//! own budget instead of everyone's (issue 16, item 6: at ~140k packets/s from one source, a
//! victim's Allocate was answered 5 times in 20).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use server_kit::TokenBucket;

/// The answer budgets; time is given, never read.
pub struct AnswerBudget {
    global: TokenBucket,
    per_source: HashMap<IpAddr, TokenBucket>,
    source_rate: u64,
    source_burst: u64,
    max_sources: usize,
}

impl AnswerBudget {
    /// `global_per_s` answers a second in all (burst the same); `source_per_s` a second and
    /// `source_burst` at once per source IP, tracking at most `max_sources` sources (beyond
    /// that, new sources share the global budget only: the map stays bounded whatever
    /// addresses an attacker spoofs).
    pub fn new(
        global_per_s: u64,
        source_per_s: u64,
        source_burst: u64,
        max_sources: usize,
        now: Instant,
    ) -> Self {
        Self {
            global: TokenBucket::new(global_per_s, global_per_s, now),
            per_source: HashMap::new(),
            source_rate: source_per_s,
            source_burst,
            max_sources,
        }
    }

    /// Takes an answer for `source` at `now`, from its own budget, then the global one.
    pub fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        let room = self.per_source.len() < self.max_sources;
        let (rate, burst) = (self.source_rate, self.source_burst);
        let own = match self.per_source.get_mut(&source) {
            Some(bucket) => bucket.allow(now),
            None if room => self
                .per_source
                .entry(source)
                .or_insert_with(|| TokenBucket::new(rate, burst, now))
                .allow(now),
            None => true,
        };
        own && self.global.allow(now)
    }

    /// Forgets the sources whose budget is whole again (quiet long enough).
    pub fn prune(&mut self, now: Instant) {
        self.per_source.retain(|_, bucket| !bucket.is_full(now));
    }

    /// Sources tracked now.
    #[cfg(test)]
    fn sources(&self) -> usize {
        self.per_source.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    #[allow(clippy::disallowed_methods)]
    fn a_flooding_source_spends_its_own_budget_not_everyones() {
        let t0 = Instant::now(); // test code: any instant will do
        let mut b = AnswerBudget::new(100, 5, 10, 2, t0);
        let (flood, victim, third) = (
            "192.0.2.1".parse().unwrap(),
            "192.0.2.2".parse().unwrap(),
            "192.0.2.3".parse().unwrap(),
        );
        assert_eq!((0..10_000).filter(|_| b.allow(flood, t0)).count(), 10);
        assert_eq!((0..20).filter(|_| b.allow(victim, t0)).count(), 10);
        // A third source finds the map full: the global budget alone (80 left).
        assert_eq!((0..200).filter(|_| b.allow(third, t0)).count(), 80);
        // Quiet sources are forgotten once their budget is whole again.
        let later = t0 + Duration::from_secs(2);
        b.prune(later);
        assert_eq!(b.sources(), 0);
    }
}
