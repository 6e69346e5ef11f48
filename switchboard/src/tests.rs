//! The switchboard driven directly: no sockets, no sleeping, time passed in.

use std::time::{Duration, Instant};

use signaling_protocol::{
    Accept, CallRef, Candidate, ClientMessage, EndReason, ErrorCode, IceCandidate, Ping, Reject,
    RejectReason, Renegotiate, SdpType, ServerMessage, SessionDescription, UserName,
};

use super::*;
use crate::test_messages::{self, ended, id};

struct Harness {
    board: Switchboard,
    now: Instant,
    next_conn: u64,
    conns: Vec<ConnId>,
}

pub(crate) fn settings() -> Settings {
    Settings {
        heartbeat: Duration::from_secs(20),
        resume_ttl: Duration::from_secs(30),
        ring_timeout: Duration::from_secs(45),
        max_calls_per_session: 2,
        max_sessions_per_user: 3,
        send_queue: 8,
        resume_queue: 16,
        queue_bytes: 1 << 20,
        total_queue_bytes: 64 << 20,
        rate: Some((50, 200)),
    }
}

impl Harness {
    fn new() -> Self {
        Self::with_seed([7; 32])
    }

    fn with_seed(seed: [u8; 32]) -> Self {
        let now = server_kit::clock::now();
        let board = Switchboard::new(
            settings(),
            MemoryRegistry::default(),
            Metrics::new(),
            seed,
            now,
        );
        Self {
            board,
            now,
            next_conn: 1,
            conns: Vec::new(),
        }
    }

    /// Opens a connection and says hello; returns the connection after reading `welcome`.
    fn connect(&mut self, user: &str) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conns.push(conn);
        self.board.hello(
            conn,
            UserName::new(user).unwrap(),
            None,
            Some(0),
            vec![],
            self.now,
        );
        assert!(matches!(
            self.take(conn).as_slice(),
            [ServerMessage::Welcome(_)]
        ));
        conn
    }

    fn take(&mut self, conn: ConnId) -> Vec<ServerMessage> {
        self.board
            .take_outbox(conn)
            .into_iter()
            .map(|m| (*m).clone())
            .collect()
    }

    /// Says hello on `conn` with a resume token and a `received` count.
    fn resume(&mut self, conn: ConnId, user: &str, token: &str, received: u64) {
        let user = UserName::new(user).unwrap();
        self.board
            .hello(conn, user, Some(token), Some(received), vec![], self.now);
    }

    /// Reads and forgets everything queued for every connection.
    fn drain_all(&mut self) {
        for conn in self.conns.clone() {
            self.take(conn);
        }
    }

    /// The resume token of `user`'s (only) session.
    fn token(&self, user: &str) -> String {
        let s = self
            .board
            .sessions
            .values()
            .find(|s| s.user.as_str() == user);
        s.expect("a session").token.clone()
    }

    fn send(&mut self, conn: ConnId, msg: ClientMessage) {
        self.board.message(conn, msg, self.now);
    }

    fn invite(&mut self, from: ConnId, call_id: &str, to: &str) {
        self.send(from, test_messages::invite(call_id, to));
    }

    fn accept(&mut self, conn: ConnId, call_id: &str) {
        self.send(conn, test_messages::accept(call_id));
    }

    fn hangup(&mut self, conn: ConnId, call_id: &str) {
        self.send(conn, test_messages::hangup(call_id));
    }

    /// alice has called bob on `c1`, bob accepted, both have read everything.
    fn in_a_call() -> (Self, ConnId, ConnId) {
        let mut h = Self::new();
        let alice = h.connect("alice");
        let bob = h.connect("bob");
        h.invite(alice, "c1", "bob");
        h.take(bob);
        h.accept(bob, "c1");
        h.take(alice);
        (h, alice, bob)
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.board.handle_timeout(self.now);
    }

    fn outputs(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.board.poll_output()).collect()
    }
}

/// What the switchboard says to a reader it drops as too slow.
fn dropped_as_slow(conn: ConnId) -> Output {
    Output::Close {
        conn,
        code: CLOSE_POLICY,
        reason: "send queue full",
    }
}

/// An end-of-candidates on `c1`.
fn no_more_candidates() -> ClientMessage {
    ClientMessage::Candidate(Candidate {
        call_id: id("c1"),
        candidate: None,
    })
}

fn error_code(msgs: &[ServerMessage]) -> Option<ErrorCode> {
    match msgs {
        [ServerMessage::Error(e)] => Some(e.code),
        _ => None,
    }
}

