//! TURN over TCP and TLS (vendor/README.md, `turn-tcp-tls.patch`): when the relay is
//! offered only as `turn:…?transport=tcp` or `turns:` (a network that lets no UDP out),
//! the SDK still gets a relayed candidate and the call goes through our relay; offered all
//! three, it prefers UDP, then TCP, then TLS, as browsers do. webrtc-rs 0.21.1 skipped
//! such URLs: these calls found no candidate pair at all.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use peer_sdk::{
    AcceptOptions, CallOptions, CandidateType, ChannelSpec, ClientOptions, IcePolicy,
    RelayTransport,
};
use test_support::pki::{Leaf, TestCa};
use test_support::signaling_server::{RelayOver, server_with_relay_over};

fn relay_only(ca_pem: Option<&str>) -> ClientOptions {
    let mut options = support::options();
    options.peer.policy = IcePolicy::RelayOnly;
    options.extra_ca_pem = ca_pem.map(|pem| pem.as_bytes().to_vec());
    options
}

/// A test CA (returned, with the directory holding it, one per `test`) and the relay's
/// TLS configuration with a certificate it signed for 127.0.0.1.
fn relay_tls(
    test: &str,
) -> (
    TestCa,
    std::path::PathBuf,
    std::sync::Arc<turn_relay::rustls::ServerConfig>,
) {
    let dir = std::env::temp_dir().join(format!("turn-transports-{}-{test}", std::process::id()));
    let ca = TestCa::new(&dir, "relay-test");
    let files = ca.issue("relay", &Leaf::default());
    let config = turn_relay::config::load_tls(&files.cert, &files.key).unwrap();
    (ca, dir, config)
}

/// alice calls bob, both relay-only, chats both ways, and returns how each side reaches
/// the relay.
async fn relayed_call(server: &signaling::Server, options: ClientOptions) -> [RelayTransport; 2] {
    let url = support::url(server.local_addr());
    let alice = peer_sdk::Client::connect_with(&url, "alice", None, options.clone())
        .await
        .unwrap();
    let bob = peer_sdk::Client::connect_with(&url, "bob", None, options)
        .await
        .unwrap();
    let (call, bob_call, chat, bob_chat) = support::chat_call(&alice, &bob).await;
    support::round_trip(&chat, &bob_chat, "through the relay").await;
    support::round_trip(&bob_chat, &chat, "and back").await;
    let mut transports = Vec::new();
    for side in [&call, &bob_call] {
        let stats = side.stats().await;
        assert_eq!(
            stats.pair,
            Some((CandidateType::Relay, CandidateType::Relay)),
            "{stats:?}"
        );
        transports.push(stats.relay_transport.expect("a relay transport"));
    }
    assert!(server.turn().unwrap().allocation_count() >= 2);
    call.hangup().await;
    [transports[0], transports[1]]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_offered_only_over_tcp_carries_the_call() {
    let server = server_with_relay_over(&[RelayOver::Tcp], None).await;
    let transports = relayed_call(&server, relay_only(None)).await;
    assert_eq!(transports, [RelayTransport::Tcp; 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_offered_only_over_tls_carries_the_call() {
    let (ca, dir, tls) = relay_tls("tls");
    let server = server_with_relay_over(&[RelayOver::Tls], Some(tls)).await;
    let transports = relayed_call(&server, relay_only(Some(ca.pem()))).await;
    assert_eq!(transports, [RelayTransport::Tls; 2]);
    let _ = std::fs::remove_dir_all(dir);
}

/// Offered all three, ICE ranks the relay candidates UDP > TCP > TLS and picks UDP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_is_preferred_to_tcp_and_tcp_to_tls() {
    let (ca, dir, tls) = relay_tls("preference");
    let server = server_with_relay_over(
        &[RelayOver::Tls, RelayOver::Tcp, RelayOver::Udp],
        Some(tls.clone()),
    )
    .await;
    let transports = relayed_call(&server, relay_only(Some(ca.pem()))).await;
    assert_eq!(transports, [RelayTransport::Udp; 2]);

    let server = server_with_relay_over(&[RelayOver::Tls, RelayOver::Tcp], Some(tls)).await;
    let transports = relayed_call(&server, relay_only(Some(ca.pem()))).await;
    assert_eq!(transports, [RelayTransport::Tcp; 2]);
    let _ = std::fs::remove_dir_all(dir);
}

/// A `turns:` relay whose certificate the client does not trust (no `extra_ca_pem` for the
/// test CA) is refused at the TLS handshake: no allocation, no candidate, no path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turns_relay_with_an_untrusted_certificate_is_refused() {
    let (_ca, dir, tls) = relay_tls("untrusted");
    let server = server_with_relay_over(&[RelayOver::Tls], Some(tls)).await;
    let url = support::url(server.local_addr());
    let options = relay_only(None);
    let alice = peer_sdk::Client::connect_with(&url, "alice", None, options.clone())
        .await
        .unwrap();
    let bob = peer_sdk::Client::connect_with(&url, "bob", None, options)
        .await
        .unwrap();
    let answering = tokio::spawn({
        let bob = bob.clone();
        async move { support::answer(&bob, AcceptOptions::default()).await }
    });
    let options = CallOptions {
        channels: vec![ChannelSpec::reliable("chat")],
        ..Default::default()
    };
    let call = support::within("the call to be answered", alice.call("bob", options))
        .await
        .unwrap();
    let bob_call = answering.await.unwrap();
    // Each side tries its relay once (one connection per address family: IPv4 here)
    // and gives up at the handshake; the relay sees the failures.
    let turn = server.turn().unwrap();
    support::within("both TLS handshakes to fail", async {
        while turn.metrics().dropped_count("tls_handshake") < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(turn.allocation_count(), 0);
    for side in [&call, &bob_call] {
        assert_eq!(side.stats().await.pair, None);
    }
    call.hangup().await;
    let _ = std::fs::remove_dir_all(dir);
}
