//! Calls over real WebSockets: every call message and every `ended` reason.

#![allow(clippy::unwrap_used)] // a test that cannot set up must fail loudly

#[macro_use]
mod support;

use std::time::Duration;

use signaling_protocol::{
    Candidate, ClientMessage, EndReason, ErrorCode, Reject, RejectReason, Renegotiate, SdpType,
    ServerMessage, SessionDescription,
};
use support::*;

const QUIET: Duration = Duration::from_millis(200);

async fn invite_accept_candidates_renegotiate_hangup(n: usize) {
    let Some(d) = Deployment::new(n, |_| {}).await else {
        return;
    };
    let mut alice = Client::join(d.addr(0), "alice").await;
    let mut bob = Client::join(d.addr(1), "bob").await;
    // The server stamps `from`; a client's own claim is ignored.
    alice
        .send_raw(r#"{"type":"invite","call_id":"c1","to":"bob","offer":"sdp-o","from":"mallory","meta":{"video":true}}"#)
        .await;
    match bob.recv().await {
        ServerMessage::Invite(i) => {
            assert_eq!(i.from.as_str(), "alice");
            assert_eq!(i.offer, "sdp-o");
            assert_eq!(i.meta, Some(serde_json::json!({"video": true})));
        }
        other => panic!("{other:?}"),
    }
    alice.expect_ringing("c1").await;
    // Candidates before accept flow both ways.
    alice.send(&candidate("c1", "cand-a1")).await;
    assert!(
        matches!(bob.recv().await, ServerMessage::Candidate(c) if c.candidate.as_ref().is_some_and(|x| x.candidate == "cand-a1"))
    );
    bob.send(&candidate("c1", "cand-b1")).await;
    assert!(matches!(alice.recv().await, ServerMessage::Candidate(_)));
    bob.accept("c1").await;
    assert!(matches!(alice.recv().await, ServerMessage::Accepted(a) if a.answer == "answer c1"));
    // End of candidates is forwarded as null.
    bob.send(&ClientMessage::Candidate(Candidate {
        call_id: call_id("c1"),
        candidate: None,
    }))
    .await;
    assert!(matches!(alice.recv().await, ServerMessage::Candidate(c) if c.candidate.is_none()));
    for (from, to, kind) in [(&mut alice, &mut bob, SdpType::Offer)] {
        let description = SessionDescription {
            kind,
            sdp: "re".into(),
        };
        from.send(&ClientMessage::Renegotiate(Renegotiate {
            call_id: call_id("c1"),
            description,
        }))
        .await;
        assert!(
            matches!(to.recv().await, ServerMessage::Renegotiate(r) if r.description.kind == kind)
        );
    }
    let description = SessionDescription {
        kind: SdpType::Answer,
        sdp: "re".into(),
    };
    bob.send(&ClientMessage::Renegotiate(Renegotiate {
        call_id: call_id("c1"),
        description,
    }))
    .await;
    assert!(matches!(alice.recv().await, ServerMessage::Renegotiate(_)));
    bob.hangup("c1").await;
    alice.expect_ended("c1", EndReason::Hangup).await;
    bob.expect_silence(QUIET).await;
    d.shutdown().await;
}

async fn declined_busy_unavailable_and_cancelled(n: usize) {
    let Some(d) = Deployment::new(n, |_| {}).await else {
        return;
    };
    let mut alice = Client::join(d.addr(0), "alice").await;
    let mut bob = Client::join(d.addr(1), "bob").await;
    alice.invite("c1", "nobody").await;
    alice.expect_ended("c1", EndReason::Unavailable).await;

    for (call, reason, expect) in [
        ("c2", None, EndReason::Declined),
        ("c3", Some(RejectReason::Busy), EndReason::Busy),
    ] {
        alice.invite(call, "bob").await;
        bob.expect_invite(call, "alice").await;
        alice.expect_ringing(call).await;
        let reject = match reason {
            Some(reason) => serde_json::to_string(&ClientMessage::Reject(Reject {
                call_id: call_id(call),
                reason,
            }))
            .unwrap(),
            None => format!(r#"{{"type":"reject","call_id":"{call}"}}"#),
        };
        bob.send_raw(&reject).await;
        alice.expect_ended(call, expect).await;
    }
    // The caller cancels while ringing.
    ring(&mut alice, &mut bob, "c4", "alice", "bob").await;
    alice.hangup("c4").await;
    bob.expect_ended("c4", EndReason::Hangup).await;
    alice.expect_silence(QUIET).await;
    d.shutdown().await;
}

async fn ring_timeout(n: usize) {
    let Some(d) = Deployment::new(n, |c| c.ring_timeout = Duration::from_millis(300)).await else {
        return;
    };
    let mut alice = Client::join(d.addr(0), "alice").await;
    let mut bob = Client::join(d.addr(1), "bob").await;
    ring(&mut alice, &mut bob, "c1", "alice", "bob").await;
    alice.expect_ended("c1", EndReason::Timeout).await;
    bob.expect_ended("c1", EndReason::Timeout).await;
    d.shutdown().await;
}

async fn every_device_rings_first_accept_wins(n: usize) {
    let Some(d) = Deployment::new(n, |_| {}).await else {
        return;
    };
    let mut alice = Client::join(d.addr(0), "alice").await;
    let mut phone = Client::join(d.addr(1), "bob").await;
    let mut laptop = Client::join(d.addr(2), "bob").await;
    let mut tablet = Client::join(d.addr(3), "bob").await;
    alice.invite("c1", "bob").await;
    for s in [&mut phone, &mut laptop, &mut tablet] {
        s.expect_invite("c1", "alice").await;
    }
    alice.expect_ringing("c1").await;
    // The caller's candidates reach every ringing device.
    alice.send(&candidate("c1", "x")).await;
    for s in [&mut phone, &mut laptop, &mut tablet] {
        assert!(matches!(s.recv().await, ServerMessage::Candidate(_)));
    }
    laptop.accept("c1").await;
    assert!(matches!(alice.recv().await, ServerMessage::Accepted(_)));
    phone.expect_ended("c1", EndReason::AnsweredElsewhere).await;
    tablet
        .expect_ended("c1", EndReason::AnsweredElsewhere)
        .await;
    // Too late, and twice.
    phone.accept("c1").await;
    assert_eq!(
        phone.expect_error(ErrorCode::UnknownCall).await,
        Some(call_id("c1"))
    );
    laptop.accept("c1").await;
    laptop.expect_error(ErrorCode::BadState).await;
    // After accept, candidates only reach the device that answered.
    alice.send(&candidate("c1", "y")).await;
    assert!(matches!(laptop.recv().await, ServerMessage::Candidate(_)));
    tablet.expect_silence(QUIET).await;

    // A reject from one device ends the call on the others.
    alice.invite("c2", "bob").await;
    for s in [&mut phone, &mut laptop, &mut tablet] {
        s.expect_invite("c2", "alice").await;
    }
    alice.expect_ringing("c2").await;
    tablet
        .send_raw(r#"{"type":"reject","call_id":"c2","reason":"declined"}"#)
        .await;
    alice.expect_ended("c2", EndReason::Declined).await;
    phone.expect_ended("c2", EndReason::RejectedElsewhere).await;
    laptop
        .expect_ended("c2", EndReason::RejectedElsewhere)
        .await;
    d.shutdown().await;
}

async fn glare_keeps_the_lower_call_id(n: usize) {
    let Some(d) = Deployment::new(n, |_| {}).await else {
        return;
    };
    let mut alice = Client::join(d.addr(0), "alice").await;
    let mut bob = Client::join(d.addr(1), "bob").await;
    // alice's "z9" rings bob; bob's "a1" crosses it and sorts lower: z9 ends, a1 rings.
    ring(&mut alice, &mut bob, "z9", "alice", "bob").await;
    bob.invite("a1", "alice").await;
    alice.expect_ended("z9", EndReason::Glare).await;
    alice.expect_invite("a1", "bob").await;
    bob.expect_ended("z9", EndReason::Glare).await;
    bob.expect_ringing("a1").await;
    alice.accept("a1").await;
    assert!(matches!(bob.recv().await, ServerMessage::Accepted(_)));
    // The other order: the new invite sorts higher and loses at once.
    let mut carol = Client::join(d.addr(2), "carol").await;
    let mut dave = Client::join(d.addr(3), "dave").await;
    ring(&mut carol, &mut dave, "b1", "carol", "dave").await;
    dave.invite("x1", "carol").await;
    dave.expect_ended("x1", EndReason::Glare).await;
    carol.expect_silence(QUIET).await;
    d.shutdown().await;
}

async fn outsiders_cannot_touch_a_call(n: usize) {
    let Some(d) = Deployment::new(n, |_| {}).await else {
        return;
    };
    let mut alice = Client::join(d.addr(0), "alice").await;
    let mut bob = Client::join(d.addr(1), "bob").await;
    let mut mallory = Client::join(d.addr(2), "mallory").await;
    connected_call(&mut alice, &mut bob, "c1", "alice", "bob").await;
    for raw in [
        r#"{"type":"candidate","call_id":"c1","candidate":null}"#,
        r#"{"type":"hangup","call_id":"c1"}"#,
        r#"{"type":"accept","call_id":"c1","answer":"x"}"#,
        r#"{"type":"reject","call_id":"c1"}"#,
        r#"{"type":"renegotiate","call_id":"c1","description":{"type":"offer","sdp":"x"}}"#,
    ] {
        mallory.send_raw(raw).await;
        assert_eq!(
            mallory.expect_error(ErrorCode::UnknownCall).await,
            Some(call_id("c1"))
        );
    }
    alice.expect_silence(QUIET).await;
    bob.expect_silence(Duration::ZERO).await;
    // The call still works.
    alice.send(&candidate("c1", "still here")).await;
    assert!(matches!(bob.recv().await, ServerMessage::Candidate(_)));
    d.shutdown().await;
}

async fn call_exists_bad_state_and_too_many_calls(n: usize) {
    let Some(d) = Deployment::new(n, |c| c.max_calls_per_session = 2).await else {
        return;
    };
    let mut alice = Client::join(d.addr(0), "alice").await;
    let mut bob = Client::join(d.addr(1), "bob").await;
    ring(&mut alice, &mut bob, "c1", "alice", "bob").await;
    alice.invite("c1", "bob").await;
    assert_eq!(
        alice.expect_error(ErrorCode::CallExists).await,
        Some(call_id("c1"))
    );
    // Renegotiate before accept, accept by the caller.
    alice
        .send_raw(
            r#"{"type":"renegotiate","call_id":"c1","description":{"type":"offer","sdp":"x"}}"#,
        )
        .await;
    alice.expect_error(ErrorCode::BadState).await;
    alice.accept("c1").await;
    alice.expect_error(ErrorCode::BadState).await;
    ring(&mut alice, &mut bob, "c2", "alice", "bob").await;
    alice.invite("c3", "bob").await;
    assert_eq!(
        alice.expect_error(ErrorCode::RateLimited).await,
        Some(call_id("c3"))
    );
    // bob, in two calls already, is busy for a third caller.
    let mut carol = Client::join(d.addr(2), "carol").await;
    carol.invite("k1", "bob").await;
    carol.expect_ended("k1", EndReason::Busy).await;
    d.shutdown().await;
}

on_one_and_two_nodes!(
    invite_accept_candidates_renegotiate_hangup,
    declined_busy_unavailable_and_cancelled,
    ring_timeout,
    every_device_rings_first_accept_wins,
    glare_keeps_the_lower_call_id,
    outsiders_cannot_touch_a_call,
    call_exists_bad_state_and_too_many_calls,
);
