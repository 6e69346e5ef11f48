//! One connection's heartbeat and rate limit, decided with injected time.
//!
//! Input: "a frame arrived at T", "a text message arrived at T", "time is now T".
//! Output: whether the message may be handled, what to do at a deadline (send a WebSocket
//! ping, or close a connection that fell silent), and when the next deadline is. The I/O
//! layer sleeps until [`ConnectionPolicy::poll_timeout`] and does what
//! [`ConnectionPolicy::handle_timeout`] says.
//!
//! Each connection task owns its policy instead of the [`Switchboard`](crate::Switchboard)
//! keeping them all: the policy applies before `hello` (when the switchboard does not know
//! the connection yet) and changes on every frame, WebSocket pongs included, which would
//! otherwise all take the switchboard's lock.

use std::time::{Duration, Instant};

use server_kit::TokenBucket;

use crate::{CLOSE_GOING_AWAY, CLOSE_POLICY};

/// The limits every connection gets, from the server's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How often the server pings; a connection from which no frame arrived for twice this
    /// long is closed. Zero counts as one millisecond.
    pub heartbeat: Duration,
    /// Text messages per second, sustained.
    pub rate_per_s: u32,
    /// Text messages in a burst (the bucket starts full).
    pub rate_burst: u32,
    /// How long after opening the connection must have said `hello`; it is closed (1008)
    /// otherwise, whatever else it sends. Pongs alone kept such a socket forever, and
    /// enough of them locked users out at `max_connections` (issue 16, item 4).
    pub hello_timeout: Duration,
}

/// What the I/O layer must do at a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send a WebSocket ping frame.
    Ping,
    /// Close the connection with this close frame: it fell silent.
    Close {
        /// The WebSocket close code.
        code: u16,
        /// The close frame's reason text.
        reason: &'static str,
    },
}

/// Whether a text message may be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Within the rate limit: handle it.
    Allowed,
    /// Over the rate limit: drop it and answer `rate_limited`.
    RateLimited,
}

/// The heartbeat and rate limit of one connection.
#[derive(Debug)]
pub struct ConnectionPolicy {
    heartbeat: Duration,
    /// When the last frame of any kind arrived (or the connection opened).
    last_seen: Instant,
    next_ping: Instant,
    bucket: TokenBucket,
    /// When the connection is closed unless `hello` came; `None` once it did.
    hello_by: Option<Instant>,
}

impl ConnectionPolicy {
    /// A connection opened at `now`: first ping one heartbeat later, a full bucket.
    pub fn new(limits: ConnectionLimits, now: Instant) -> Self {
        let heartbeat = limits.heartbeat.max(Duration::from_millis(1));
        Self {
            heartbeat,
            last_seen: now,
            next_ping: now + heartbeat,
            bucket: TokenBucket::new(limits.rate_per_s.into(), limits.rate_burst.into(), now),
            hello_by: Some(now + limits.hello_timeout),
        }
    }

    /// The connection said `hello` (and it was accepted): no more hello deadline.
    pub fn hello_received(&mut self) {
        self.hello_by = None;
    }

    /// A frame of any kind (text, binary, ping, pong, close) arrived at `now`: the client
    /// is alive.
    pub fn frame_received(&mut self, now: Instant) {
        self.last_seen = self.last_seen.max(now);
    }

    /// A text message arrived at `now`: takes one token from the bucket if there is one.
    pub fn admit_message(&mut self, now: Instant) -> Admission {
        if self.bucket.allow(now) {
            Admission::Allowed
        } else {
            Admission::RateLimited
        }
    }

