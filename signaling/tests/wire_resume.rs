//! Resume over real WebSockets: queued messages in order, sign-off, take-over, expiry.

#![allow(clippy::unwrap_used)] // a test that cannot set up must fail loudly
// Where a real timeout must pass (the resume ttl), the test configures it short and waits
// for the event; nothing sleeps (shared/TESTING.md).

#[macro_use]
mod support;

use std::time::Duration;

use signaling_protocol::{EndReason, Hello, ServerMessage, Welcome};
use support::*;

fn resume(user: &str, token: &str) -> Hello {
    Hello {
        resume: Some(token.into()),
        ..hello(user)
    }
}

fn candidate_text(msg: ServerMessage) -> String {
    match msg {
        ServerMessage::Candidate(c) => c.candidate.unwrap().candidate,
        other => panic!("expected a candidate, got {other:?}"),
    }
}

/// alice (counting what she receives, on the first node) in call `c1` with bob (on the
/// second), then her socket dies without a word; returns her `welcome` and bob.
async fn in_a_call_then_cut(d: &Deployment) -> (Welcome, Client) {
    let counting = Hello {
        received: Some(0),
        ..hello("alice")
    };
    let (mut alice, welcome) = Client::join_with(d.addr(0), counting).await;
    let mut bob = Client::join(d.addr(1), "bob").await;
    connected_call(&mut alice, &mut bob, "c1", "alice", "bob").await;
    alice.cut();
    (welcome, bob)
}

async fn a_dropped_socket_resumes_with_everything_in_order(n: usize) {
    let Some(d) = Deployment::new(n, |_| {}).await else {
        return;
    };
    let (welcome, mut bob) = in_a_call_then_cut(&d).await;
    let received = 2; // ringing, accepted
    // bob keeps talking while alice is away. The server may not have noticed the cut yet
    // and still write into the dead socket: alice's `received` count (as the SDK and the
    // web demo send it) has those messages replayed, so nothing waits for the server.
    for i in 0..5 {
        bob.send(&candidate("c1", &format!("b{i}"))).await;
    }
    bob.send_raw(
        r#"{"type":"renegotiate","call_id":"c1","description":{"type":"offer","sdp":"restart"}}"#,
    )
    .await;
    let resume = Hello {
        received: Some(received),
        ..resume("alice", &welcome.session)
    };
    // On two nodes alice comes back on bob's node: her session moves there.
    let (mut alice, again) = Client::join_with(d.addr(1), resume).await;
    assert!(again.resumed);
    if n == 1 {
        assert_eq!(again.session, welcome.session);
    }
    for i in 0..5 {
        assert_eq!(candidate_text(alice.recv().await), format!("b{i}"));
    }
    assert!(
        matches!(alice.recv().await, ServerMessage::Renegotiate(r) if r.description.sdp == "restart")
    );
    // The call goes on.
    alice.send(&candidate("c1", "back")).await;
    assert_eq!(candidate_text(bob.recv().await), "back");
    d.shutdown().await;
}

async fn unknown_or_foreign_tokens_start_fresh_sessions(n: usize) {
    let Some(d) = Deployment::new(n, |_| {}).await else {
        return;
    };
    let (_alice, welcome) = Client::join_with(d.addr(0), hello("alice")).await;
    let (_, w) = Client::join_with(d.addr(1), resume("alice", "no-such-token")).await;
    assert!(!w.resumed);
    // bob cannot take alice's session with her token, on her node or another.
    let (_, w) = Client::join_with(d.addr(1), resume("bob", &welcome.session)).await;
    assert!(!w.resumed);
    assert_eq!(w.user.as_str(), "bob");
    assert_ne!(w.session, welcome.session);
    d.shutdown().await;
}

async fn signing_off_ends_the_call_at_once(n: usize) {
    let Some(d) = Deployment::new(n, |_| {}).await else {
        return;
    };
    let mut alice = Client::join(d.addr(0), "alice").await;
    let mut bob = Client::join(d.addr(1), "bob").await;
    connected_call(&mut alice, &mut bob, "c1", "alice", "bob").await;
    alice.close(1000).await;
    bob.expect_ended("c1", EndReason::PeerLost).await;
    d.shutdown().await;
}

async fn a_session_that_does_not_come_back_is_peer_lost(n: usize) {
    let Some(d) = Deployment::new(n, |c| c.resume_ttl = Duration::from_secs(1)).await else {
        return;
    };
    let (mut alice, welcome) = Client::join_with(d.addr(0), hello("alice")).await;
    assert_eq!(welcome.resume_ttl_s, 1);
    let mut bob = Client::join(d.addr(1), "bob").await;
    connected_call(&mut alice, &mut bob, "c1", "alice", "bob").await;
    // A ringing call from carol to alice ends for carol too.
    let mut carol = Client::join(d.addr(1), "carol").await;
    ring(&mut carol, &mut alice, "k1", "carol", "alice").await;
    alice.close(1001).await; // going away: the session waits for a resume
    bob.expect_silence(Duration::from_millis(500)).await;
    bob.expect_ended("c1", EndReason::PeerLost).await;
    carol.expect_ended("k1", EndReason::PeerLost).await;
    let (_, w) = Client::join_with(d.addr(1), resume("alice", &welcome.session)).await;
    assert!(!w.resumed, "too late");
    d.shutdown().await;
}

async fn resuming_on_a_new_socket_closes_the_old_one(n: usize) {
    let Some(d) = Deployment::new(n, |_| {}).await else {
        return;
    };
    let (mut old, welcome) = Client::join_with(d.addr(0), hello("alice")).await;
    let (mut new, w) = Client::join_with(d.addr(1), resume("alice", &welcome.session)).await;
    assert!(w.resumed);
    assert_eq!(old.recv_close().await, Some(4000));
    // The session lives on the new socket (on two nodes: on the other node).
    let mut bob = Client::join(d.addr(0), "bob").await;
    bob.invite("c1", "alice").await;
    new.expect_invite("c1", "bob").await;
    d.shutdown().await;
}

/// 1,000 messages wait for alice while her socket is gone; she comes back (on two nodes:
/// on the other node, where her session moves with its queue) and reads them all, in order.
async fn a_thousand_queued_messages_follow_the_session(n: usize) {
    let Some(d) = Deployment::new(n, |c| {
        c.rate_per_s = 100_000;
        c.rate_burst = 100_000;
    })
    .await
    else {
        return;
    };
    let (welcome, mut bob) = in_a_call_then_cut(&d).await;
    for i in 0..1000 {
        bob.send(&candidate("c1", &format!("b{i}"))).await;
    }
    let resume = Hello {
        received: Some(2), // ringing, accepted
        ..resume("alice", &welcome.session)
    };
    let (mut alice, again) = Client::join_with(d.addr(n - 1), resume).await;
    assert!(again.resumed);
    for i in 0..1000 {
        assert_eq!(candidate_text(alice.recv().await), format!("b{i}"));
    }
    alice.expect_silence(Duration::from_millis(200)).await;
    alice.send(&candidate("c1", "back")).await;
    assert_eq!(candidate_text(bob.recv().await), "back");
    d.shutdown().await;
}

on_one_and_two_nodes!(
    a_dropped_socket_resumes_with_everything_in_order,
    unknown_or_foreign_tokens_start_fresh_sessions,
    signing_off_ends_the_call_at_once,
    a_session_that_does_not_come_back_is_peer_lost,
    resuming_on_a_new_socket_closes_the_old_one,
    a_thousand_queued_messages_follow_the_session,
);
