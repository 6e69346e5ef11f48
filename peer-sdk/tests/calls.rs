//! Two SDK clients call each other through a real signaling server on loopback: data
//! channels, RTP both ways, stats, hangup, renegotiation, ICE restart, relay-only.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use peer_sdk::{
    AcceptOptions, Call, CallEvent, CallOptions, CandidateType, ChannelSpec, ClientEvent,
    EndReason, IcePolicy, LocalTrack, MediaKind, RemoteTrack,
};
use support::within;

/// An ICE restart from `call`'s side: renegotiated through signaling, and the chat still
/// goes through.
async fn restart_ice(call: &Call, chat: &peer_sdk::DataChannel, other: &peer_sdk::DataChannel) {
    call.restart_ice().unwrap();
    support::call_event(call, "the restart's answer", |e| {
        matches!(e, CallEvent::Renegotiated).then_some(())
    })
    .await;
    support::round_trip(chat, other, "after the restart").await;
}

/// Feeds `track` with frames until `stop` fires (a stand-in for a capture loop).
fn feed(track: LocalTrack) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let frame = match track.kind() {
            // An Opus "silence" packet (TOC 0xF8: CELT fullband 20 ms), and a small
            // payload for video: the SDK carries frames, it does not decode them.
            MediaKind::Audio => Bytes::from_static(&[0xF8, 0xFF, 0xFE]),
            MediaKind::Video => Bytes::from(vec![0x10u8; 900]),
        };
        let pace = Duration::from_millis(20);
        for _ in 0..3000 {
            let _ = track.write_sample(frame.clone(), pace).await;
            tokio::time::sleep(pace).await;
        }
    })
}

/// Waits for `n` RTP packets on `track`.
async fn expect_rtp(track: &RemoteTrack, n: usize) {
    within("RTP packets", async {
        for _ in 0..n {
            let packet = track.recv().await.expect("track ended");
            assert!(!packet.payload.is_empty());
        }
    })
    .await;
}

