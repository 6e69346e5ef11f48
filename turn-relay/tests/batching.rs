//! The UDP workers read and send in batches (recvmmsg, and GSO for runs of same-size
//! datagrams that go the same way): bursts of datagrams of mixed sizes must still arrive
//! each whole, alone and in order, both ways through the relay.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use stun_rs::MessageClass;
use stun_rs::attributes::turn::{ChannelNumber, XorPeerAddress};
use stun_rs::methods::CHANNEL_BIND;
use support::{Credentials, Peers, TestClient, TestRelay, Tls};
use tokio::net::UdpSocket;

const CHANNEL: u16 = 0x4000;
/// Datagrams per burst: two receive batches and more, so runs span batch edges.
const BURST: usize = 70;
const BURSTS: usize = 4;

/// Payload sizes of one burst: runs of equal sizes (sent as one GSO send), a shorter one
/// ending a run, and sizes that change at every datagram.
fn sizes() -> Vec<usize> {
    let pattern = [
        100, 100, 100, 40, 300, 300, 300, 300, 7, 7, 1, 250, 251, 252, 100, 100,
    ];
    pattern.iter().copied().cycle().take(BURST).collect()
}

/// Datagram `seq` of `len` bytes: its number, then a filler that depends on it.
fn payload(seq: u32, len: usize) -> Vec<u8> {
    let mut p: Vec<u8> = seq
        .to_be_bytes()
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect();
    for (i, b) in p.iter_mut().enumerate().skip(4) {
        *b = (seq as usize * 31 + i) as u8;
    }
    p
}

fn channel_data(data: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(4 + data.len());
    frame.extend_from_slice(&CHANNEL.to_be_bytes());
    frame.extend_from_slice(&(data.len() as u16).to_be_bytes());
    frame.extend_from_slice(data);
    frame
}

async fn recv(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 2048];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .expect("a datagram within 5 s")
        .unwrap();
    (buf[..n].to_vec(), from)
}

/// A relay that may relay to loopback peers (over UDP; no TLS).
async fn loopback_relay() -> TestRelay {
    support::start(
        support::settings(Peers::AllowLoopback, Credentials::FixedAndRest),
        Tls::Off,
    )
    .await
}

/// Reads one datagram per `expected` at `socket`: each from `from`, each the next expected.
async fn expect_in_order(
    socket: &UdpSocket,
    from: SocketAddr,
    expected: impl IntoIterator<Item = Vec<u8>>,
) {
    for (i, want) in expected.into_iter().enumerate() {
        let (got, sender) = recv(socket).await;
        assert_eq!(sender, from, "datagram {i}: sent from {from}");
        assert_eq!(got, want, "datagram {i}");
    }
}

/// A client with an allocation on `relay` and [`CHANNEL`] bound to a fresh peer socket on
/// 127.0.0.2: the client, its relayed address and the peer.
async fn allocate_with_channel(relay: SocketAddr) -> (TestClient, SocketAddr, UdpSocket) {
    let mut client = TestClient::new(relay, "127.0.0.1").await;
    let relayed = client.allocate().await;
    let peer = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let bind = vec![
        ChannelNumber::new(CHANNEL).into(),
        XorPeerAddress::from(peer.local_addr().unwrap()).into(),
    ];
    let reply = client.request(CHANNEL_BIND, bind).await;
    assert_eq!(reply.class(), MessageClass::SuccessResponse, "{reply:?}");
    (client, relayed, peer)
}

#[tokio::test]
async fn bursts_of_mixed_sizes_arrive_whole_and_in_order_both_ways() {
    let relay = loopback_relay().await;
    let (client, relayed, peer) = allocate_with_channel(relay.udp).await;

    let sizes = sizes();
    let mut seq = 0u32;
    for _ in 0..BURSTS {
        // Client → relay → peer: the whole burst is sent before anything is read.
        let first = seq;
        for &len in &sizes {
            client.send_raw(&channel_data(&payload(seq, len))).await;
            seq += 1;
        }
        let want = sizes
            .iter()
            .zip(first..)
            .map(|(&len, seq)| payload(seq, len));
        expect_in_order(&peer, relayed, want).await;
        // Peer → relay → client, as ChannelData on the bound channel.
        let first = seq;
        for &len in &sizes {
            peer.send_to(&payload(seq, len), relayed).await.unwrap();
            seq += 1;
        }
        let want = sizes
            .iter()
            .zip(first..)
            .map(|(&len, seq)| channel_data(&payload(seq, len)));
        expect_in_order(&client.socket, relay.udp, want).await;
    }
}

