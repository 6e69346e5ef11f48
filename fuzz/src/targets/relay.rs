//! `relay`: the relay core's client and peer handlers driven by a program read from the
//! input: signed and unsigned TURN requests with fuzzed attributes from four clients (UDP
//! and TCP, two users, REST and fixed credentials), Send indications, ChannelData, raw
//! bytes, datagrams from peers, relay sockets that fail to bind, closed streams, and time
//! passing. Requests are built and signed by stun-rs (test-support's `stun`), so the program
//! gets past authentication and reaches allocations, permissions and channels.
//!
//! Checks: no panic; every answer and Data indication is a well-formed STUN message; data
//! is forwarded only to public addresses (never loopback, private, link-local, multicast
//! or unspecified, as the default peer policy promises); a forwarded range lies within the
//! packet; ChannelData to a client carries a channel number in 0x4000–0x7FFF; the
//! allocation cap holds; and once every lifetime has run out, no allocation is left.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use stun_rs::attributes::stun::{ErrorCode, Nonce};
use stun_rs::attributes::turn::{
    ChannelNumber, Data, DontFragment, EvenPort, LifeTime, RequestedAddressFamily,
    RequestedTrasport, XorPeerAddress, XorRelayedAddress,
};
use stun_rs::methods::{ALLOCATE, BINDING, CHANNEL_BIND, CREATE_PERMMISSION, REFRESH, SEND};
use stun_rs::{
    AddressFamily, MessageClass, MessageDecoderBuilder, MessageMethod, StunAttribute, StunMessage,
};
use test_support::stun::{Integrity, LongTerm};
use turn_proto::{
    AllocId, BindFailure, FiveTuple, FromClient, FromPeer, Metrics, Now, Relay, RelaySettings,
    Transport, Users,
};

use super::Target;
use super::stun::{check_answer, start, tuple};
use crate::choices::Choices;

pub(super) const TARGET: Target = Target {
    name: "relay",
    about: "the relay core: authenticated allocations, permissions, channels, data both ways, expiry",
    run,
    seeds,
    max_len: 2048,
};

const REALM: &str = "fuzz.realm";
const SECRET: &str = "fuzz-secret";
const MAX_ALLOCATIONS: usize = 6;

/// Peers a client may name: public, and every kind the policy refuses.
const PEERS: [&str; 10] = [
    "8.8.8.8:53",
    "203.0.113.5:4000",
    "[2606:4700::1111]:443",
    "127.0.0.1:9",
    "10.1.2.3:5",
    "192.168.1.1:6",
    "169.254.0.1:7",
    "224.0.0.1:8",
    "[::ffff:127.0.0.1]:5",
    "0.0.0.0:1",
];

struct Client {
    from: FiveTuple,
    user: String,
    password: String,
    nonce: Option<String>,
    sha256: bool,
}

struct World {
    relay: Relay<u64>,
    now: Now,
    clients: Vec<Client>,
    /// Allocations opened, with their relayed addresses.
    opened: Vec<(AllocId, SocketAddr)>,
}

fn settings() -> RelaySettings {
    let users = Users {
        fixed: [
            ("alice".into(), "pw-a".into()),
            ("bob".into(), "pw-b".into()),
        ]
        .into(),
        rest_secret: Some(SECRET.into()),
    };
    let mut s = RelaySettings::new(REALM, users);
    s.relay_ipv6 = Some("::1".parse().expect("a literal address"));
    s.ports = 50_000..=50_011;
    s.max_allocations = MAX_ALLOCATIONS;
    s.max_allocations_per_user = 3;
    s.max_permissions = 4;
    s.max_channels = 4;
    s.bandwidth_per_allocation = Some(20_000);
    s
}

/// A forwarded datagram must go to a public address.
fn assert_public(peer: SocketAddr) {
    let ip = match peer.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        ip => ip,
    };
    let refused = match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_unspecified()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_multicast()
                || v6.is_unspecified()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
        }
    };
    assert!(!refused, "data forwarded to {peer}");
}

fn decode(bytes: &[u8]) -> StunMessage {
    check_answer(bytes);
    MessageDecoderBuilder::default()
        .build()
        .decode(bytes)
        .map(|(m, _)| m)
        .expect("checked")
}

impl World {
    fn new() -> Self {
        let now = start();
        let rest = turn_proto::credentials::mint(SECRET.as_bytes(), "carol", now.unix, 3600);
        let client = |addr: &str, transport, user: &str, password: &str, sha256| Client {
            from: tuple(addr, transport),
            user: user.into(),
            password: password.into(),
            nonce: None,
            sha256,
        };
        Self {
            relay: Relay::new(settings(), [9; 32], Metrics::new(), now.mono),
            now,
            clients: vec![
                client("198.51.100.1:40000", Transport::Udp, "alice", "pw-a", false),
                client("198.51.100.2:40000", Transport::Tcp, "bob", "pw-b", true),
                client(
                    "198.51.100.3:40000",
                    Transport::Udp,
                    &rest.username,
                    &rest.password,
                    false,
                ),
                client(
                    "[2001:db8::3]:40000",
                    Transport::Udp,
                    "alice",
                    "pw-a",
                    false,
                ),
            ],
            opened: Vec::new(),
        }
    }

