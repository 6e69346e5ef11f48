//! Bad input over real WebSockets: each gets a typed error, and nobody else notices.

#![allow(clippy::unwrap_used)]
// a test that cannot set up must fail loudly
// A flooder's recovery takes the real time a token needs to refill (1/rate, configured
// short): the test asks again until a pong comes, within a deadline, never a fixed sleep.
#![allow(clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use signaling_protocol::{ClientMessage, ErrorCode, Hello, Ping, ServerMessage};
use support::*;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn bad_messages_get_bad_message_and_the_socket_stays() {
    let server = server().await;
    let addr = server.local_addr();
    let mut alice = Client::join(addr, "alice").await;
    for raw in [
        "not json",
        "[1,2]",
        r#"{"no_type":1}"#,
        r#"{"type":"dance"}"#,
        r#"{"type":"invite","to":"bob","offer":"x"}"#,
        r#"{"type":"invite","call_id":"c 1","to":"bob","offer":"x"}"#,
        r#"{"type":"invite","call_id":"c1","to":"b b","offer":"x"}"#,
        r#"{"type":"candidate","call_id":"c1"}"#,
        r#"{"type":"reject","call_id":"c1","reason":"maybe"}"#,
        r#"{"type":"renegotiate","call_id":"c1","description":{"type":"pranswer","sdp":""}}"#,
    ] {
        alice.send_raw(raw).await;
        alice.expect_error(ErrorCode::BadMessage).await;
    }
    // A bad message that names a valid call gets its call_id back.
    alice.send_raw(r#"{"type":"accept","call_id":"c9"}"#).await;
    assert_eq!(
        alice.expect_error(ErrorCode::BadMessage).await,
        Some(call_id("c9"))
    );
    let meta = "x".repeat(5000);
    alice
        .send_raw(&format!(
            r#"{{"type":"invite","call_id":"c2","to":"bob","offer":"x","meta":"{meta}"}}"#
        ))
        .await;
    assert_eq!(
        alice.expect_error(ErrorCode::BadMessage).await,
        Some(call_id("c2"))
    );
    alice
        .send_frame(Message::Binary(vec![1, 2, 3].into()))
        .await;
    alice.expect_error(ErrorCode::BadMessage).await;
    // Still served.
    alice.send(&ClientMessage::Ping(Ping::default())).await;
    assert_eq!(alice.recv().await, ServerMessage::Pong);
    server.shutdown().await;
}

#[tokio::test]
async fn too_large_closes_with_1009_and_others_carry_on() {
    let server = server().await;
    let addr = server.local_addr();
    let mut alice = Client::join(addr, "alice").await;
    let mut bob = Client::join(addr, "bob").await;
    let mut carol = Client::join(addr, "carol").await;
    connected_call(&mut alice, &mut bob, "c1", "alice", "bob").await;
    let huge = format!(
        r#"{{"type":"invite","call_id":"c2","to":"bob","offer":"{}"}}"#,
        "x".repeat(70_000)
    );
    carol.send_raw(&huge).await;
    carol.expect_error(ErrorCode::TooLarge).await;
    assert_eq!(carol.recv_close().await, Some(1009));
    alice.send(&candidate("c1", "fine")).await;
    assert!(matches!(bob.recv().await, ServerMessage::Candidate(_)));
    // Just under the limit passes.
    let offer = "x".repeat(60_000);
    alice.send_raw(&format!(r#"{{"type":"renegotiate","call_id":"c1","description":{{"type":"offer","sdp":"{offer}"}}}}"#)).await;
    assert!(
        matches!(bob.recv().await, ServerMessage::Renegotiate(r) if r.description.sdp.len() == 60_000)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_flooder_is_rate_limited_while_a_call_goes_on() {
    const RATE: u32 = 4;
    const BURST: usize = 10;
    let server = server_with(|c| {
        c.rate_per_s = RATE;
        c.rate_burst = BURST as u32;
    })
    .await;
    let addr = server.local_addr();
    let mut alice = Client::join(addr, "alice").await;
    let mut bob = Client::join(addr, "bob").await;
    let mut flood = Client::join(addr, "flood").await;
    connected_call(&mut alice, &mut bob, "c1", "alice", "bob").await;
    // 40 pings at once: far more than the burst and what refills while they arrive (the
    // exact burst-then-rate counts are the connection policy's unit tests).
    for _ in 0..40 {
        flood.send(&ClientMessage::Ping(Ping::default())).await;
    }
    let mut answers = Vec::new();
    for _ in 0..40 {
        answers.push(match flood.recv().await {
            ServerMessage::Pong => "pong",
            ServerMessage::Error(e) if e.code == ErrorCode::RateLimited => "rate_limited",
            other => panic!("{other:?}"),
        });
    }
    // The bucket started full: the burst, less the token hello took, passes.
    assert_eq!(answers[..BURST - 1], ["pong"; BURST - 1]);
    assert!(answers.contains(&"rate_limited"), "{answers:?}");
    // Meanwhile the call is untouched.
    for i in 0..5 {
        alice.send(&candidate("c1", &format!("c{i}"))).await;
        assert!(matches!(bob.recv().await, ServerMessage::Candidate(_)));
    }
    // The bucket refills (one token each 1/RATE s): the flooder is served again. Each
    // refused ping costs no token, so asking every 1/(2 RATE) s finds the refill.
    let served = async {
        loop {
            flood.send(&ClientMessage::Ping(Ping::default())).await;
            match flood.recv().await {
                ServerMessage::Pong => return,
                ServerMessage::Error(e) if e.code == ErrorCode::RateLimited => {
                    tokio::time::sleep(Duration::from_secs(1) / (2 * RATE)).await;
                }
                other => panic!("{other:?}"),
            }
        }
    };
    tokio::time::timeout(WAIT, served)
        .await
        .expect("the flooder is served again once its bucket refills");
    server.shutdown().await;
}

#[tokio::test]
async fn a_reader_that_never_reads_is_dropped_and_loses_nothing() {
    let server = server_with(|c| {
        c.send_queue = 16;
        c.rate_per_s = 10_000;
        c.rate_burst = 10_000;
        // What loopback's socket buffers swallowed unread (up to 36 MiB) must fit in the
        // replay buffer, whose bytes the default 4 MiB `queue_bytes` bounds (past it the
        // oldest are dropped: wire_session.rs has the budget's own test).
        c.queue_bytes = 64 << 20;
    })
    .await;
    let addr = server.local_addr();
    let (mut slow, welcome) = Client::join_with(
        addr,
        Hello {
            received: Some(0),
            ..hello("slow")
        },
    )
    .await;
    let mut alice = Client::join(addr, "alice").await;
    connected_call(&mut alice, &mut slow, "c1", "alice", "slow").await;
    let mut received = 1; // the invite (welcome is not counted)
    // 60 MB of candidates: more than loopback's socket buffers (up to 32 MiB + 4 MiB) hold,
    // so the server's writes block and slow's queue overflows.
    let big = "y".repeat(60_000);
    for i in 0..1000 {
        alice.send(&candidate("c1", &format!("{i}:{big}"))).await;
    }
    // The server handles a connection's messages in order: after this pong, all 1000 are queued.
    alice.send(&ClientMessage::Ping(Ping::default())).await;
    assert_eq!(alice.recv().await, ServerMessage::Pong);
    // The server cut slow off; a client that does not read cannot get a close frame.
    let mut next = 0;
    while let Ok(msg) = slow.recv_close_or_message().await {
        assert_eq!(candidate_index(&msg), next);
        next += 1;
        received += 1;
    }
    assert!(next < 1000, "dropped before the end");
    let resume = Hello {
        resume: Some(welcome.session),
        received: Some(received),
        ..hello("slow")
    };
    let (mut again, w) = Client::join_with(addr, resume).await;
    assert!(w.resumed);
    while next < 1000 {
        assert_eq!(candidate_index(&again.recv().await), next);
        next += 1;
    }
    again.expect_silence(Duration::from_millis(200)).await;
    server.shutdown().await;
}

fn candidate_index(msg: &ServerMessage) -> usize {
    match msg {
        ServerMessage::Candidate(c) => {
            let text = &c.candidate.as_ref().unwrap().candidate;
            text.split(':').next().unwrap().parse().unwrap()
        }
        other => panic!("expected a candidate, got {other:?}"),
    }
}

/// Binary frames are refused, and they take from the same bucket as text: a flood of them
/// gets as many answers as the bucket holds, not one each.
#[tokio::test]
async fn binary_frames_are_rate_limited_too() {
    const FLOOD: usize = 30;
    let server = server_with(|c| {
        c.rate_per_s = 1;
        c.rate_burst = 4;
    })
    .await;
    let mut flood = Client::join(server.local_addr(), "flood").await;
    for _ in 0..FLOOD {
        flood
            .send_frame(tokio_tungstenite::tungstenite::Message::Binary(
                vec![0u8; 16].into(),
            ))
            .await;
    }
    // A ping marks the end: answered `rate_limited` while the bucket is empty, and a pong
    // once a token is back; every binary frame before it was handled by then.
    let mut refused = 0;
    let until_pong = async {
        loop {
            flood.send(&ClientMessage::Ping(Ping::default())).await;
            match flood.recv().await {
                ServerMessage::Error(e) if e.code == ErrorCode::BadMessage => refused += 1,
                ServerMessage::Error(e) if e.code == ErrorCode::RateLimited => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                ServerMessage::Pong => break,
                other => panic!("{other:?}"),
            }
        }
    };
    tokio::time::timeout(WAIT, until_pong)
        .await
        .expect("a pong once the bucket refills");
    // The burst less hello's token is answered; the rest of the flood is dropped unanswered
    // (the exact burst-then-rate counts are the connection policy's unit tests).
    assert!(refused >= 3, "only {refused} binary frames answered");
    assert!(
        refused < FLOOD / 2,
        "{refused} of {FLOOD} binary frames answered"
    );
    server.shutdown().await;
}