#[test]
fn resume_tokens_depend_on_the_whole_256_bit_seed() {
    // A resume token is a bearer secret: its generator must not be searchable. Seeds that
    // differ only in their last byte give different tokens (a 64-bit seed ignored it).
    let mut last = [7u8; 32];
    last[31] = 8;
    let tokens: Vec<String> = [[7u8; 32], last]
        .into_iter()
        .map(|seed| {
            let mut h = Harness::with_seed(seed);
            h.connect("alice");
            h.token("alice")
        })
        .collect();
    assert_ne!(tokens[0], tokens[1]);
    assert_eq!(tokens[0].len(), 24, "18 random bytes, base64url");
}

#[test]
fn invite_ring_accept_hangup() {
    let mut h = Harness::new();
    let alice = h.connect("alice");
    let bob = h.connect("bob");
    h.invite(alice, "c1", "bob");
    let got = h.take(bob);
    let [ServerMessage::Invite(inv)] = got.as_slice() else {
        panic!("{got:?}")
    };
    assert_eq!(inv.from.as_str(), "alice");
    assert!(matches!(
        h.take(alice).as_slice(),
        [ServerMessage::Ringing(_)]
    ));
    h.accept(bob, "c1");
    assert!(matches!(h.take(alice).as_slice(), [ServerMessage::Accepted(a)] if a.answer == "a"));
    h.hangup(alice, "c1");
    assert_eq!(h.take(bob), vec![ended("c1", EndReason::Hangup)]);
    assert!(h.take(alice).is_empty(), "the one who hangs up is not told");
    assert_eq!(h.board.call_count(), 0);
}

#[test]
fn every_session_rings_and_the_first_accept_wins() {
    let mut h = Harness::new();
    let alice = h.connect("alice");
    let (phone, laptop, tablet) = (h.connect("bob"), h.connect("bob"), h.connect("bob"));
    h.invite(alice, "c1", "bob");
    for s in [phone, laptop, tablet] {
        assert!(matches!(h.take(s).as_slice(), [ServerMessage::Invite(_)]));
    }
    h.accept(laptop, "c1");
    assert_eq!(
        h.take(phone),
        vec![ended("c1", EndReason::AnsweredElsewhere)]
    );
    assert_eq!(
        h.take(tablet),
        vec![ended("c1", EndReason::AnsweredElsewhere)]
    );
    h.accept(laptop, "c1");
    assert_eq!(error_code(&h.take(laptop)), Some(ErrorCode::BadState));
    h.accept(phone, "c1");
    assert_eq!(error_code(&h.take(phone)), Some(ErrorCode::UnknownCall));
}

#[test]
fn reject_ends_the_call_everywhere() {
    let mut h = Harness::new();
    let alice = h.connect("alice");
    let (phone, laptop) = (h.connect("bob"), h.connect("bob"));
    h.invite(alice, "c1", "bob");
    h.take(alice);
    h.send(
        phone,
        ClientMessage::Reject(Reject {
            call_id: id("c1"),
            reason: RejectReason::Busy,
        }),
    );
    assert_eq!(h.take(alice), vec![ended("c1", EndReason::Busy)]);
    let got = h.take(laptop);
    assert_eq!(got.last(), Some(&ended("c1", EndReason::RejectedElsewhere)));
    assert!(
        h.take(phone)
            .iter()
            .all(|m| !matches!(m, ServerMessage::Ended(_)))
    );
}

#[test]
fn unavailable_busy_and_too_many_calls() {
    let mut h = Harness::new();
    let alice = h.connect("alice");
    h.invite(alice, "c1", "nobody");
    assert_eq!(h.take(alice), vec![ended("c1", EndReason::Unavailable)]);
    h.connect("bob");
    h.connect("carol");
    h.invite(alice, "c2", "bob");
    h.invite(alice, "c3", "carol");
    h.take(alice);
    // alice is in 2 calls (the maximum): a third invite is refused.
    h.invite(alice, "c4", "carol");
    assert_eq!(error_code(&h.take(alice)), Some(ErrorCode::RateLimited));
    // bob is in 1 call; dave rings bob twice more: the second finds bob full.
    let dave = h.connect("dave");
    h.invite(dave, "d1", "bob");
    h.invite(dave, "d2", "bob");
    let got = h.take(dave);
    assert_eq!(got.last(), Some(&ended("d2", EndReason::Busy)));
}