    /// When [`Self::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Instant {
        let next = self.next_ping.min(self.idle_deadline());
        self.hello_by.map_or(next, |by| next.min(by))
    }

    /// Time is `now`: what is due, if anything. Pings go out once per heartbeat whatever the
    /// traffic; a connection silent for two heartbeats is closed (that comes first when both
    /// are due). Pings missed while the task could not run are not made up for.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Action> {
        if self.hello_by.is_some_and(|by| now >= by) {
            return Some(Action::Close {
                code: CLOSE_POLICY,
                reason: "no hello",
            });
        }
        if now >= self.idle_deadline() {
            return Some(Action::Close {
                code: CLOSE_GOING_AWAY,
                reason: "idle timeout",
            });
        }
        if now < self.next_ping {
            return None;
        }
        self.next_ping += self.heartbeat;
        if self.next_ping <= now {
            self.next_ping = now + self.heartbeat;
        }
        Some(Action::Ping)
    }

    /// When a connection that stays silent from now on is closed.
    fn idle_deadline(&self) -> Instant {
        self.last_seen + 2 * self.heartbeat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEARTBEAT: Duration = Duration::from_secs(10);

    const HELLO: Duration = Duration::from_secs(5);

    /// A connection opened at `t0` that has not said hello yet.
    fn fresh(t0: Instant) -> ConnectionPolicy {
        let limits = ConnectionLimits {
            heartbeat: HEARTBEAT,
            rate_per_s: 4,
            rate_burst: 10,
            hello_timeout: HELLO,
        };
        ConnectionPolicy::new(limits, t0)
    }

    /// A connection opened at `t0` that said hello at once.
    fn policy(t0: Instant) -> ConnectionPolicy {
        let mut p = fresh(t0);
        p.hello_received();
        p
    }

    #[test]
    fn a_connection_without_hello_is_closed_at_the_deadline_whatever_it_sends() {
        let t0 = server_kit::clock::now();
        let mut p = fresh(t0);
        // Pongs (any frame) keep it from the idle timeout, not from the hello deadline.
        for s in [1.0, 2.0, 3.0, 4.0, 4.9] {
            p.frame_received(t0 + secs(s));
        }
        assert_eq!(p.poll_timeout(), t0 + HELLO);
        assert_eq!(p.handle_timeout(t0 + secs(4.9)), None);
        assert_eq!(
            p.handle_timeout(t0 + HELLO),
            Some(Action::Close {
                code: CLOSE_POLICY,
                reason: "no hello"
            })
        );
        // Once hello came, the deadline is gone: the heartbeat rules alone.
        let mut p = fresh(t0);
        p.hello_received();
        assert_eq!(p.poll_timeout(), t0 + HEARTBEAT);
        assert_eq!(p.handle_timeout(t0 + HELLO), None);
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    const IDLE: Option<Action> = Some(Action::Close {
        code: CLOSE_GOING_AWAY,
        reason: "idle timeout",
    });

    /// Wakes at every deadline the policy asks for until `until`; returns what happened when.
    fn run(p: &mut ConnectionPolicy, t0: Instant, until: Instant) -> Vec<(Duration, Action)> {
        let mut done = Vec::new();
        while p.poll_timeout() <= until {
            let at = p.poll_timeout();
            let action = p.handle_timeout(at).expect("a deadline has something due");
            done.push((at - t0, action));
            if matches!(action, Action::Close { .. }) {
                break;
            }
        }
        done
    }

    #[test]
    fn a_silent_connection_is_pinged_then_closed_after_exactly_two_heartbeats() {
        let t0 = server_kit::clock::now();
        let mut p = policy(t0);
        assert_eq!(p.poll_timeout(), t0 + HEARTBEAT);
        assert_eq!(p.handle_timeout(t0 + HEARTBEAT - secs(0.001)), None);
        assert_eq!(
            run(&mut p, t0, t0 + secs(100.0)),
            [
                (secs(10.0), Action::Ping),
                (secs(20.0), IDLE.unwrap()), // the ping due at 20 s too: closing wins
            ]
        );
    }

    #[test]
    fn any_frame_counts_as_activity() {
        let t0 = server_kit::clock::now();
        let mut p = policy(t0);
        p.frame_received(t0 + secs(5.0));
        // Pings keep their cadence; the close moves to 2 heartbeats after the frame.
        assert_eq!(
            run(&mut p, t0, t0 + secs(100.0)),
            [
                (secs(10.0), Action::Ping),
                (secs(20.0), Action::Ping),
                (secs(25.0), IDLE.unwrap()),
            ]
        );
        // A frame stamped earlier than the last one does not move the deadline back.
        let mut p = policy(t0);
        p.frame_received(t0 + secs(5.0));
        p.frame_received(t0 + secs(1.0));
        assert_eq!(p.handle_timeout(t0 + secs(24.9)), Some(Action::Ping));
        assert_eq!(p.handle_timeout(t0 + secs(25.0)), IDLE);
    }

    #[test]
    fn a_client_that_answers_the_pings_stays() {
        let t0 = server_kit::clock::now();
        let mut p = policy(t0);
        for beat in 1..=100u32 {
            let at = p.poll_timeout();
            assert_eq!(at, t0 + HEARTBEAT * beat);
            assert_eq!(p.handle_timeout(at), Some(Action::Ping));
            // The pong arrives a little later.
            p.frame_received(at + secs(0.05));
        }
    }

    #[test]
    fn pings_missed_by_a_late_wake_up_are_not_made_up_for() {
        let t0 = server_kit::clock::now();
        let mut p = policy(t0);
        p.frame_received(t0 + secs(34.0));
        // The task did not run from 10 s to 35 s: one ping, and the next one a heartbeat on.
        assert_eq!(p.handle_timeout(t0 + secs(35.0)), Some(Action::Ping));
        assert_eq!(p.handle_timeout(t0 + secs(35.0)), None);
        assert_eq!(p.poll_timeout(), t0 + secs(45.0));
    }

    #[test]
    fn a_zero_heartbeat_does_not_spin() {
        let t0 = server_kit::clock::now();
        let limits = ConnectionLimits {
            heartbeat: Duration::ZERO,
            rate_per_s: 1,
            rate_burst: 1,
            hello_timeout: Duration::from_secs(10),
        };
        let p = ConnectionPolicy::new(limits, t0);
        assert!(p.poll_timeout() > t0);
    }

    #[test]
    fn burst_then_sustained_rate() {
        let t0 = server_kit::clock::now();
        let mut p = policy(t0);
        let admitted = |p: &mut ConnectionPolicy, at: Instant, n: usize| {
            (0..n)
                .filter(|_| p.admit_message(at) == Admission::Allowed)
                .count()
        };
        // The burst of 10, then nothing until the bucket refills.
        assert_eq!(admitted(&mut p, t0, 30), 10);
        assert_eq!(p.admit_message(t0 + secs(0.2)), Admission::RateLimited);
        // 4 a second: one every 250 ms.
        assert_eq!(admitted(&mut p, t0 + secs(0.25), 5), 1);
        assert_eq!(admitted(&mut p, t0 + secs(1.25), 10), 4);
        // A long rest refills the burst and no more.
        assert_eq!(admitted(&mut p, t0 + secs(3600.0), 100), 10);
    }

    #[test]
    fn rate_limited_messages_still_count_as_activity() {
        let t0 = server_kit::clock::now();
        let mut p = policy(t0);
        for i in 0..100 {
            let at = t0 + secs(f64::from(i) * 0.3);
            p.frame_received(at);
            p.admit_message(at);
        }
        assert_eq!(p.handle_timeout(t0 + secs(30.0)), Some(Action::Ping));
        assert_eq!(p.poll_timeout(), t0 + secs(40.0));
    }
}
