//! The lab's network impairment, sans IO: what `tc netem` would do to one direction of a
//! host's traffic (loss, delay with jitter, reordering), decided per packet from the
//! packet's arrival time and a seeded generator. The `lab-shaper` program feeds it the
//! packets it reads from its TUN device and writes back what it releases; tests drive it
//! with made-up instants. docs/nat-lab.md ("An impaired network").
//!
//! ```
//! use std::time::{Duration, Instant};
//! use nat_lab::shaper::{Impairment, Shaper};
//!
//! let mut shaper = Shaper::new(Impairment::fixed_delay(Duration::from_millis(100)), 7);
//! let t0 = Instant::now();
//! shaper.handle_packet(b"one".to_vec(), t0);
//! assert_eq!(shaper.poll_timeout(), Some(t0 + Duration::from_millis(100)));
//! assert_eq!(shaper.poll_transmit(t0 + Duration::from_millis(99)), None);
//! assert_eq!(shaper.poll_transmit(t0 + Duration::from_millis(100)), Some(b"one".to_vec()));
//! ```
// The crate is harness code that reads the clock; this core must not (it is what the
// tests drive with made-up instants).
#![deny(clippy::disallowed_methods)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What happens to the packets of one direction: the knobs of `tc netem` the lab needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Impairment {
    /// The share of packets dropped at random, 0.0 to 1.0 (netem `loss`).
    pub loss: f64,
    /// The mean added delay (netem `delay`).
    pub delay: Duration,
    /// The delay varies uniformly within `delay ± jitter` (netem `delay D J`, uniform).
    /// Packets closer together than the jitter's spread overtake each other, as with
    /// netem.
    pub jitter: Duration,
    /// The share of packets sent at once, without the delay, overtaking the ones queued
    /// (netem `reorder`), 0.0 to 1.0.
    pub reorder: f64,
    /// How many packets may wait at a time; more are dropped (netem `limit`, 1000 by
    /// default there too).
    pub limit: usize,
}

impl Impairment {
    /// No loss, no reordering, the same delay for every packet.
    pub fn fixed_delay(delay: Duration) -> Impairment {
        Impairment {
            loss: 0.0,
            delay,
            jitter: Duration::ZERO,
            reorder: 0.0,
            limit: 1000,
        }
    }
}

/// What the shaper did to the packets of its direction so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets handed to [`Shaper::handle_packet`].
    pub received: u64,
    /// Dropped at random ([`Impairment::loss`]).
    pub dropped: u64,
    /// Dropped because [`Impairment::limit`] packets were waiting.
    pub overflowed: u64,
    /// Queued with a delay above zero.
    pub delayed: u64,
    /// Sent at once on purpose ([`Impairment::reorder`]).
    pub hurried: u64,
    /// Released after a packet that arrived later than it: out of order.
    pub reordered: u64,
    /// Released by [`Shaper::poll_transmit`].
    pub sent: u64,
}

impl fmt::Display for Counters {
    /// `received R, dropped D, overflowed O, delayed L, hurried H, reordered X, sent S`:
    /// the shaper's exit line, read back by [`Counters::from_line`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received {}, dropped {}, overflowed {}, delayed {}, hurried {}, reordered {}, sent {}",
            self.received,
            self.dropped,
            self.overflowed,
            self.delayed,
            self.hurried,
            self.reordered,
            self.sent
        )
    }
}

impl Counters {
    /// The counters from their [`Display`](fmt::Display) form; `None` if a field is
    /// missing or not a number.
    pub fn from_line(line: &str) -> Option<Counters> {
        let mut c = Counters::default();
        let mut seen = 0;
        for field in line.trim().split(", ") {
            let (name, value) = field.split_once(' ')?;
            let value: u64 = value.parse().ok()?;
            let slot = match name {
                "received" => &mut c.received,
                "dropped" => &mut c.dropped,
                "overflowed" => &mut c.overflowed,
                "delayed" => &mut c.delayed,
                "hurried" => &mut c.hurried,
                "reordered" => &mut c.reordered,
                "sent" => &mut c.sent,
                _ => return None,
            };
            *slot = value;
            seen += 1;
        }
        (seen == 7).then_some(c)
    }
}

/// A packet waiting for its release time; the heap's order is (release, arrival).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Waiting {
    release: Instant,
    /// The packet's arrival number: ties keep arrival order.
    seq: u64,
    packet: Vec<u8>,
}

/// One direction of the impairment: packets in with their arrival time, packets out when
/// their time has come.
pub struct Shaper {
    impairment: Impairment,
    rng: StdRng,
    queue: BinaryHeap<Reverse<Waiting>>,
    next_seq: u64,
    /// The highest arrival number released so far: a packet released below it is late.
    released_up_to: Option<u64>,
    counters: Counters,
}