#[test]
fn call_ids_are_per_session_and_outsiders_learn_nothing() {
    let mut h = Harness::new();
    let alice = h.connect("alice");
    let bob = h.connect("bob");
    let mallory = h.connect("mallory");
    h.invite(alice, "c1", "bob");
    h.invite(alice, "c1", "bob");
    let got = h.take(alice);
    assert_eq!(error_code(&got[1..]), Some(ErrorCode::CallExists));
    h.take(bob);
    for msg in [
        ClientMessage::Hangup(CallRef { call_id: id("c1") }),
        ClientMessage::Accept(Accept {
            call_id: id("c1"),
            answer: "x".into(),
        }),
        ClientMessage::Candidate(Candidate {
            call_id: id("c1"),
            candidate: None,
        }),
    ] {
        h.send(mallory, msg);
        assert_eq!(error_code(&h.take(mallory)), Some(ErrorCode::UnknownCall));
    }
    assert!(h.take(alice).is_empty() && h.take(bob).is_empty());
}

#[test]
fn candidates_follow_the_call_state() {
    let mut h = Harness::new();
    let alice = h.connect("alice");
    let (phone, laptop) = (h.connect("bob"), h.connect("bob"));
    h.invite(alice, "c1", "bob");
    h.drain_all();
    let cand = |c: &str| {
        ClientMessage::Candidate(Candidate {
            call_id: id(c),
            candidate: None,
        })
    };
    h.send(alice, cand("c1"));
    assert_eq!(h.take(phone).len(), 1);
    assert_eq!(h.take(laptop).len(), 1);
    h.send(laptop, cand("c1"));
    assert!(matches!(
        h.take(alice).as_slice(),
        [ServerMessage::Candidate(_)]
    ));
    h.accept(phone, "c1");
    h.take(alice);
    h.take(laptop);
    h.send(alice, cand("c1"));
    assert_eq!(h.take(phone).len(), 1);
    assert!(h.take(laptop).is_empty());
}

#[test]
fn renegotiate_needs_an_accepted_call() {
    let mut h = Harness::new();
    let alice = h.connect("alice");
    let bob = h.connect("bob");
    h.invite(alice, "c1", "bob");
    h.drain_all();
    let reneg = ClientMessage::Renegotiate(Renegotiate {
        call_id: id("c1"),
        description: SessionDescription {
            kind: SdpType::Offer,
            sdp: "s".into(),
        },
    });
    h.send(alice, reneg.clone());
    assert_eq!(error_code(&h.take(alice)), Some(ErrorCode::BadState));
    h.accept(bob, "c1");
    h.take(alice);
    h.send(bob, reneg);
    assert!(matches!(
        h.take(alice).as_slice(),
        [ServerMessage::Renegotiate(_)]
    ));
}

