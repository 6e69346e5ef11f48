//! Relayed packets go out when they are produced (vendor/README.md: `relay-flush.patch`,
//! `early-data.patch`, `candidate-wake.patch`). These are not speed benchmarks (peer-bench measures speed): each
//! bound is many times what the call takes here, and the same number of webrtc-rs timer
//! periods (its driver wakes every 200 ms while idle; a lost DTLS flight is resent after
//! 1 s), so a test fails only when packets wait for a timer instead of being sent.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::time::{Duration, Instant};

use peer_sdk::IcePolicy;

/// 4 MiB through the relay in 16 KiB messages on one reliable channel. Without
/// `relay-flush.patch` the packets the receiving side produced while handling relayed data
/// (SCTP SACKs among them) waited in the relayer for the driver's next wake-up (up to
/// 200 ms): the sender stalled on its window each time, and relayed transfers ran at
/// 0.1 to 0.3 MB/s (docs/benchmarks.md), 14 s and more for these 4 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_data_does_not_wait_for_a_timer_tick() {
    const MESSAGES: usize = 256;
    let server = support::server_with_turn().await;
    let mut options = support::options();
    options.peer.policy = IcePolicy::RelayOnly;
    let (alice, bob) = support::alice_and_bob(server.local_addr(), options).await;
    let (call, _bob_call, chat, bob_chat) = support::chat_call(&alice, &bob).await;
    let started = Instant::now();
    let receiving = tokio::spawn(async move {
        let mut bytes = 0;
        for _ in 0..MESSAGES {
            bytes += bob_chat.recv().await.expect("channel closed").data.len();
        }
        bytes
    });
    for _ in 0..MESSAGES {
        chat.send(vec![7u8; 16 * 1024]).await.unwrap();
    }
    let bytes = support::within("the transfer", receiving).await.unwrap();
    let took = started.elapsed();
    assert_eq!(bytes, MESSAGES * 16 * 1024);
    // 40 timer periods: 0.5 MB/s, which the relayed path without the patch never reached.
    assert!(
        took < Duration::from_secs(8),
        "4 MiB through the relay took {took:?}"
    );
    assert!(call.stats().await.is_relayed());
    call.hangup().await;
}

/// Relay-only calls open their data channel without a DTLS retransmission, and without
/// waiting for an ICE check tick. Without `early-data.patch` the answerer's first DTLS
/// flight, sent as soon as it was nominated, often reached the caller through the relay
/// before the answer to the caller's nominating check did; the caller dropped it (no
/// selected pair yet) and the flight was resent 1 s later. Without `candidate-wake.patch`
/// a trickled remote candidate waited for the driver's next wake-up (up to a 200 ms check
/// tick) before its pairs were checked: every relay-only call took about 206 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_calls_set_up_without_waiting_for_a_timer() {
    let server = support::server_with_turn().await;
    let mut options = support::options();
    options.peer.policy = IcePolicy::RelayOnly;
    let (alice, bob) = support::alice_and_bob(server.local_addr(), options).await;
    let mut setups = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let (call, bob_call) = support::answered_chat_call(&alice, &bob).await;
        let chat = call.data_channel("chat").unwrap();
        support::within("chat open", chat.opened()).await.unwrap();
        let took = started.elapsed();
        // A retransmitted DTLS flight alone takes 1 s.
        assert!(
            took < Duration::from_millis(900),
            "a relay-only call took {took:?} to open its channel"
        );
        setups.push(took);
        call.hangup().await;
        drop(bob_call);
    }
    // Most calls (the median) must not have waited for a 200 ms check tick; these calls
    // take a few ms here, so 150 ms leaves room for a loaded machine.
    setups.sort();
    assert!(
        setups[2] < Duration::from_millis(150),
        "relay-only setups {setups:?}"
    );
}