#[tokio::test]
async fn many_clients_at_once_each_get_their_own_data() {
    // Several allocations whose datagrams share the workers' batches: every peer gets
    // exactly its own client's data, from its own relay address.
    let relay = loopback_relay().await;
    let mut pairs = Vec::new();
    for _ in 0..8 {
        pairs.push(allocate_with_channel(relay.udp).await);
    }
    const EACH: u32 = 20;
    // Interleaved: client 0 datagram 0, client 1 datagram 0, …
    for n in 0..EACH {
        for (k, (client, _, _)) in pairs.iter().enumerate() {
            let seq = k as u32 * 1000 + n;
            client.send_raw(&channel_data(&payload(seq, 64))).await;
        }
    }
    for (k, (_, relayed, peer)) in pairs.iter().enumerate() {
        let want = (0..EACH).map(|n| payload(k as u32 * 1000 + n, 64));
        expect_in_order(peer, *relayed, want).await;
    }
}

#[tokio::test]
async fn empty_datagrams_in_a_burst_each_arrive() {
    // Zero-length payloads cannot be GSO segments: each must still leave as its own
    // (empty) datagram, among others of the same and of other sizes.
    let relay = loopback_relay().await;
    let (client, relayed, peer) = allocate_with_channel(relay.udp).await;
    let sizes = [0, 0, 0, 5, 5, 0, 5, 0, 0];
    for _ in 0..3 {
        for (i, &len) in sizes.iter().enumerate() {
            client.send_raw(&channel_data(&vec![i as u8; len])).await;
        }
        let want = sizes.iter().enumerate().map(|(i, &len)| vec![i as u8; len]);
        expect_in_order(&peer, relayed, want).await;
    }
}

#[tokio::test]
async fn shutdown_frees_the_listening_and_relay_ports() {
    let relay = loopback_relay().await;
    let (client, relayed, peer) = allocate_with_channel(relay.udp).await;
    client.send_raw(&channel_data(b"before")).await;
    assert_eq!(recv(&peer).await.0, b"before");
    let listening = relay.udp;
    relay.server.shutdown().await;
    // Nothing of the relay holds either port any more: both bind again.
    for addr in [listening, relayed] {
        std::net::UdpSocket::bind(addr)
            .unwrap_or_else(|e| panic!("{addr} still held after shutdown: {e}"));
    }
}

#[tokio::test]
async fn an_empty_datagram_from_a_client_reaches_the_core_and_is_counted() {
    // Read in a batch like any other: the core sees it (and counts it as malformed), and
    // the client's next request is answered as usual.
    let relay = loopback_relay().await;
    let mut client = TestClient::new(relay.udp, "127.0.0.1").await;
    let before = relay.server.metrics().dropped_count("malformed");
    client.send_raw(&[]).await;
    client.allocate().await;
    assert_eq!(
        relay.server.metrics().dropped_count("malformed"),
        before + 1
    );
}

#[tokio::test]
async fn a_clients_coalesced_datagrams_are_each_relayed_in_order() {
    // A client's back-to-back datagrams of one size reach the relay as one buffer when the
    // receive offload coalesces them (UDP GRO on the listening socket). A GSO send from the
    // client is how this test gets them coalesced on loopback: the kernel hands the run
    // over whole to a socket with GRO on.
    let relay = loopback_relay().await;
    let (client, relayed, peer) = allocate_with_channel(relay.udp).await;
    let gso = quinn_udp::UdpSocketState::new(quinn_udp::UdpSockRef::from(&client.socket)).unwrap();
    assert!(gso.max_gso_segments() > 1, "this kernel sends GSO");

    let mut seq = 0u32;
    // (payload bytes, datagrams in the run, payload bytes of a shorter last one)
    for (len, count, last) in [
        (100, 10, Some(60)),
        (7, 40, None),
        (1200, 20, Some(1)),
        (300, 2, None),
    ] {
        let mut frames = Vec::new();
        let mut expected = Vec::new();
        for i in 0..count + usize::from(last.is_some()) {
            let len = if i == count { last.unwrap() } else { len };
            expected.push(payload(seq, len));
            frames.extend_from_slice(&channel_data(&payload(seq, len)));
            seq += 1;
        }
        let transmit = quinn_udp::Transmit {
            destination: relay.udp,
            ecn: None,
            contents: &frames,
            segment_size: Some(4 + len),
            src_ip: None,
        };
        client
            .socket
            .async_io(tokio::io::Interest::WRITABLE, || {
                gso.try_send(quinn_udp::UdpSockRef::from(&client.socket), &transmit)
            })
            .await
            .unwrap();
        expect_in_order(&peer, relayed, expected).await;
    }
}
