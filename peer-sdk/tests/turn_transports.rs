//! TURN over TCP and TLS (vendor/README.md, `turn-tcp-tls.patch`): when the relay is
//! offered only as `turn:…?transport=tcp` or `turns:` (a network that lets no UDP out),
//! the SDK still gets a relayed candidate and the call goes through our relay; offered all
//! three, it prefers UDP, then TCP, then TLS, as browsers do. webrtc-rs 0.21.1 skipped
//! such URLs: these calls found no candidate pair at all.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use peer_sdk::{ClientOptions, IcePolicy, RelayTransport};
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

/// alice calls bob, both relay-only, chats both ways through the relay, and returns how
/// each side reaches it.
async fn relayed_call(server: &signaling::Server, options: ClientOptions) -> [RelayTransport; 2] {
    let (alice, bob) = support::alice_and_bob(server.local_addr(), options).await;
    let (call, _bob_call, stats) = support::relayed_chat(server, &alice, &bob).await;
    call.hangup().await;
    stats.map(|side| side.relay_transport.expect("a relay transport"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_offered_only_over_tcp_carries_the_call() {
    let server = server_with_relay_over(&[RelayOver::Tcp], None).await;
    let transports = relayed_call(&server, relay_only(None)).await;
    assert_eq!(transports, [RelayTransport::Tcp; 2]);
}

/// A relay-only call with the relay offered `over` those transports (TLS with a certificate
/// the clients trust); returns how each side reached it.
async fn relayed_call_over(test: &str, over: &[RelayOver]) -> [RelayTransport; 2] {
    let (ca, dir, tls) = relay_tls(test);
    let server = server_with_relay_over(over, Some(tls)).await;
    let transports = relayed_call(&server, relay_only(Some(ca.pem()))).await;
    let _ = std::fs::remove_dir_all(dir);
    transports
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_offered_only_over_tls_carries_the_call() {
    let transports = relayed_call_over("tls", &[RelayOver::Tls]).await;
    assert_eq!(transports, [RelayTransport::Tls; 2]);
}

/// Offered all three, ICE ranks the relay candidates UDP > TCP > TLS and picks UDP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_is_preferred_to_tcp_and_tcp_to_tls() {
    let all = [RelayOver::Tls, RelayOver::Tcp, RelayOver::Udp];
    let transports = relayed_call_over("all", &all).await;
    assert_eq!(transports, [RelayTransport::Udp; 2]);
    let transports = relayed_call_over("no-udp", &[RelayOver::Tls, RelayOver::Tcp]).await;
    assert_eq!(transports, [RelayTransport::Tcp; 2]);
}

/// A `turns:` relay whose certificate the client does not trust (no `extra_ca_pem` for the
/// test CA) is refused at the TLS handshake: no allocation, no candidate, no path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turns_relay_with_an_untrusted_certificate_is_refused() {
    let (_ca, dir, tls) = relay_tls("untrusted");
    let server = server_with_relay_over(&[RelayOver::Tls], Some(tls)).await;
    let (alice, bob) = support::alice_and_bob(server.local_addr(), relay_only(None)).await;
    let (call, bob_call) = support::answered_chat_call(&alice, &bob).await;
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
