//! Resume over real WebSockets: queued messages in order, sign-off, take-over, expiry.

#![allow(clippy::unwrap_used)] // a test that cannot set up must fail loudly
// Where a real timeout must pass (the resume ttl), the test configures it short and waits
// for the event; nothing sleeps (shared/TESTING.md).

mod support;

use std::time::Duration;

use signaling_protocol::{EndReason, Hello, ServerMessage};
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

#[tokio::test]
async fn a_dropped_socket_resumes_with_everything_in_order() {
    let server = server().await;
    let addr = server.local_addr();
    let counting = Hello {
        received: Some(0),
        ..hello("alice")
    };
    let (mut alice, welcome) = Client::join_with(addr, counting).await;
    let mut bob = Client::join(addr, "bob").await;
    connected_call(&mut alice, &mut bob, "c1", "alice", "bob").await;
    let received = 2; // ringing, accepted
    alice.cut();
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
    let (mut alice, again) = Client::join_with(addr, resume).await;
    assert!(again.resumed);
    assert_eq!(again.session, welcome.session);
    for i in 0..5 {
        assert_eq!(candidate_text(alice.recv().await), format!("b{i}"));
    }
    assert!(
        matches!(alice.recv().await, ServerMessage::Renegotiate(r) if r.description.sdp == "restart")
    );
    // The call goes on.
    alice.send(&candidate("c1", "back")).await;
    assert_eq!(candidate_text(bob.recv().await), "back");
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_or_foreign_tokens_start_fresh_sessions() {
    let server = server().await;
    let addr = server.local_addr();
    let (_alice, welcome) = Client::join_with(addr, hello("alice")).await;
    let (_, w) = Client::join_with(addr, resume("alice", "no-such-token")).await;
    assert!(!w.resumed);
    // bob cannot take alice's session with her token.
    let (_, w) = Client::join_with(addr, resume("bob", &welcome.session)).await;
    assert!(!w.resumed);
    assert_eq!(w.user.as_str(), "bob");
    assert_ne!(w.session, welcome.session);
    server.shutdown().await;
}

#[tokio::test]
async fn signing_off_ends_the_call_at_once() {
    let server = server().await;
    let addr = server.local_addr();
    let mut alice = Client::join(addr, "alice").await;
    let mut bob = Client::join(addr, "bob").await;
    connected_call(&mut alice, &mut bob, "c1", "alice", "bob").await;
    alice.close(1000).await;
    bob.expect_ended("c1", EndReason::PeerLost).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_session_that_does_not_come_back_is_peer_lost() {
    let server = server_with(|c| c.resume_ttl = Duration::from_secs(1)).await;
    let addr = server.local_addr();
    let (mut alice, welcome) = Client::join_with(addr, hello("alice")).await;
    assert_eq!(welcome.resume_ttl_s, 1);
    let mut bob = Client::join(addr, "bob").await;
    connected_call(&mut alice, &mut bob, "c1", "alice", "bob").await;
    // A ringing call from carol to alice ends for carol too.
    let mut carol = Client::join(addr, "carol").await;
    ring(&mut carol, &mut alice, "k1", "carol", "alice").await;
    alice.close(1001).await; // going away: the session waits for a resume
    bob.expect_silence(Duration::from_millis(500)).await;
    bob.expect_ended("c1", EndReason::PeerLost).await;
    carol.expect_ended("k1", EndReason::PeerLost).await;
    let (_, w) = Client::join_with(addr, resume("alice", &welcome.session)).await;
    assert!(!w.resumed, "too late");
    server.shutdown().await;
}

#[tokio::test]
async fn resuming_on_a_new_socket_closes_the_old_one() {
    let server = server().await;
    let addr = server.local_addr();
    let (mut old, welcome) = Client::join_with(addr, hello("alice")).await;
    let (mut new, w) = Client::join_with(addr, resume("alice", &welcome.session)).await;
    assert!(w.resumed);
    assert_eq!(old.recv_close().await, Some(4000));
    // The session lives on the new socket.
    let mut bob = Client::join(addr, "bob").await;
    bob.invite("c1", "alice").await;
    new.expect_invite("c1", "bob").await;
    server.shutdown().await;
}
