//! Interop with clients nobody here wrote: coturn's `turnutils_uclient` allocates,
//! binds channels (or sends Send indications) and relays through our relay to coturn's
//! `turnutils_peer` echo peer, over UDP, TCP and TLS, with long-term and REST
//! credentials. Every message must come back: no loss.
#![allow(clippy::unwrap_used)]

mod support;

use support::{Credentials, PASSWORD, Peers, REST_SECRET, Tls, USER};
use turn_proto::Transport;
use turn_relay::Way;

/// How `turnutils_uclient` sends its data to the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relaying {
    /// ChannelBind, then ChannelData.
    Channels,
    /// CreatePermission, then Send indications (`-s`).
    SendIndications,
}

/// 10 clients × 200 messages of 100 bytes, through our relay and back. With
/// `FixedAndRest` the clients use the fixed user; with `RestOnly`, REST credentials.
async fn run(transport: Transport, relaying: Relaying, credentials: Credentials) {
    if !support::require("turnutils_uclient", "coturn")
        || !support::require("turnutils_peer", "coturn")
    {
        return;
    }
    let tls = match transport {
        Transport::Tls => Tls::SelfSigned,
        Transport::Udp | Transport::Tcp => Tls::Off,
    };
    let settings = support::settings(Peers::AllowLoopback, credentials);
    let relay = support::start(settings, tls).await;
    let (_peer, peer) = support::echo_peer("127.0.0.2").await;
    let (port, transport_flags): (u16, &[&str]) = match transport {
        Transport::Udp => (relay.udp.port(), &[]),
        Transport::Tcp => (relay.tcp.port(), &["-t"]),
        Transport::Tls => (relay.tls.unwrap().port(), &["-t", "-S"]),
    };
    let mut args: Vec<String> = [
        "-u",
        USER,
        "-e",
        "127.0.0.2",
        "-m",
        "10",
        "-l",
        "100",
        "-n",
        "200",
        "-z",
        "1",
        "-c",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend([
        "-r".into(),
        peer.port().to_string(),
        "-p".into(),
        port.to_string(),
    ]);
    match credentials {
        Credentials::FixedAndRest => args.extend(["-w".into(), PASSWORD.into()]),
        Credentials::RestOnly => args.extend(["-W".into(), REST_SECRET.into()]),
    }
    args.extend(transport_flags.iter().map(|s| s.to_string()));
    if relaying == Relaying::SendIndications {
        args.push("-s".into());
    }
    args.push("127.0.0.1".into());
    let totals = support::uclient(&args).await;
    assert_eq!(totals.sent, 2000, "uclient output:\n{}", totals.output);
    assert_eq!(totals.received, 2000, "uclient output:\n{}", totals.output);
    assert_eq!(totals.lost, 0, "uclient output:\n{}", totals.output);
    // The relay counted the traffic both ways (100-byte payloads).
    let metrics = relay.server.metrics();
    assert!(metrics.relayed_bytes(Way::ToPeer) >= 200_000);
    assert!(metrics.relayed_bytes(Way::ToClient) >= 200_000);
    relay.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_channels_long_term() {
    run(
        Transport::Udp,
        Relaying::Channels,
        Credentials::FixedAndRest,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_send_indications_long_term() {
    run(
        Transport::Udp,
        Relaying::SendIndications,
        Credentials::FixedAndRest,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_channels_rest_credentials() {
    // No fixed users: only the REST secret can authenticate.
    run(Transport::Udp, Relaying::Channels, Credentials::RestOnly).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_channels_long_term() {
    run(
        Transport::Tcp,
        Relaying::Channels,
        Credentials::FixedAndRest,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_send_indications_rest_credentials() {
    run(
        Transport::Tcp,
        Relaying::SendIndications,
        Credentials::RestOnly,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_channels_long_term() {
    run(
        Transport::Tls,
        Relaying::Channels,
        Credentials::FixedAndRest,
    )
    .await;
}
