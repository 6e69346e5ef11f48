//! The vendored SCTP (`vendor/rtc-sctp`) resends a lost DATA chunk 400 ms after sending it
//! once the round trip is known to be short, not 1 s later (vendor/README.md:
//! `sctp-rto.patch`). With the 1 s minimum, every loss that fast retransmit could not repair
//! (the tail of a window) stalled a data channel for a second; on a host whose kernel keeps
//! UDP receive buffers at Linux's stock 208 KiB, peer-bench moved 1–9 MB/s instead of
//! 50–75 MB/s (docs/benchmarks.md).
//!
//! Two SCTP endpoints are driven by hand (sans-IO): packets are handed over in memory and
//! time is a virtual clock, so nothing sleeps and the timings are exact.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::sctp::{
    Association, AssociationHandle, ClientConfig, DatagramEvent, Endpoint, EndpointConfig, Payload,
    PayloadProtocolIdentifier, ServerConfig, TransportConfig,
};
use rtc::shared::TransportProtocol;

/// One side: its endpoint and, once made, its association.
struct Side {
    addr: SocketAddr,
    endpoint: Endpoint,
    association: Option<(AssociationHandle, Association)>,
}

impl Side {
    fn new(addr: &str, server: bool) -> Self {
        let addr: SocketAddr = addr.parse().unwrap();
        let server = server.then(|| Arc::new(ServerConfig::new(TransportConfig::default())));
        Side {
            addr,
            endpoint: Endpoint::new(
                addr,
                TransportProtocol::UDP,
                Arc::new(EndpointConfig::new()),
                server,
            ),
            association: None,
        }
    }

    fn association(&mut self) -> &mut Association {
        &mut self.association.as_mut().unwrap().1
    }

    /// Writes one message on `stream` at `now`.
    fn write(&mut self, stream: u16, now: Instant, message: &[u8]) {
        self.association()
            .stream(stream)
            .unwrap()
            .write(now, message)
            .unwrap();
    }

    /// The datagrams this side's association wants to send now.
    fn transmit(&mut self, now: Instant) -> Vec<Bytes> {
        let mut datagrams = Vec::new();
        while let Some(transmit) = self.association().poll_transmit(now) {
            if let Payload::RawEncode(contents) = transmit.message {
                datagrams.extend(contents);
            }
        }
        datagrams
    }

    fn receive(&mut self, now: Instant, from: SocketAddr, datagram: Bytes) {
        match self.endpoint.handle(now, from, None, datagram) {
            Some((handle, DatagramEvent::NewAssociation(association))) => {
                self.association = Some((handle, association));
            }
            Some((_, DatagramEvent::AssociationEvent(event))) => {
                self.association().handle_event(event);
            }
            _ => {}
        }
    }
}

/// Hands every datagram each side sends to the other, at `now`, until neither sends.
fn exchange(client: &mut Side, server: &mut Side, now: Instant) {
    for _ in 0..100 {
        let to_server = client.transmit(now);
        for datagram in &to_server {
            server.receive(now, client.addr, datagram.clone());
        }
        let to_client = if server.association.is_some() {
            server.transmit(now)
        } else {
            Vec::new()
        };
        for datagram in &to_client {
            client.receive(now, server.addr, datagram.clone());
        }
        if to_server.is_empty() && to_client.is_empty() {
            return;
        }
    }
    panic!("the two associations kept talking for 100 rounds");
}

#[test]
fn a_lost_data_chunk_is_resent_after_400_ms_not_1_s() {
    let mut client = Side::new("127.0.0.1:5000", false);
    let mut server = Side::new("127.0.0.1:5001", true);
    let mut now = Instant::now();

    let config = ClientConfig::new(TransportConfig::default());
    let association = client.endpoint.connect(now, config, server.addr).unwrap();
    client.association = Some(association);
    exchange(&mut client, &mut server, now);
    assert!(
        server.association.is_some(),
        "the handshake did not reach the server"
    );

    // Two full-size messages take two packets, and the second packet is acknowledged at
    // once (RFC 9260 §6.2): an RTT sample of 2 ms, as on a fast path.
    let stream = 1;
    client
        .association()
        .open_stream(stream, PayloadProtocolIdentifier::Binary)
        .unwrap();
    for _ in 0..2 {
        client.write(stream, now, &[7u8; 1000]);
    }
    let data = client.transmit(now);
    assert_eq!(data.len(), 2, "two messages, two DATA packets");
    now += Duration::from_millis(2);
    for datagram in data {
        server.receive(now, client.addr, datagram);
    }
    exchange(&mut client, &mut server, now);

    // The next message is lost on the way.
    client.write(stream, now, &[8u8; 1000]);
    let lost = client.transmit(now);
    assert_eq!(lost.len(), 1);
    let sent = now;

    // Its T3-rtx timer runs RTO = max(srtt + 4 * rttvar, RTO.min): 400 ms (RTO.min), where
    // the unpatched 1 s minimum made it 1 s.
    let deadline = client.association().poll_timeout().unwrap();
    assert_eq!(
        deadline - sent,
        Duration::from_millis(400),
        "the lost DATA chunk's retransmission timer"
    );
    client.association().handle_timeout(deadline);
    let resent = client.transmit(deadline);
    assert_eq!(
        resent.len(),
        1,
        "the lost DATA is resent when the timer fires"
    );
    assert_eq!(
        resent[0].len(),
        lost[0].len(),
        "the resent packet carries the lost chunk"
    );
}