    fn peer(&self, c: &mut Choices) -> SocketAddr {
        let i = c.below(PEERS.len() + 1);
        match PEERS.get(i) {
            Some(p) => p.parse().expect("a literal address"),
            // The relay's own relayed address: a peer it must refuse too.
            None => self
                .opened
                .first()
                .map(|&(_, a)| a)
                .unwrap_or_else(|| "127.0.0.1:50000".parse().expect("a literal address")),
        }
    }

    /// Encodes a request of client `k`, signed unless the program says not to.
    fn request(
        &self,
        k: usize,
        method: MessageMethod,
        attrs: Vec<StunAttribute>,
        c: &mut Choices,
    ) -> Vec<u8> {
        let client = &self.clients[k];
        let unsigned = c.byte() == 0xff;
        let wrong_password = c.byte() == 0xfe;
        let signed = match (&client.nonce, unsigned) {
            (Some(nonce), false) => Some(LongTerm {
                user: &client.user,
                realm: REALM,
                password: if wrong_password {
                    "wrong"
                } else {
                    &client.password
                },
                nonce,
            }),
            _ => None,
        };
        let integrity = if client.sha256 {
            Integrity::Sha256
        } else {
            Integrity::Sha1
        };
        test_support::stun::message(
            method,
            MessageClass::Request,
            attrs,
            signed.map(|s| (s, integrity)),
        )
    }

    /// Sends `bytes` from client `k` and checks what comes back.
    fn send(&mut self, k: usize, bytes: &[u8], c: &mut Choices) {
        let from = self.clients[k].from;
        let out = self.relay.handle_client(from, bytes, self.now);
        match out {
            FromClient::Drop => {}
            FromClient::Reply(answer) => self.answered(k, &answer),
            FromClient::Forward { peer, payload, .. } => {
                assert!(
                    payload.start <= payload.end && payload.end <= bytes.len(),
                    "payload {payload:?} of a {}-byte packet",
                    bytes.len()
                );
                assert_public(peer);
            }
            FromClient::Open { id, relay } => self.open(k, id, relay, c),
            FromClient::Close { reply, .. } => self.answered(k, &reply),
        }
        assert!(self.relay.allocation_count() <= MAX_ALLOCATIONS);
    }

    /// Binds the relay socket, or fails to, as the program says (at most eight tries).
    fn open(&mut self, k: usize, id: AllocId, mut relay: SocketAddr, c: &mut Choices) {
        for _ in 0..10 {
            let answer = match c.byte() % 8 {
                0 => match self.relay.relay_failed(id, BindFailure::PortInUse) {
                    Ok(next) => {
                        relay = next;
                        continue;
                    }
                    Err(answer) => answer,
                },
                1 => match self.relay.relay_failed(id, BindFailure::Other) {
                    Ok(next) => {
                        relay = next;
                        continue;
                    }
                    Err(answer) => answer,
                },
                _ => {
                    let answer = self.relay.relay_opened(id, id.0);
                    self.opened.push((id, relay));
                    answer
                }
            };
            self.answered(k, &answer);
            return;
        }
        panic!("the relay kept offering ports after ten failed binds");
    }

    fn answered(&mut self, k: usize, answer: &[u8]) {
        let msg = decode(answer);
        if let Some(nonce) = msg.get::<Nonce>().and_then(|n| n.as_nonce().ok()) {
            self.clients[k].nonce = Some(nonce.as_str().to_owned());
        }
        if let Some(relayed) = msg
            .get::<XorRelayedAddress>()
            .and_then(|a| a.as_xor_relayed_address().ok())
        {
            let addr = *relayed.socket_address();
            assert!(msg.get::<ErrorCode>().is_none(), "an error with an address");
            if let Some(last) = self.opened.last_mut() {
                last.1 = addr;
            }
        }
    }

