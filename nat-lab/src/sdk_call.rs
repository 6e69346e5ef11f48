//! A call between two of the SDK's example programs in the lab, and what it shows: each
//! side's selected pair, the setup time, the bytes the relay carried.

use std::fmt;
use std::time::{Duration, Instant};

use test_support::example::{Example, first_rtp, receives_rtp};

use crate::lab::NatLab;

/// How long a call may take from its start until both sides receive media; past it the
/// call counts as not connected.
pub const CONNECT: Duration = Duration::from_secs(30);

/// One side's selected candidate pair, as its status line (or the browser's getStats)
/// shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    /// The local candidate type: `host`, `srflx`, `prflx` or `relay`.
    pub local: String,
    pub remote: String,
    /// How this side reaches its relay (`udp`, `tcp`, `tls`) when `local` is `relay`.
    pub relay: Option<String>,
}

impl Pair {
    /// Whether local and remote types are among the ones given.
    pub fn is(&self, local: &[&str], remote: &[&str]) -> bool {
        local.contains(&self.local.as_str()) && remote.contains(&self.remote.as_str())
    }

    pub fn uses_relay(&self) -> bool {
        self.local == "relay" || self.remote == "relay"
    }

    /// The pair from a status line of the examples: `path <local>/<remote>[, relay <t>], …`.
    pub fn from_status(line: &str) -> Option<Pair> {
        let mut fields = line.strip_prefix("path ")?.split(", ");
        let (local, remote) = fields.next()?.split_once('/')?;
        let relay = fields
            .next()
            .and_then(|f| f.strip_prefix("relay "))
            .map(str::to_owned);
        Some(Pair {
            local: local.to_owned(),
            remote: remote.to_owned(),
            relay,
        })
    }
}

impl fmt::Display for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.local, self.remote)?;
        match &self.relay {
            Some(t) => write!(f, " ({t})"),
            None => Ok(()),
        }
    }
}

#[derive(Debug)]
pub struct CallOutcome {
    /// bob's (the answerer's) selected pair.
    pub bob: Pair,
    /// alice's (the caller's) selected pair.
    pub alice: Pair,
    /// From starting the caller's program until both sides have their first RTP packet.
    pub setup: Duration,
    /// Bytes the relay carried once both sides were receiving media, over ~2 s.
    pub relayed_in_call: u64,
}

impl CallOutcome {
    pub fn uses_relay(&self) -> bool {
        self.bob.uses_relay() || self.alice.uses_relay()
    }
}

impl NatLab {
    /// One call: the `answer` example as bob in `answer_ns`, the `call` example as alice
    /// in `call_ns`. Waits until both receive RTP (at most [`CONNECT`]), measures what the
    /// relay carries over one more status period, hangs up. Panics if any of it fails.
    pub async fn call(
        &self,
        answer_ns: &str,
        answer_args: &[&str],
        call_ns: &str,
        call_args: &[&str],
    ) -> CallOutcome {
        let n = self.next_call();
        let (bob_name, alice_name) = (format!("bob{n}"), format!("alice{n}"));
        let mut args = vec!["--once"];
        args.extend_from_slice(answer_args);
        let bob = self.spawn_peer(answer_ns, &self.programs().answer, &bob_name, &args);
        bob.wait_line("bob to sign in", |l| l.contains("waiting for calls"))
            .await;
        let mut args = vec!["--to", bob_name.as_str()];
        args.extend_from_slice(call_args);
        let start = Instant::now();
        let alice = self.spawn_peer(call_ns, &self.programs().call, &alice_name, &args);
        let media = media_both_ways(&bob, &alice);
        let Ok(media) = tokio::time::timeout(CONNECT, media).await else {
            let (a, b) = (last_path(&alice), last_path(&bob));
            panic!("no media both ways within {CONNECT:?} (A: {a}; B: {b})");
        };
        let setup = media - start;
        bob.wait_line("a status line with RTP at bob", receives_rtp)
            .await;
        alice
            .wait_line("a status line with RTP at alice", receives_rtp)
            .await;
        // Connected: from here on, what the relay carries is this call's media (if any).
        let relayed_in_call = self.relayed_over_a_status_period(&bob).await;
        let outcome = CallOutcome {
            bob: last_pair(&bob),
            alice: last_pair(&alice),
            setup,
            relayed_in_call,
        };
        alice.interrupt();
        bob.wait_line("the end of the call at bob", |l| {
            l.starts_with("call ended")
        })
        .await;
        assert!(alice.exit().await, "the call example failed");
        assert!(bob.exit().await, "the answer example failed");
        eprintln!("{outcome:?}");
        outcome
    }

    /// What the relay carries while `ex` prints one more status line with RTP.
    pub async fn relayed_over_a_status_period(&self, ex: &Example) -> u64 {
        let before = self.relayed_bytes();
        ex.wait_another("another status line with RTP", receives_rtp)
            .await;
        self.relayed_bytes() - before
    }
}

/// When the later of the two examples printed its first RTP packet.
async fn media_both_ways(bob: &Example, alice: &Example) -> Instant {
    let bob = first_media(bob).await;
    bob.max(first_media(alice).await)
}

/// When `ex` printed its first RTP packet; waits for it (the caller bounds the wait).
pub async fn first_media(ex: &Example) -> Instant {
    loop {
        if let Some(at) = ex.first_seen(first_rtp) {
            return at;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the last status line of `ex` says of its path (`not connected yet`, `host/srflx`).
pub fn last_path(ex: &Example) -> String {
    let lines = ex.lines();
    let status = lines.iter().rev().find_map(|l| l.strip_prefix("path "));
    let path = status.and_then(|l| l.split(',').next());
    path.unwrap_or("no status line").to_owned()
}

/// The candidate pair of the last status line with RTP.
fn last_pair(ex: &Example) -> Pair {
    let line = ex
        .lines()
        .into_iter()
        .rev()
        .find(|l| receives_rtp(l))
        .expect("a status line with RTP");
    Pair::from_status(&line).unwrap_or_else(|| panic!("no pair in {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_read_from_status_lines() {
        let direct = "path host/srflx, rtt 1.2 ms, sent 10 B, received 20 B, 3 RTP packets in";
        let pair = Pair::from_status(direct).unwrap();
        assert!(pair.is(&["host"], &["srflx"]) && pair.relay.is_none());
        assert!(!pair.uses_relay());
        let relayed =
            "path relay/prflx, relay tcp, rtt -, sent 1 B, received 2 B, 3 RTP packets in";
        let pair = Pair::from_status(relayed).unwrap();
        assert_eq!(pair.relay.as_deref(), Some("tcp"));
        assert!(pair.uses_relay());
        assert_eq!(pair.to_string(), "relay/prflx (tcp)");
        assert_eq!(Pair::from_status("path not connected yet, rtt -"), None);
    }
}