#[test]
fn ring_timeout_uses_injected_time() {
    let mut h = Harness::new();
    let alice = h.connect("alice");
    let bob = h.connect("bob");
    h.invite(alice, "c1", "bob");
    h.drain_all();
    assert_eq!(
        h.board.poll_timeout(),
        Some(h.now + Duration::from_secs(45))
    );
    h.advance(Duration::from_secs(44));
    assert!(h.take(alice).is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(h.take(alice), vec![ended("c1", EndReason::Timeout)]);
    assert_eq!(h.take(bob), vec![ended("c1", EndReason::Timeout)]);
    assert_eq!(h.board.poll_timeout(), None);
}

#[test]
fn glare_keeps_the_lower_call_id() {
    for (a_id, b_id, kept) in [("a1", "b1", "a1"), ("b2", "a2", "a2")] {
        let mut h = Harness::new();
        let alice = h.connect("alice");
        let bob = h.connect("bob");
        h.invite(alice, a_id, "bob");
        h.drain_all();
        h.invite(bob, b_id, "alice");
        let lost = if kept == a_id { b_id } else { a_id };
        let bob_got = h.take(bob);
        let alice_got = h.take(alice);
        let all: Vec<_> = bob_got.iter().chain(&alice_got).collect();
        assert!(all.contains(&&ended(lost, EndReason::Glare)), "{all:?}");
        assert!(!all.contains(&&ended(kept, EndReason::Glare)), "{all:?}");
        assert_eq!(h.board.call_count(), 1);
    }
}

#[test]
fn resume_replays_in_order_and_expiry_is_peer_lost() {
    let mut h = Harness::new();
    let alice = h.connect("alice");
    let bob = h.connect("bob");
    h.invite(alice, "c1", "bob");
    h.take(alice);
    let token = {
        h.take(bob);
        h.accept(bob, "c1");
        h.token("alice")
    };
    // alice's socket dies before `accepted` was read: the client saw 1 message (ringing).
    h.board.disconnected(alice, Disconnect::Dropped, &[], h.now);
    for n in 0..3 {
        let c = Candidate {
            call_id: id("c1"),
            candidate: Some(signaling_protocol::IceCandidate {
                candidate: format!("cand{n}"),
                sdp_mid: None,
                sdp_m_line_index: Some(0),
                username_fragment: None,
            }),
        };
        h.send(bob, ClientMessage::Candidate(c));
    }
    let alice2 = ConnId(99);
    h.resume(alice2, "alice", &token, 1);
    let got = h.take(alice2);
    let kinds: Vec<&str> = got.iter().map(ServerMessage::kind).collect();
    assert_eq!(
        kinds,
        ["welcome", "accepted", "candidate", "candidate", "candidate"]
    );
    let ServerMessage::Welcome(w) = &got[0] else {
        panic!()
    };
    assert!(w.resumed);
    // Now bob vanishes for good.
    h.board.disconnected(bob, Disconnect::Dropped, &[], h.now);
    h.advance(Duration::from_secs(30));
    assert_eq!(h.take(alice2), vec![ended("c1", EndReason::PeerLost)]);
    assert_eq!(h.board.session_count(), 1);
}

#[test]
fn sign_off_ends_at_once_and_take_over_closes_the_old_socket() {
    let mut h = Harness::new();
    let alice = h.connect("alice");
    let bob = h.connect("bob");
    h.invite(alice, "c1", "bob");
    h.take(bob);
    h.accept(bob, "c1");
    let token = h.token("bob");
    h.outputs();
    let bob2 = ConnId(50);
    h.resume(bob2, "bob", &token, 0);
    assert!(h.outputs().contains(&Output::Close {
        conn: bob,
        code: CLOSE_TAKEN_OVER,
        reason: "session resumed elsewhere"
    }));
    h.board.disconnected(bob, Disconnect::Dropped, &[], h.now); // the old socket's loss changes nothing
    h.board
        .disconnected(bob2, Disconnect::SignedOff, &[], h.now);
    assert_eq!(
        h.take(alice).last(),
        Some(&ended("c1", EndReason::PeerLost))
    );
    assert_eq!(h.board.session_count(), 1);
}

#[test]
fn a_slow_reader_is_dropped_without_losing_messages() {
    let mut h = Harness::new();
    let alice = h.connect("alice");
    h.outputs();
    for _ in 0..9 {
        h.send(alice, ClientMessage::Ping(Ping::default()));
    }
    let outs = h.outputs();
    assert!(outs.contains(&dropped_as_slow(alice)), "{outs:?}");
    h.board.disconnected(alice, Disconnect::Dropped, &[], h.now);
    assert_eq!(h.board.session_count(), 1, "the session waits for a resume");
    let token = h.token("alice");
    let again = ConnId(77);
    h.resume(again, "alice", &token, 0);
    assert_eq!(h.take(again).len(), 1 + 9, "welcome and nine pongs");
}

#[test]
fn a_detached_queue_overflow_ends_the_session() {
    let mut h = Harness::new();
    let alice = h.connect("alice");
    let bob = h.connect("bob");
    h.invite(alice, "c1", "bob");
    h.take(bob);
    h.accept(bob, "c1");
    h.board.disconnected(alice, Disconnect::Dropped, &[], h.now);
    for _ in 0..20 {
        h.send(
            bob,
            ClientMessage::Candidate(Candidate {
                call_id: id("c1"),
                candidate: None,
            }),
        );
    }
    assert_eq!(h.board.session_count(), 1);
    let got = h.take(bob);
    assert!(got.contains(&ended("c1", EndReason::PeerLost)));
    assert!(
        error_code(&got[got.len() - 1..]).is_some(),
        "later candidates hit a call that is gone"
    );
}

#[test]
fn a_resumed_reader_that_never_reads_is_still_bounded() {
    // Found by the fuzzer: after a resume whose replay left more than `send_queue` (and
    // `resume_queue`) messages queued, the limits, met with `==`, were never met again, and
    // the queue of a client that never read grew without bound.
    let (mut h, alice, bob) = Harness::in_a_call();
    // 16 messages written that alice never read, and 16 more while she is away.
    for _ in 0..16 {
        h.send(bob, no_more_candidates());
    }
    h.board.take_outbox(alice);
    h.board.disconnected(alice, Disconnect::Dropped, &[], h.now);
    for _ in 0..16 {
        h.send(bob, no_more_candidates());
    }
    let token = h.token("alice");
    let again = ConnId(50);
    h.resume(again, "alice", &token, 1);
    h.outputs();
    // Her replay (33 with the welcome) is the I/O layer's to write; she reads nothing.
    for _ in 0..100 {
        h.send(bob, no_more_candidates());
    }
    let outs = h.outputs();
    assert!(outs.contains(&dropped_as_slow(again)), "{outs:?}");
    let queued = h.board.take_outbox(again).len();
    assert!(
        queued <= 33 + 8 + 16,
        "{queued} messages queued for a reader that never reads"
    );
}

#[test]
fn a_detached_session_over_its_byte_budget_ends_and_its_bytes_are_freed() {
    // Issue 16, item 2: counts alone let a detached session hold 1,024 messages of 64 KiB.
    let (mut h, alice, bob) = Harness::in_a_call();
    h.board.disconnected(alice, Disconnect::Dropped, &[], h.now);
    let big = "x".repeat(100 * 1024);
    let mut sent = 0;
    while h.board.session_count() == 2 {
        assert!(
            sent < 12,
            "1 MiB of candidates queued and the session lives on"
        );
        h.send(
            bob,
            ClientMessage::Candidate(Candidate {
                call_id: id("c1"),
                candidate: Some(IceCandidate {
                    candidate: big.clone(),
                    sdp_mid: None,
                    sdp_m_line_index: None,
                    username_fragment: None,
                }),
            }),
        );
        sent += 1;
    }
    assert_eq!(sent, 11, "ended at the candidate that took it past 1 MiB");
    assert!(h.take(bob).contains(&ended("c1", EndReason::PeerLost)));
    assert!(h.board.held_bytes() < 1024, "bob's replay buffer only");
    h.board.disconnected(bob, Disconnect::SignedOff, &[], h.now);
    assert_eq!(h.board.held_bytes(), 0, "every byte accounted for");
    assert!(
        h.board
            .metrics
            .encode()
            .contains("signaling_queued_bytes 0")
    );
}

#[test]
fn second_hello_is_bad_state() {
    let mut h = Harness::new();
    let alice = h.connect("alice");
    h.board.hello(
        alice,
        UserName::new("alice").unwrap(),
        None,
        None,
        vec![],
        h.now,
    );
    assert_eq!(error_code(&h.take(alice)), Some(ErrorCode::BadState));
    assert_eq!(h.board.session_count(), 1);
}

#[test]
fn one_message_for_many_devices_is_one_body() {
    // A candidate for every ringing device of the callee was deep-copied per session: 24 MB
    // uploaded grew the server by 460 MiB with 20 sessions (issue 16, item 2).
    let mut h = Harness::new();
    let alice = h.connect("alice");
    let phones = [h.connect("bob"), h.connect("bob"), h.connect("bob")];
    h.drain_all();
    h.invite(alice, "c1", "bob");
    h.send(
        alice,
        ClientMessage::Candidate(signaling_protocol::Candidate {
            call_id: id("c1"),
            candidate: None,
        }),
    );
    let queued: Vec<Vec<Outgoing>> = phones.iter().map(|&p| h.board.take_outbox(p)).collect();
    for (i, kind) in ["invite", "candidate"].into_iter().enumerate() {
        assert_eq!(queued[0][i].kind(), kind);
        for other in &queued[1..] {
            assert!(
                Arc::ptr_eq(&queued[0][i], &other[i]),
                "the {kind} is shared, not copied"
            );
        }
    }
}

#[test]
fn sessions_per_user_are_capped() {
    let mut h = Harness::new(); // at most 3 sessions per user
    let bob = [h.connect("bob"), h.connect("bob"), h.connect("bob")];
    let fourth = ConnId(99);
    let user = || UserName::new("bob").unwrap();
    // All three connected: the fourth hello is refused.
    assert_eq!(
        h.board.hello(fourth, user(), None, None, vec![], h.now),
        None
    );
    assert_eq!(h.board.session_count(), 3);
    // One drops (waiting for a resume): a new session ends it and takes its place.
    h.board
        .disconnected(bob[0], Disconnect::Dropped, &[], h.now);
    assert!(
        h.board
            .hello(fourth, user(), None, None, vec![], h.now)
            .is_some()
    );
    assert_eq!(h.board.session_count(), 3);
}