impl Shaper {
    /// A shaper for `impairment` whose random choices follow from `seed`.
    pub fn new(impairment: Impairment, seed: u64) -> Shaper {
        Shaper {
            impairment,
            rng: StdRng::seed_from_u64(seed),
            queue: BinaryHeap::new(),
            next_seq: 0,
            released_up_to: None,
            counters: Counters::default(),
        }
    }

    /// A packet arrived at `now`: it is dropped, or waits for its release time (which may
    /// be `now`). Returns that time, or `None` if it was dropped.
    pub fn handle_packet(&mut self, packet: Vec<u8>, now: Instant) -> Option<Instant> {
        self.counters.received += 1;
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.rng.random_bool(self.impairment.loss.clamp(0.0, 1.0)) {
            self.counters.dropped += 1;
            return None;
        }
        if self.queue.len() >= self.impairment.limit {
            self.counters.overflowed += 1;
            return None;
        }
        let delay = self.delay();
        if delay.is_zero() {
            self.counters.hurried += u64::from(self.impairment.reorder > 0.0);
        } else {
            self.counters.delayed += 1;
        }
        let release = now + delay;
        self.queue.push(Reverse(Waiting {
            release,
            seq,
            packet,
        }));
        Some(release)
    }

    /// The delay of the next packet: none if hurried, else uniform in delay ± jitter.
    fn delay(&mut self) -> Duration {
        let Impairment {
            delay,
            jitter,
            reorder,
            ..
        } = self.impairment;
        if reorder > 0.0 && self.rng.random_bool(reorder.clamp(0.0, 1.0)) {
            return Duration::ZERO;
        }
        if jitter.is_zero() {
            return delay;
        }
        let low = delay.saturating_sub(jitter).as_nanos() as u64;
        let high = (delay + jitter).as_nanos() as u64;
        Duration::from_nanos(self.rng.random_range(low..=high))
    }

