//! Shared by the SDK's integration tests: a real signaling server on loopback (with the
//! embedded TURN relay when asked) and the TCP proxy whose connections a test can cut, both
//! from test-support; clients bound to loopback; timeouts so that nothing hangs.
#![allow(dead_code, clippy::unwrap_used, clippy::disallowed_methods)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use peer_sdk::{
    AcceptOptions, Call, CallEvent, CallOptions, ChannelSpec, Client, ClientEvent, ClientOptions,
    DataChannel, IncomingCall, PeerOptions, RemoteTrack,
};
#[allow(unused_imports)]
pub use test_support::cut_proxy::CutProxy;
#[allow(unused_imports)]
pub use test_support::signaling_server::{server, server_with, server_with_turn};

/// How long a test waits for something that must happen.
pub const WAIT: Duration = Duration::from_secs(15);

/// Fails the test if `f` takes longer than [`WAIT`].
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    test_support::wait::within_for(WAIT, what, f).await
}

pub fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/ws")
}

/// Client options for loopback: host candidates on 127.0.0.1, quick reconnects.
pub fn options() -> ClientOptions {
    ClientOptions {
        peer: PeerOptions {
            bind: vec!["127.0.0.1:0".parse().unwrap()],
            ..PeerOptions::default()
        },
        reconnect_base: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(500),
        ..ClientOptions::default()
    }
}

pub async fn connect(addr: SocketAddr, user: &str) -> Client {
    within(
        "connect",
        Client::connect_with(&url(addr), user, None, options()),
    )
    .await
    .unwrap()
}

/// The next incoming call of `client` (other events are skipped).
pub async fn incoming(client: &Client) -> IncomingCall {
    client_event(client, "an incoming call", |e| match e {
        ClientEvent::Incoming(call) => Some(*call),
        _ => None,
    })
    .await
}

/// Answers the next incoming call.
pub async fn answer(client: &Client, options: AcceptOptions) -> Call {
    let call = incoming(client).await;
    within("accept", call.accept(options)).await.unwrap()
}

/// alice and bob, both signed in with `options`.
pub async fn alice_and_bob(addr: SocketAddr, options: ClientOptions) -> (Client, Client) {
    let url = url(addr);
    let connect = |user: &'static str, options: ClientOptions| {
        within("connect", Client::connect_with(&url, user, None, options))
    };
    let alice = connect("alice", options.clone()).await.unwrap();
    let bob = connect("bob", options).await.unwrap();
    (alice, bob)
}

/// `alice` calls `bob` (both relay-only clients of `server`) and they chat both ways; both
/// sides must be on `relay/relay`, each holding an allocation on the server's relay.
/// Returns both calls and their stats.
pub async fn relayed_chat(
    server: &signaling::Server,
    alice: &Client,
    bob: &Client,
) -> (Call, Call, [peer_sdk::CallStats; 2]) {
    let (call, bob_call, chat, bob_chat) = chat_call(alice, bob).await;
    round_trip(&chat, &bob_chat, "through the relay").await;
    round_trip(&bob_chat, &chat, "and back").await;
    let stats = [call.stats().await, bob_call.stats().await];
    for side in &stats {
        let relayed = (
            peer_sdk::CandidateType::Relay,
            peer_sdk::CandidateType::Relay,
        );
        assert_eq!(side.pair, Some(relayed), "{side:?}");
        assert!(side.is_relayed());
    }
    assert!(server.turn().unwrap().allocation_count() >= 2);
    (call, bob_call, stats)
}

/// `caller` calls `callee` with a reliable "chat" channel; the callee answers with
/// nothing. Returns both calls once answered (the channel may not be open yet).
pub async fn answered_chat_call(caller: &Client, callee: &Client) -> (Call, Call) {
    let answering = tokio::spawn({
        let callee = callee.clone();
        async move { answer(&callee, AcceptOptions::default()).await }
    });
    let options = CallOptions {
        channels: vec![ChannelSpec::reliable("chat")],
        ..Default::default()
    };
    let call = within(
        "the call to be answered",
        caller.call(callee.user().as_str(), options),
    )
    .await
    .unwrap();
    (call, answering.await.unwrap())
}

/// `caller` calls `callee` with a reliable "chat" channel; the callee answers with
/// nothing. Returns both calls and both ends of the open channel.
pub async fn chat_call(caller: &Client, callee: &Client) -> (Call, Call, DataChannel, DataChannel) {
    let (call, callee_call) = answered_chat_call(caller, callee).await;
    let chat = call.data_channel("chat").unwrap();
    within("chat open", chat.opened()).await.unwrap();
    let callee_chat = remote_channel(&callee_call).await;
    (call, callee_call, chat, callee_chat)
}

/// The next data channel the other side opens.
pub async fn remote_channel(call: &Call) -> DataChannel {
    call_event(call, "a remote data channel", |e| match e {
        CallEvent::DataChannel(c) => Some(c),
        CallEvent::Ended(r) => panic!("call ended ({r}) before a data channel"),
        _ => None,
    })
    .await
}

/// Waits for the next event `pick` accepts, skipping the others.
pub async fn call_event<T>(
    call: &Call,
    what: &str,
    mut pick: impl FnMut(CallEvent) -> Option<T>,
) -> T {
    within(what, async {
        loop {
            match call.next_event().await {
                Some(event) => {
                    if let Some(found) = pick(event) {
                        return found;
                    }
                }
                None => panic!("no more call events while waiting for {what}"),
            }
        }
    })
    .await
}

/// The next client event `pick` accepts.
pub async fn client_event<T>(
    client: &Client,
    what: &str,
    mut pick: impl FnMut(ClientEvent) -> Option<T>,
) -> T {
    within(what, async {
        loop {
            match client.next_event().await {
                Some(event) => {
                    if let Some(found) = pick(event) {
                        return found;
                    }
                }
                None => panic!("client closed while waiting for {what}"),
            }
        }
    })
    .await
}

/// The next remote track.
pub async fn remote_track(call: &Call) -> RemoteTrack {
    call_event(call, "a remote track", |e| match e {
        CallEvent::Track(t) => Some(t),
        CallEvent::Ended(r) => panic!("call ended ({r}) before a track"),
        _ => None,
    })
    .await
}

/// Sends `text` on `from` and waits for it on `to`.
pub async fn round_trip(from: &DataChannel, to: &DataChannel, text: &str) {
    within("a data channel message", async {
        from.send_text(text).await.unwrap();
        let msg = to.recv().await.expect("channel closed");
        assert_eq!(msg.text(), Some(text));
        assert!(msg.is_text);
    })
    .await
}