    fn step(&mut self, c: &mut Choices) {
        let k = c.below(self.clients.len());
        match c.byte() % 12 {
            0 | 1 => {
                let mut attrs: Vec<StunAttribute> = Vec::new();
                let opts = c.byte();
                // stun-rs builds only UDP's number; other transports come in raw bytes.
                if opts & 64 == 0 {
                    attrs.push(RequestedTrasport::new(stun_rs::protocols::UDP).into());
                }
                if opts & 1 != 0 {
                    attrs.push(LifeTime::new(c.u32()).into());
                }
                if opts & 2 != 0 {
                    let family = if opts & 4 != 0 {
                        AddressFamily::IPv6
                    } else {
                        AddressFamily::IPv4
                    };
                    attrs.push(RequestedAddressFamily::new(family).into());
                }
                if opts & 8 != 0 {
                    attrs.push(DontFragment::default().into());
                }
                if opts & 16 != 0 {
                    attrs.push(EvenPort::new(opts & 32 != 0).into());
                }
                let bytes = self.request(k, ALLOCATE, attrs, c);
                self.send(k, &bytes, c);
            }
            2 | 3 => {
                let n = 1 + c.below(3);
                let attrs = (0..n)
                    .map(|_| XorPeerAddress::from(self.peer(c)).into())
                    .collect();
                let bytes = self.request(k, CREATE_PERMMISSION, attrs, c);
                self.send(k, &bytes, c);
            }
            4 => {
                let channel = match c.byte() % 4 {
                    0 => c.u16(),
                    n => 0x4000 + u16::from(n),
                };
                let attrs = vec![
                    ChannelNumber::new(channel).into(),
                    XorPeerAddress::from(self.peer(c)).into(),
                ];
                let bytes = self.request(k, CHANNEL_BIND, attrs, c);
                self.send(k, &bytes, c);
            }
            5 => {
                let lifetime = match c.byte() % 3 {
                    0 => 0,
                    1 => 600,
                    _ => c.u32(),
                };
                let bytes = self.request(k, REFRESH, vec![LifeTime::new(lifetime).into()], c);
                self.send(k, &bytes, c);
            }
            6 => {
                let peer = self.peer(c);
                let data = c.bytes(200).to_vec();
                let attrs: Vec<StunAttribute> =
                    vec![XorPeerAddress::from(peer).into(), Data::new(data).into()];
                let bytes =
                    test_support::stun::message(SEND, MessageClass::Indication, attrs, None);
                self.send(k, &bytes, c);
            }
            7 => {
                let channel = 0x4000 + u16::from(c.byte() % 4);
                let data = c.bytes(200);
                let mut bytes = channel.to_be_bytes().to_vec();
                let claimed = if c.byte() == 0 {
                    c.u16()
                } else {
                    data.len() as u16
                };
                bytes.extend_from_slice(&claimed.to_be_bytes());
                bytes.extend_from_slice(data);
                self.send(k, &bytes, c);
            }
            8 => {
                let raw = c.bytes(255).to_vec();
                self.send(k, &raw, c);
            }
            9 => self.peer_sends(c),
            10 => {
                let secs = match c.byte() % 4 {
                    0 => 1,
                    1 => 30,
                    2 => 301,
                    _ => u64::from(c.u16()),
                };
                self.advance(Duration::from_secs(secs));
            }
            _ => {
                if c.flag() {
                    let from = self.clients[k].from;
                    self.relay.client_closed(&from);
                } else {
                    let bytes = self.request(k, BINDING, Vec::new(), c);
                    self.send(k, &bytes, c);
                }
            }
        }
    }

    fn peer_sends(&mut self, c: &mut Choices) {
        if self.opened.is_empty() {
            return;
        }
        let (id, _) = self.opened[c.below(self.opened.len())];
        let peer = self.peer(c);
        let data = c.bytes(255);
        let mut buf = vec![0u8; 4 + data.len() + 3];
        buf[4..4 + data.len()].copy_from_slice(data);
        match self
            .relay
            .handle_peer(id, peer, &mut buf, data.len(), self.now.mono)
        {
            FromPeer::Drop => {}
            FromPeer::ChannelData(len) => {
                assert!(
                    len <= buf.len() && len >= 4 + data.len(),
                    "ChannelData of {len}"
                );
                let channel = u16::from_be_bytes([buf[0], buf[1]]);
                // RFC 5766's range, which the relay accepts as coturn does (framing.rs).
                assert!((0x4000..=0x7fff).contains(&channel), "channel {channel:#x}");
                assert_eq!(&buf[4..4 + data.len()], data);
            }
            FromPeer::Indication(bytes) => {
                decode(&bytes);
            }
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now.mono += by;
        self.now.unix += by.as_secs();
        self.relay.handle_timeout(self.now.mono);
    }
}

fn run(data: &[u8]) {
    let mut world = World::new();
    let mut c = Choices::new(data);
    let mut steps = 0;
    while !c.is_empty() && steps < 64 {
        world.step(&mut c);
        steps += 1;
    }
    // Every lifetime runs out: nothing may be left behind.
    world.advance(Duration::from_secs(3601));
    world.advance(Duration::from_secs(20));
    assert_eq!(
        world.relay.allocation_count(),
        0,
        "allocations outlived their lifetime"
    );
}

fn seeds() -> Vec<Vec<u8>> {
    vec![
        // Allocate twice (challenge, then signed), permission, channel, data both ways.
        vec![
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2, 0, 0, 0, 0, 4, 1, 0, 0, 0, 7, 1, 3, 1, 2, 3,
            0, 9, 0, 3, 1, 2, 3, 0, 5, 1, 0, 0,
        ],
        // A TCP client allocates, binds a channel and closes.
        vec![
            1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 4, 1, 1, 0, 0, 1, 11, 1,
        ],
    ]
}