    /// The next packet whose release time is at or before `now`, if any.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.queue.peek()?.0.release > now {
            return None;
        }
        let Reverse(done) = self.queue.pop()?;
        match self.released_up_to {
            Some(highest) if done.seq < highest => self.counters.reordered += 1,
            _ => self.released_up_to = Some(done.seq),
        }
        self.counters.sent += 1;
        Some(done.packet)
    }

    /// When the next packet is due, if one waits.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queue.peek().map(|w| w.0.release)
    }

    /// How many packets wait.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// What the shaper did so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a base instant; every later one is made up
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn impaired(loss: f64, jitter_ms: u32, reorder: f64) -> Impairment {
        Impairment {
            loss,
            jitter: jitter_ms * MS,
            reorder,
            ..Impairment::fixed_delay(100 * MS)
        }
    }

    /// Feeds `n` packets numbered 0.. at one per `gap`, then drains everything: the
    /// numbers in release order, each with its delay.
    fn run(shaper: &mut Shaper, n: u32, gap: Duration) -> Vec<(u32, Duration)> {
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut arrived = Vec::new();
        for i in 0..n {
            let at = t0 + gap * i;
            drain(shaper, at, &arrived, &mut out);
            shaper.handle_packet(i.to_be_bytes().to_vec(), at);
            arrived.push(at);
            drain(shaper, at, &arrived, &mut out);
        }
        while let Some(due) = shaper.poll_timeout() {
            drain(shaper, due, &arrived, &mut out);
        }
        out
    }

    fn drain(
        shaper: &mut Shaper,
        now: Instant,
        arrived: &[Instant],
        out: &mut Vec<(u32, Duration)>,
    ) {
        while let Some(p) = shaper.poll_transmit(now) {
            let i = u32::from_be_bytes(p.try_into().unwrap());
            out.push((i, now - arrived[i as usize]));
        }
    }

    #[test]
    fn a_fixed_delay_keeps_the_order_and_holds_each_packet_exactly_that_long() {
        let mut shaper = Shaper::new(Impairment::fixed_delay(100 * MS), 1);
        let out = run(&mut shaper, 50, MS);
        assert_eq!(out.len(), 50);
        assert!(
            out.iter()
                .enumerate()
                .all(|(k, (i, d))| *i as usize == k && *d == 100 * MS)
        );
        let c = shaper.counters();
        assert_eq!(
            (c.received, c.delayed, c.sent, c.reordered, c.dropped),
            (50, 50, 50, 0, 0)
        );
    }

    #[test]
    fn nothing_is_released_before_its_time() {
        let mut shaper = Shaper::new(impaired(0.0, 30, 0.0), 2);
        let t0 = Instant::now();
        let release = shaper.handle_packet(vec![1], t0).unwrap();
        assert!(
            release >= t0 + 70 * MS && release <= t0 + 130 * MS,
            "{:?}",
            release - t0
        );
        assert_eq!(
            shaper.poll_transmit(release - Duration::from_nanos(1)),
            None
        );
        assert_eq!(shaper.poll_transmit(release), Some(vec![1]));
        assert_eq!(shaper.poll_timeout(), None);
    }

    #[test]
    fn jitter_spreads_the_delay_over_its_range_and_reorders_close_packets() {
        let mut shaper = Shaper::new(impaired(0.0, 30, 0.0), 3);
        let out = run(&mut shaper, 2000, MS);
        assert_eq!(out.len(), 2000);
        let delays: Vec<Duration> = out.iter().map(|(_, d)| *d).collect();
        assert!(delays.iter().all(|d| *d >= 70 * MS && *d <= 130 * MS));
        let (min, max) = (delays.iter().min().unwrap(), delays.iter().max().unwrap());
        assert!(*min < 72 * MS && *max > 128 * MS, "{min:?}..{max:?}");
        let mean = delays.iter().sum::<Duration>() / 2000;
        assert!(mean > 98 * MS && mean < 102 * MS, "{mean:?}");
        // 1 ms apart with ±30 ms: most packets are overtaken by a later one.
        let c = shaper.counters();
        assert!(c.reordered > 1000, "{c}");
        assert_eq!(c.reordered, late_packets(&out));
    }

    /// Packets released after a packet that arrived later than them.
    fn late_packets(out: &[(u32, Duration)]) -> u64 {
        let mut highest = None;
        let mut late = 0;
        for (i, _) in out {
            match highest {
                Some(h) if *i < h => late += 1,
                _ => highest = Some(*i),
            }
        }
        late
    }

    #[test]
    fn packets_further_apart_than_the_jitter_keep_their_order() {
        let mut shaper = Shaper::new(impaired(0.0, 30, 0.0), 4);
        let out = run(&mut shaper, 200, 61 * MS);
        assert!(out.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(shaper.counters().reordered, 0);
    }

    #[test]
    fn loss_drops_about_its_share_and_delays_the_rest() {
        let mut shaper = Shaper::new(impaired(0.05, 30, 0.0), 5);
        let out = run(&mut shaper, 10_000, MS / 10);
        let c = shaper.counters();
        assert!((400..600).contains(&c.dropped), "{c}");
        assert_eq!(c.received, 10_000);
        assert_eq!(c.sent, out.len() as u64);
        assert_eq!(c.sent + c.dropped + c.overflowed, c.received);
        assert_eq!(c.delayed, c.sent);
    }

    #[test]
    fn hurried_packets_overtake_the_queue() {
        let mut shaper = Shaper::new(impaired(0.0, 0, 0.25), 6);
        let out = run(&mut shaper, 1000, MS);
        let c = shaper.counters();
        assert!((200..300).contains(&c.hurried), "{c}");
        assert_eq!(c.delayed + c.hurried, 1000);
        let at_once = out.iter().filter(|(_, d)| d.is_zero()).count() as u64;
        assert_eq!(at_once, c.hurried);
        assert!(c.reordered > 0, "{c}");
    }

    #[test]
    fn a_full_queue_drops_what_comes_next() {
        let mut shaper = Shaper::new(
            Impairment {
                limit: 10,
                ..Impairment::fixed_delay(100 * MS)
            },
            7,
        );
        let t0 = Instant::now();
        for i in 0..15u8 {
            shaper.handle_packet(vec![i], t0);
        }
        assert_eq!(shaper.queued(), 10);
        assert_eq!(shaper.counters().overflowed, 5);
        assert_eq!(shaper.poll_transmit(t0 + 100 * MS), Some(vec![0]));
    }

    #[test]
    fn the_same_seed_makes_the_same_choices() {
        let choices = |seed| {
            let mut shaper = Shaper::new(impaired(0.05, 30, 0.1), seed);
            run(&mut shaper, 500, MS)
        };
        assert_eq!(choices(9), choices(9));
        assert_ne!(choices(9), choices(10));
    }

    #[test]
    fn counters_read_back_from_their_line() {
        let c = Counters {
            received: 7,
            dropped: 1,
            overflowed: 0,
            delayed: 5,
            hurried: 1,
            reordered: 2,
            sent: 6,
        };
        assert_eq!(Counters::from_line(&c.to_string()), Some(c));
        assert_eq!(Counters::from_line("received 1, dropped x"), None);
        assert_eq!(Counters::from_line("received 1"), None);
    }
}
