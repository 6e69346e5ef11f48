//! The signaling socket drops mid-call: media and data keep flowing peer to peer, the SDK
//! reconnects and resumes, and signaling works again with nothing lost. When the session
//! expired meanwhile, the calls end on both sides as the server says.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use peer_sdk::{
    AcceptOptions, CallEvent, CallOptions, ChannelSpec, Client, ClientEvent, EndReason, MediaKind,
};
use support::{CutProxy, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_websocket_mid_call_resumes_and_the_call_goes_on() {
    let server = support::server().await;
    let proxy = CutProxy::start(server.local_addr()).await;
    let alice = Client::connect_with(&support::url(proxy.addr), "alice", None, support::options())
        .await
        .unwrap();
    let bob = support::connect(server.local_addr(), "bob").await;
    let (call, bob_call, chat, bob_chat) = support::chat_call(&alice, &bob).await;
    support::round_trip(&chat, &bob_chat, "before").await;

    // The network drops Alice's signaling socket and refuses her for a moment.
    proxy.block(true);
    proxy.cut();
    support::client_event(&alice, "reconnecting", |e| {
        matches!(e, ClientEvent::Reconnecting { .. }).then_some(())
    })
    .await;
    // Peer to peer, nothing changed.
    support::round_trip(&chat, &bob_chat, "during").await;
    support::round_trip(&bob_chat, &chat, "during, back").await;
    // Bob renegotiates (adds video) while Alice is offline: the server queues his offer.
    // (Samples are refused until the track is negotiated; the loop keeps trying.)
    let bob_video = bob_call.add_track(MediaKind::Video).await.unwrap();
    let feeder = tokio::spawn(async move {
        for _ in 0..500 {
            let _ = bob_video
                .write_sample(Bytes::from(vec![0x10u8; 500]), Duration::from_millis(20))
                .await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    proxy.block(false);
    let resumed = support::client_event(&alice, "reconnected", |e| match e {
        ClientEvent::Reconnected { resumed } => Some(resumed),
        _ => None,
    })
    .await;
    assert!(resumed, "the session should have been resumed");

    // The queued offer arrives, Alice answers, Bob's video reaches her.
    let track = support::call_event(&call, "bob's video track", |e| match e {
        CallEvent::Track(t) => Some(t),
        _ => None,
    })
    .await;
    assert_eq!(track.kind(), MediaKind::Video);
    within("video RTP", track.recv()).await.unwrap();
    support::round_trip(&chat, &bob_chat, "after").await;

    // And signaling both ways: Bob hangs up, Alice hears it.
    bob_call.hangup().await;
    assert_eq!(within("the end", call.ended()).await, EndReason::Hangup);
    feeder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_session_expired_the_calls_end_on_both_sides() {
    let server = support::server_with(|c| c.resume_ttl = Duration::from_millis(300)).await;
    let proxy = CutProxy::start(server.local_addr()).await;
    let alice = Client::connect_with(&support::url(proxy.addr), "alice", None, support::options())
        .await
        .unwrap();
    let bob = support::connect(server.local_addr(), "bob").await;
    let (call, bob_call, _, _) = support::chat_call(&alice, &bob).await;

    proxy.block(true);
    proxy.cut();
    assert_eq!(
        within("bob's end", bob_call.ended()).await,
        EndReason::PeerLost
    );
    proxy.block(false);
    let resumed = support::client_event(&alice, "reconnected", |e| match e {
        ClientEvent::Reconnected { resumed } => Some(resumed),
        _ => None,
    })
    .await;
    assert!(!resumed);
    assert_eq!(
        within("alice's end", call.ended()).await,
        EndReason::PeerLost
    );
    // The new session works: Bob can call Alice again.
    let again = tokio::spawn({
        let alice = alice.clone();
        async move { support::answer(&alice, AcceptOptions::default()).await }
    });
    let second = within(
        "a second call",
        bob.call(
            "alice",
            CallOptions {
                channels: vec![ChannelSpec::reliable("chat")],
                ..Default::default()
            },
        ),
    )
    .await
    .unwrap();
    within("connected", second.connected()).await.unwrap();
    again.await.unwrap().hangup().await;
}
