//! `stun`: any bytes as one STUN/TURN/ChannelData datagram from an unauthenticated client,
//! over UDP and over TCP, and as a TCP byte stream cut into frames by `framing`.
//!
//! Checks: no panic; every answer is a well-formed STUN message; an answer to an
//! unauthenticated request is at most 3 times as long as the request (no amplification
//! worth a spoofed source: docs/security.md, item 10); framing never claims a frame shorter
//! than a header.

use std::net::SocketAddr;

use stun_rs::MessageDecoderBuilder;
use turn_proto::{FiveTuple, FromClient, Metrics, Now, Relay, RelaySettings, Transport, Users};

use super::Target;

pub(super) const TARGET: Target = Target {
    name: "stun",
    about: "STUN/TURN/ChannelData parsing and TCP stream framing, unauthenticated",
    run,
    seeds,
    max_len: 1500,
};

/// The relay as a deployment runs it: REST credentials, the default realm's length.
pub(super) fn relay(now: Now) -> Relay<u64> {
    let users = Users {
        rest_secret: Some("fuzz-secret".into()),
        ..Users::default()
    };
    Relay::new(
        RelaySettings::new("turn.example.org", users),
        [5; 32],
        Metrics::new(),
        now.mono,
    )
}

pub(super) fn tuple(client: &str, transport: Transport) -> FiveTuple {
    FiveTuple {
        client: client.parse::<SocketAddr>().expect("a literal address"),
        server: "192.0.2.9:3478".parse().expect("a literal address"),
        transport,
    }
}

pub(super) fn start() -> Now {
    Now {
        mono: server_kit::clock::now(),
        unix: 1_700_000_000,
    }
}

/// An answer must be a STUN message that an independent decoder reads.
pub(super) fn check_answer(answer: &[u8]) {
    if let Err(e) = MessageDecoderBuilder::default().build().decode(answer) {
        panic!("the relay answered {answer:02x?}, which stun-rs cannot decode: {e:?}");
    }
}

fn check(request: &[u8], out: &FromClient<u64>) {
    match out {
        FromClient::Reply(answer) => {
            check_answer(answer);
            assert!(
                answer.len() <= 3 * request.len(),
                "amplification: {} bytes answered with {}",
                request.len(),
                answer.len()
            );
        }
        FromClient::Drop => {}
        other => panic!("an unauthenticated request got {other:?}"),
    }
}

fn run(data: &[u8]) {
    let now = start();
    let mut relay = relay(now);
    for transport in [Transport::Udp, Transport::Tcp] {
        let from = tuple("198.51.100.7:40000", transport);
        let out = relay.handle_client(from, data, now);
        check(data, &out);
    }
    // The same bytes as a TCP stream.
    let from = tuple("198.51.100.8:40001", Transport::Tcp);
    let mut rest = data;
    while let Ok(Some(len)) = turn_proto::framing::stream_frame_len(rest) {
        assert!(len >= 4, "a frame of {len} bytes");
        if len > rest.len() {
            break;
        }
        let (frame, tail) = rest.split_at(len);
        let out = relay.handle_client(from, frame, now);
        check(frame, &out);
        rest = tail;
    }
    assert_eq!(
        relay.allocation_count(),
        0,
        "unauthenticated bytes allocated"
    );
}

fn seeds() -> Vec<Vec<u8>> {
    let mut binding = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    binding.extend_from_slice(&[1; 12]);
    let mut allocate = vec![0x00, 0x03, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42];
    allocate.extend_from_slice(&[2; 12]);
    allocate.extend_from_slice(&[0x00, 0x19, 0x00, 0x04, 17, 0, 0, 0]);
    let channel_data = vec![0x40, 0x00, 0x00, 0x03, 1, 2, 3, 0];
    let mut stream = binding.clone();
    stream.extend_from_slice(&channel_data);
    stream.extend_from_slice(&allocate);
    vec![binding, allocate, channel_data, stream]
}
