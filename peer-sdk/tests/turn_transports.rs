//! TURN over TCP and TLS (vendor/README.md, `turn-tcp-tls.patch`): when the relay is
//! offered only as `turn:…?transport=tcp` or `turns:` (a network that lets no UDP out),
//! the SDK still gets a relayed candidate and the call goes through our relay; offered all
//! three, it prefers UDP, then TCP, then TLS, as browsers do. webrtc-rs 0.21.1 skipped
//! such URLs: these calls found no candidate pair at all.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use peer_sdk::{CandidateType, ClientOptions, IcePolicy, RelayTransport};
use test_support::pki::{Leaf, TestCa};
use test_support::signaling_server::{RelayOver, server_with_relay_over};

fn relay_only(ca_pem: Option<&str>) -> ClientOptions {
    let mut options = support::options();
    options.peer.policy = IcePolicy::RelayOnly;
    options.extra_ca_pem = ca_pem.map(|pem| pem.as_bytes().to_vec());
    options
}

/// A test CA (returned, with the directory holding it) and the relay's TLS configuration
/// with a certificate it signed for 127.0.0.1.
fn relay_tls() -> (
    TestCa,
    std::path::PathBuf,
    std::sync::Arc<turn_relay::rustls::ServerConfig>,
) {
    let dir = std::env::temp_dir().join(format!("turn-transports-{}", std::process::id()));
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
    let (ca, dir, tls) = relay_tls();
    let server = server_with_relay_over(&[RelayOver::Tls], Some(tls)).await;
    let transports = relayed_call(&server, relay_only(Some(ca.pem()))).await;
    assert_eq!(transports, [RelayTransport::Tls; 2]);
    let _ = std::fs::remove_dir_all(dir);
}

/// Offered all three, ICE ranks the relay candidates UDP > TCP > TLS and picks UDP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_is_preferred_to_tcp_and_tcp_to_tls() {
    let (ca, dir, tls) = relay_tls();
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
