//! webrtc-rs's own TURN client (`rtc-turn` 0.21.1, the one under `webrtc` 0.21) against
//! our relay: it authenticates, allocates, creates a permission, and data crosses the
//! relay both ways between it and a plain UDP peer.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc_shared::{TransportContext, TransportMessage, TransportProtocol};
use rtc_turn::client::{Client, ClientConfig, Event};
use sansio::Protocol;
use support::{Credentials, Peers, Tls};

const MESSAGES: usize = 20;

/// What the client saw: its relayed address and the replies relayed back to it.
struct Outcome {
    relayed: SocketAddr,
    peer_received: usize,
    client_received: usize,
}

/// Drives the sans-IO client over a blocking socket until all replies are back (≤ 10 s).
fn drive(server: SocketAddr) -> Outcome {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer = UdpSocket::bind("127.0.0.2:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let config = ClientConfig {
        stun_serv_addr: server.to_string(),
        turn_serv_addr: server.to_string(),
        local_addr: socket.local_addr().unwrap(),
        transport_protocol: TransportProtocol::UDP,
        username: support::USER.into(),
        password: support::PASSWORD.into(),
        realm: support::REALM.into(),
        software: String::new(),
        rto_in_ms: 0,
        allocation_refresh_interval_cap: None,
    };
    let provider = rtc_crypto::default_provider().unwrap();
    let mut client = Client::new(config, provider).unwrap();
    client.allocate(Instant::now()).unwrap();
    let mut relayed = None;
    let (mut peer_received, mut client_received) = (0, 0);
    let mut buf = vec![0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(10);
    while client_received < MESSAGES && Instant::now() < deadline {
        while let Some(t) = client.poll_write() {
            socket.send_to(&t.message, t.transport.peer_addr).unwrap();
        }
        while let Some(event) = client.poll_event() {
            match event {
                Event::AllocateResponse(_, addr) => {
                    relayed = Some(addr);
                    client
                        .relay(addr)
                        .unwrap()
                        .create_permission(Instant::now(), peer_addr)
                        .unwrap();
                }
                Event::CreatePermissionResponse(..) => {
                    let mut relay = client.relay(relayed.unwrap()).unwrap();
                    for i in 0..MESSAGES {
                        relay
                            .send_to(Instant::now(), format!("ping {i}").as_bytes(), peer_addr)
                            .unwrap();
                    }
                }
                Event::DataIndicationOrChannelData(_, from, data) => {
                    assert_eq!(from, peer_addr);
                    assert!(data.starts_with(b"pong"));
                    client_received += 1;
                }
                Event::AllocateError(_, e) | Event::CreatePermissionError(_, e) => {
                    panic!("TURN client error: {e}")
                }
                Event::TransactionTimeout(_) => panic!("TURN transaction timed out"),
                _ => {}
            }
        }
        while let Some(t) = client.poll_write() {
            socket.send_to(&t.message, t.transport.peer_addr).unwrap();
        }
        // The peer answers every ping to the relayed address it came from.
        if let Ok((n, from)) = peer.recv_from(&mut buf) {
            assert!(buf[..n].starts_with(b"ping"));
            assert_eq!(Some(from), relayed, "the peer sees the relayed address");
            peer_received += 1;
            peer.send_to(b"pong", from).unwrap();
        }
        socket
            .set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            let message = TransportMessage {
                now: Instant::now(),
                transport: TransportContext {
                    local_addr: socket.local_addr().unwrap(),
                    peer_addr: from,
                    transport_protocol: TransportProtocol::UDP,
                    ecn: None,
                },
                message: BytesMut::from(&buf[..n]),
            };
            client.handle_read(message).unwrap();
        }
        client.handle_timeout(Instant::now()).unwrap();
    }
    Outcome {
        relayed: relayed.expect("an allocation"),
        peer_received,
        client_received,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_rs_turn_client_allocates_and_relays_both_ways() {
    let settings = support::settings(Peers::AllowLoopback, Credentials::FixedAndRest);
    let relay = support::start(settings, Tls::Off).await;
    let server = relay.udp;
    let outcome = tokio::task::spawn_blocking(move || drive(server))
        .await
        .unwrap();
    assert_eq!(outcome.relayed.ip(), server.ip());
    assert_eq!(outcome.peer_received, MESSAGES);
    assert_eq!(outcome.client_received, MESSAGES);
    assert_eq!(relay.server.allocation_count(), 1);
    relay.server.shutdown().await;
}
