//! Interop with clients nobody here wrote: coturn's `turnutils_uclient` allocates,
//! binds channels (or sends Send indications) and relays through our relay to coturn's
//! `turnutils_peer` echo peer, over UDP, TCP and TLS, with long-term and REST
//! credentials. Every message must come back: no loss.
#![allow(clippy::unwrap_used)]

mod support;

use support::{PASSWORD, REST_SECRET, USER};
use turn_relay::Way;

/// 10 clients × 200 messages of 100 bytes, through our relay and back.
async fn run(flags: &[&str], fixed_users: bool, transport: &str) {
    if !support::require("turnutils_uclient", "coturn")
        || !support::require("turnutils_peer", "coturn")
    {
        return;
    }
    let relay = support::start(support::settings(true, fixed_users), transport == "tls").await;
    let (_peer, peer) = support::echo_peer("127.0.0.2").await;
    let port = match transport {
        "udp" => relay.udp.port(),
        "tcp" => relay.tcp.port(),
        _ => relay.tls.unwrap().port(),
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
    if fixed_users {
        args.extend(["-w".into(), PASSWORD.into()]);
    } else {
        args.extend(["-W".into(), REST_SECRET.into()]);
    }
    args.extend(flags.iter().map(|s| s.to_string()));
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
    run(&[], true, "udp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_send_indications_long_term() {
    run(&["-s"], true, "udp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_channels_rest_credentials() {
    // No fixed users: only the REST secret can authenticate.
    run(&[], false, "udp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_channels_long_term() {
    run(&["-t"], true, "tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_send_indications_rest_credentials() {
    run(&["-t", "-s"], false, "tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_channels_long_term() {
    run(&["-t", "-S"], true, "tls").await;
}