async fn ended(call: &Call) -> EndReason {
    within("the end of the call", async {
        loop {
            match call.next_event().await {
                Some(CallEvent::Ended(reason)) => return reason,
                Some(_) => continue,
                None => return call.ended().await,
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_call_carries_data_and_media_both_ways_then_hangs_up() {
    a_call_with_data_and_media(1).await;
}

/// The same call with alice and bob signed in on two signaling nodes sharing a Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_between_two_signaling_nodes_carries_data_and_media() {
    a_call_with_data_and_media(2).await;
}

async fn a_call_with_data_and_media(nodes: usize) {
    let Some(d) = test_support::signaling_server::Deployment::new(nodes, |_| {}).await else {
        return;
    };
    let alice = support::connect(d.addr(0), "alice").await;
    let bob = support::connect(d.addr(1), "bob").await;

    let answering = tokio::spawn({
        let bob = bob.clone();
        async move {
            let incoming = support::incoming(&bob).await;
            assert_eq!(incoming.from().as_str(), "alice");
            assert_eq!(incoming.meta(), Some(&serde_json::json!({"name": "Alice"})));
            incoming
                .accept(AcceptOptions {
                    tracks: vec![MediaKind::Audio, MediaKind::Video],
                    ..Default::default()
                })
                .await
                .unwrap()
        }
    });
    let call = within(
        "the call to be answered",
        alice.call(
            "bob",
            CallOptions {
                tracks: vec![MediaKind::Audio, MediaKind::Video],
                channels: vec![ChannelSpec::reliable("chat")],
                meta: Some(serde_json::json!({"name": "Alice"})),
                ..Default::default()
            },
        ),
    )
    .await
    .unwrap();
    let bob_call = answering.await.unwrap();
    assert_eq!(bob_call.peer().as_str(), "alice");

    // Data channel both ways.
    let chat = call.data_channel("chat").unwrap();
    within("chat open", chat.opened()).await.unwrap();
    let bob_chat = support::remote_channel(&bob_call).await;
    assert_eq!(bob_chat.label(), "chat");
    support::round_trip(&chat, &bob_chat, "hello bob").await;
    support::round_trip(&bob_chat, &chat, "hello alice").await;

    // RTP both ways, audio and video.
    let feeders: Vec<_> = call
        .local_tracks()
        .into_iter()
        .chain(bob_call.local_tracks())
        .map(feed)
        .collect();
    assert_eq!(feeders.len(), 4);
    for side in [&call, &bob_call] {
        let mut kinds = Vec::new();
        for _ in 0..2 {
            let track = support::remote_track(side).await;
            expect_rtp(&track, 5).await;
            kinds.push((track.kind(), track.mime_type().to_ascii_lowercase()));
        }
        kinds.sort_by_key(|(k, _)| *k == MediaKind::Video);
        assert_eq!(
            kinds,
            vec![
                (MediaKind::Audio, "audio/opus".to_owned()),
                (MediaKind::Video, "video/vp8".to_owned())
            ]
        );
    }

    // Stats: a direct host pair on loopback, bytes both ways.
    let stats = call.stats().await;
    assert_eq!(
        stats.pair,
        Some((CandidateType::Host, CandidateType::Host)),
        "{stats:?}"
    );
    assert!(!stats.is_relayed());
    assert!(
        stats.bytes_sent > 0 && stats.bytes_received > 0,
        "{stats:?}"
    );

    call.hangup().await;
    assert_eq!(ended(&bob_call).await, EndReason::Hangup);
    assert_eq!(call.ended().await, EndReason::Hangup);
    for f in feeders {
        f.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_call_goes_through_our_turn_relay() {
    let server = support::server_with_turn().await;
    let mut options = support::options();
    options.peer.policy = IcePolicy::RelayOnly;
    // Data both ways, relay/relay on both sides, both holding an allocation on our relay.
    let (alice, bob) = support::alice_and_bob(server.local_addr(), options).await;
    let (call, bob_call, _) = support::relayed_chat(&server, &alice, &bob).await;
    call.hangup().await;
    assert_eq!(ended(&bob_call).await, EndReason::Hangup);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_added_mid_call_and_an_ice_restart_keep_the_call_going() {
    let server = support::server().await;
    let alice = support::connect(server.local_addr(), "alice").await;
    let bob = support::connect(server.local_addr(), "bob").await;
    let (call, bob_call, chat, bob_chat) = support::chat_call(&alice, &bob).await;

    // The caller adds audio: the callee receives it.
    let alice_audio = feed(call.add_track(MediaKind::Audio).await.unwrap());
    let track = support::remote_track(&bob_call).await;
    assert_eq!(track.kind(), MediaKind::Audio);
    expect_rtp(&track, 5).await;

    // The callee adds video: the caller receives it.
    let bob_video = feed(bob_call.add_track(MediaKind::Video).await.unwrap());
    let track = support::remote_track(&call).await;
    assert_eq!(track.kind(), MediaKind::Video);
    expect_rtp(&track, 5).await;

    // An ICE restart renegotiates and the call goes on.
    restart_ice(&call, &chat, &bob_chat).await;
    expect_rtp(&track, 5).await;
    // The restarted ICE selects a pair again.
    let pair = within("a selected pair after the restart", async {
        loop {
            if let Some(pair) = call.stats().await.pair {
                return pair;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Direct again. The remote end may be peer-reflexive: under load bob's first check of
    // the new generation can arrive before his trickled host candidate (same address).
    assert!(
        matches!(
            pair,
            (
                CandidateType::Host,
                CandidateType::Host | CandidateType::Prflx
            )
        ),
        "{pair:?}"
    );
    call.hangup().await;
    assert_eq!(ended(&bob_call).await, EndReason::Hangup);
    alice_audio.abort();
    bob_video.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreliable_channels_deliver_and_a_slow_reader_holds_the_sender_back() {
    let server = support::server().await;
    let mut options = support::options();
    options.peer.data_channel_send_buffer = 64 * 1024;
    let url = support::url(server.local_addr());
    let alice = peer_sdk::Client::connect_with(&url, "alice", None, options)
        .await
        .unwrap();
    let bob = support::connect(server.local_addr(), "bob").await;
    let (call, bob_call, chat, bob_chat) = support::chat_call(&alice, &bob).await;

    // Unordered, no retransmissions: on loopback the message still arrives.
    let fast = call
        .open_channel(ChannelSpec::unreliable("state"))
        .await
        .unwrap();
    within("state open", fast.opened()).await.unwrap();
    let bob_fast = support::remote_channel(&bob_call).await;
    assert_eq!(bob_fast.label(), "state");
    support::round_trip(&fast, &bob_fast, "x=1").await;

    // Bob stops reading "chat": Alice's sends must stop being accepted instead of
    // buffering without bound (64 KiB send buffer, 256 queued messages at Bob, the
    // SCTP window). The loop is bounded: 64 MiB at most.
    let chunk = Bytes::from(vec![7u8; 16 * 1024]);
    let mut accepted = 0usize;
    let blocked = loop {
        if accepted == 4096 {
            break false;
        }
        match tokio::time::timeout(Duration::from_secs(2), chat.send(chunk.clone())).await {
            Ok(result) => {
                result.unwrap();
                accepted += 1;
            }
            Err(_) => break true,
        }
    };
    assert!(blocked, "send never waited after {accepted} messages");
    assert!(chat.buffered_amount().await <= 64 * 1024 + chunk.len());
    // Once Bob reads again, everything arrives, in order and complete.
    let mut got = 0usize;
    while got < accepted * chunk.len() {
        let msg = within("the backlog", bob_chat.recv()).await.unwrap();
        assert_eq!(msg.data.len(), chunk.len());
        got += msg.data.len();
    }
    call.hangup().await;
}

/// A rolling upgrade: the signaling node both parties are on drains mid-call (what SIGTERM
/// does in a cluster). The SDK acts on its close code (4001): both clients reconnect at
/// once, through the load balancer (nginx) to the other node, and resume there. The call
/// goes on: data and RTP flow, an ICE restart renegotiates through the new node, and the
/// hangup reaches the other side (the call moved; it did not end with `peer_lost`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_survives_the_drain_of_its_signaling_node() {
    let Some(d) = test_support::signaling_server::Deployment::new(2, |_| {}).await else {
        return;
    };
    let nodes = [d.nodes[0].local_addr(), d.nodes[1].local_addr()];
    let Some(lb) = test_support::load_balancer::LoadBalancer::start(&nodes) else {
        return;
    };
    let alice = support::connect(lb.addr(), "alice").await;
    let bob = support::connect(lb.addr(), "bob").await;
    let (call, bob_call, chat, bob_chat) = support::chat_call(&alice, &bob).await;
    let audio = feed(call.add_track(MediaKind::Audio).await.unwrap());
    let track = support::remote_track(&bob_call).await;
    expect_rtp(&track, 5).await;

    let started = std::time::Instant::now();
    assert!(
        within("the drain", d.nodes[0].drain()).await,
        "every session and call moved"
    );
    for client in [&alice, &bob] {
        let resumed = support::client_event(client, "the resume on the other node", |e| match e {
            ClientEvent::Reconnected { resumed } => Some(resumed),
            _ => None,
        })
        .await;
        assert!(resumed, "the session resumed, its calls with it");
    }
    eprintln!("drained and resumed in {:?}", started.elapsed());

    support::round_trip(&chat, &bob_chat, "after the drain").await;
    support::round_trip(&bob_chat, &chat, "and back").await;
    expect_rtp(&track, 5).await;
    restart_ice(&call, &chat, &bob_chat).await;
    bob_call.hangup().await;
    assert_eq!(ended(&call).await, EndReason::Hangup);
    audio.abort();
    alice.close().await;
    bob.close().await;
    drop(lb);
    d.shutdown().await;
}
