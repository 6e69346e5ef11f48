//! The core driven with bytes and injected time: no sockets, no sleeps. Requests are
//! built and signed by stun-rs's encoder (test-support's `stun`), independently of the
//! relay's own checks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use stun_rs::attributes::stun::{MessageIntegritySha256, Nonce, Realm, UserName, XorMappedAddress};
use stun_rs::attributes::turn::{
    ChannelNumber, Data, LifeTime, RequestedAddressFamily, RequestedTrasport, XorPeerAddress,
    XorRelayedAddress,
};
use stun_rs::methods::{ALLOCATE, BINDING, CHANNEL_BIND, CREATE_PERMMISSION, REFRESH, SEND};
use stun_rs::{
    AddressFamily, MessageClass, MessageDecoderBuilder, MessageMethod, StunAttribute, StunMessage,
    StunMessageBuilder,
};
use test_support::stun::{
    Integrity, LongTerm, append_message_integrity, decode, encode, error_code, long_term_key,
};

use super::*;
use crate::auth::Users;
use crate::five_tuple::Transport;
use crate::metrics::Way;

const REALM: &str = "test.realm";

fn settings() -> RelaySettings {
    let users = Users {
        fixed: HashMap::from([
            ("alice".into(), "pw-a".into()),
            ("bob".into(), "pw-b".into()),
        ]),
        rest_secret: Some("rest-secret".into()),
    };
    let mut s = RelaySettings::new(REALM, users);
    s.ports = 50_000..=50_019;
    s.max_allocations_per_user = 2;
    s
}

fn tuple(client: &str) -> FiveTuple {
    FiveTuple {
        client: client.parse().unwrap(),
        server: "192.0.2.9:3478".parse().unwrap(),
        transport: Transport::Udp,
    }
}

struct Harness {
    relay: Relay<u64>,
    now: Now,
    from: FiveTuple,
    user: String,
    password: String,
    nonce: Option<String>,
    sha256: bool,
}

impl Harness {
    fn new() -> Self {
        Self::with(settings())
    }

    fn with(settings: RelaySettings) -> Self {
        let t0 = server_kit::clock::now();
        Self {
            relay: Relay::new(settings, [3; 32], Metrics::new(), t0),
            now: Now {
                mono: t0,
                unix: 1_700_000_000,
            },
            from: tuple("198.51.100.7:40000"),
            user: "alice".into(),
            password: "pw-a".into(),
            nonce: None,
            sha256: false,
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now.mono += d;
        self.now.unix += d.as_secs();
        self.relay.handle_timeout(self.now.mono);
    }

    /// Encodes a request with `attrs`, signed with the harness credentials when a nonce is known.
    fn build(
        &self,
        method: MessageMethod,
        class: MessageClass,
        attrs: Vec<StunAttribute>,
    ) -> Vec<u8> {
        let signed = self.nonce.as_deref().map(|nonce| LongTerm {
            user: &self.user,
            realm: REALM,
            password: &self.password,
            nonce,
        });
        let integrity = if self.sha256 {
            Integrity::Sha256
        } else {
            Integrity::Sha1
        };
        test_support::stun::message(method, class, attrs, signed.map(|c| (c, integrity)))
    }

    fn send(&mut self, bytes: &[u8]) -> FromClient<u64> {
        self.relay.handle_client(self.from, bytes, self.now)
    }

    /// Sends a request and decodes the reply; learns the nonce from challenges.
    fn ask(&mut self, method: MessageMethod, attrs: Vec<StunAttribute>) -> StunMessage {
        let bytes = self.build(method, MessageClass::Request, attrs);
        let reply = match self.send(&bytes) {
            FromClient::Reply(r) => r,
            FromClient::Open { id, .. } => self.relay.relay_opened(id, id.0),
            FromClient::Close { reply, .. } => reply,
            other => panic!("expected a reply, got {other:?}"),
        };
        let msg = decode(&reply);
        if let Some(nonce) = test_support::stun::nonce(&msg) {
            self.nonce = Some(nonce);
        }
        msg
    }

    /// Sends a request, redoing it once after a 401/438 challenge.
    fn authed(&mut self, method: MessageMethod, attrs: Vec<StunAttribute>) -> StunMessage {
        let first = self.ask(method, attrs.clone());
        if test_support::stun::is_challenge(&first) {
            return self.ask(method, attrs);
        }
        first
    }

    fn allocate(&mut self) -> SocketAddr {
        let reply = self.authed(ALLOCATE, vec![udp()]);
        assert_eq!(reply.class(), MessageClass::SuccessResponse, "{reply:?}");
        test_support::stun::relayed_address(&reply)
    }

    fn indication(&mut self, peer: SocketAddr, data: &[u8]) -> FromClient<u64> {
        let nonce = self.nonce.take();
        let bytes = self.build(
            SEND,
            MessageClass::Indication,
            vec![XorPeerAddress::from(peer).into(), Data::new(data).into()],
        );
        self.nonce = nonce;
        self.send(&bytes)
    }
}

/// The LIFETIME a response grants.
fn lifetime(reply: &StunMessage) -> u32 {
    reply
        .get::<LifeTime>()
        .unwrap()
        .as_life_time()
        .unwrap()
        .as_u32()
}

fn udp() -> StunAttribute {
    RequestedTrasport::new(stun_rs::protocols::UDP).into()
}

fn peer(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn permission(p: SocketAddr) -> Vec<StunAttribute> {
    vec![XorPeerAddress::from(p).into()]
}

fn channel(n: u16, p: SocketAddr) -> Vec<StunAttribute> {
    vec![ChannelNumber::new(n).into(), XorPeerAddress::from(p).into()]
}

fn channel_data(n: u16, data: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 4 + data.len()];
    b[4..].copy_from_slice(data);
    crate::framing::write_channel_header(&mut b, n, data.len(), false);
    b
}

#[test]
fn binding_answers_with_the_mapped_address_without_auth() {
    let mut h = Harness::new();
    let reply = h.ask(BINDING, Vec::new());
    assert_eq!(reply.class(), MessageClass::SuccessResponse);
    let mapped = reply
        .get::<XorMappedAddress>()
        .unwrap()
        .as_xor_mapped_address()
        .unwrap();
    assert_eq!(*mapped.socket_address(), h.from.client);
}

#[test]
fn allocate_challenges_then_succeeds_signed() {
    let mut h = Harness::new();
    let first = h.ask(ALLOCATE, vec![udp()]);
    assert_eq!(error_code(&first), Some(401));
    assert!(first.get::<Realm>().is_some() && first.get::<Nonce>().is_some());
    let relay = h.allocate();
    assert_eq!(relay.ip(), "127.0.0.1".parse::<std::net::IpAddr>().unwrap());
    assert!((50_000..=50_019).contains(&relay.port()));
    assert_eq!(h.relay.allocation_count(), 1);
    // The success response verifies with the user's key (stun-rs checks it here).
    let bytes = h.build(ALLOCATE, MessageClass::Request, vec![udp()]);
    let FromClient::Reply(reply) = h.send(&bytes) else {
        panic!()
    };
    let key = long_term_key("alice", REALM, "pw-a");
    let ctx = stun_rs::DecoderContextBuilder::default()
        .with_key(key)
        .with_validation()
        .build();
    let checked = MessageDecoderBuilder::default()
        .with_context(ctx)
        .build()
        .decode(&reply);
    assert!(checked.is_ok(), "signed with the user's key");
    // A new transaction on the same five-tuple is a mismatch.
    assert_eq!(error_code(&decode(&reply)), Some(437));
}

#[test]
fn sha256_integrity_is_accepted_and_answered_in_kind() {
    let mut h = Harness::new();
    h.sha256 = true;
    h.allocate();
    let reply = h.ask(REFRESH, Vec::new());
    assert_eq!(reply.class(), MessageClass::SuccessResponse);
    assert!(reply.get::<MessageIntegritySha256>().is_some());
}

#[test]
fn retransmitted_allocate_gets_the_same_answer() {
    let mut h = Harness::new();
    h.ask(ALLOCATE, vec![udp()]);
    let bytes = h.build(ALLOCATE, MessageClass::Request, vec![udp()]);
    let FromClient::Open { id, .. } = h.send(&bytes) else {
        panic!()
    };
    let first = h.relay.relay_opened(id, 1);
    let FromClient::Reply(again) = h.send(&bytes) else {
        panic!()
    };
    assert_eq!(first, again);
}

#[test]
fn wrong_password_unknown_user_and_wrong_realm_get_401() {
    let mut h = Harness::new();
    h.ask(ALLOCATE, vec![udp()]);
    h.password = "wrong".into();
    assert_eq!(error_code(&h.ask(ALLOCATE, vec![udp()])), Some(401));
    h.user = "mallory".into();
    assert_eq!(error_code(&h.ask(ALLOCATE, vec![udp()])), Some(401));
    assert_eq!(h.relay.allocation_count(), 0);
    let text = h.relay.metrics().encode();
    assert!(text.contains("reason=\"bad_integrity\""), "{text}");
    assert!(text.contains("reason=\"unknown_user\""), "{text}");
}

#[test]
fn stale_nonce_gets_438_and_a_fresh_nonce_works() {
    let mut h = Harness::new();
    h.ask(ALLOCATE, vec![udp()]);
    let old = h.nonce.clone();
    h.advance(Duration::from_secs(601));
    let reply = h.ask(ALLOCATE, vec![udp()]);
    assert_eq!(error_code(&reply), Some(438));
    assert_ne!(h.nonce, old);
    h.allocate();
}

#[test]
fn a_nonce_minted_for_another_ip_is_refused() {
    let mut h = Harness::new();
    h.ask(ALLOCATE, vec![udp()]);
    h.from = tuple("203.0.113.5:1000");
    assert_eq!(error_code(&h.ask(ALLOCATE, vec![udp()])), Some(401));
}

#[test]
fn rest_credentials_work_until_they_expire() {
    let mut h = Harness::new();
    let cred = crate::credentials::mint(b"rest-secret", "carol", h.now.unix, 60);
    h.user = cred.username;
    h.password = cred.password;
    h.allocate();
    // Expired: refused, even with a fresh nonce.
    h.advance(Duration::from_secs(61));
    h.from = tuple("198.51.100.7:40001");
    let reply = h.authed(ALLOCATE, vec![udp()]);
    assert_eq!(error_code(&reply), Some(401));
}

#[test]
fn quota_per_user_gives_486() {
    let mut h = Harness::new();
    for port in [1, 2] {
        h.from = tuple(&format!("198.51.100.7:{port}"));
        h.allocate();
    }
    h.from = tuple("198.51.100.7:3");
    assert_eq!(error_code(&h.authed(ALLOCATE, vec![udp()])), Some(486));
    // Another user is not affected; freeing one makes room again.
    h.user = "bob".into();
    h.password = "pw-b".into();
    h.from = tuple("198.51.100.7:4");
    h.allocate();
    h.user = "alice".into();
    h.password = "pw-a".into();
    h.from = tuple("198.51.100.7:1");
    let freed = h.authed(REFRESH, vec![LifeTime::from(0).into()]);
    assert_eq!(freed.class(), MessageClass::SuccessResponse);
    h.from = tuple("198.51.100.7:3");
    h.allocate();
}

#[test]
fn total_capacity_and_port_range_give_508() {
    let mut s = settings();
    s.ports = 50_000..=50_000;
    let mut h = Harness::with(s);
    h.allocate();
    h.user = "bob".into();
    h.password = "pw-b".into();
    h.from = tuple("198.51.100.8:1");
    assert_eq!(error_code(&h.authed(ALLOCATE, vec![udp()])), Some(508));
}

#[test]
fn bad_allocate_requests() {
    let mut h = Harness::new();
    assert_eq!(error_code(&h.authed(ALLOCATE, Vec::new())), Some(400));
    // REQUESTED-TRANSPORT TCP (6): stun-rs builds only UDP, so it goes in raw, first.
    let tcp = inject_attribute(&h, ALLOCATE, 0x0019, &[6, 0, 0, 0]);
    let FromClient::Reply(reply) = h.send(&tcp) else {
        panic!()
    };
    assert_eq!(error_code(&decode(&reply)), Some(442));
    let v6 = RequestedAddressFamily::new(AddressFamily::IPv6);
    assert_eq!(
        error_code(&h.authed(ALLOCATE, vec![udp(), v6.into()])),
        Some(440)
    );
    assert_eq!(h.relay.allocation_count(), 0);
}

#[test]
fn unknown_comprehension_required_attribute_gets_420() {
    let mut h = Harness::new();
    h.ask(ALLOCATE, vec![udp()]);
    // 0x0077: unassigned, and below 0x8000 so comprehension-required.
    let bytes = inject_attribute(&h, ALLOCATE, 0x0077, &[0, 0, 0, 0]);
    let FromClient::Reply(reply) = h.send(&bytes) else {
        panic!()
    };
    assert_eq!(error_code(&decode(&reply)), Some(420));
}

/// A signed request (with REQUESTED-TRANSPORT UDP) whose first attribute is a raw one.
fn inject_attribute(h: &Harness, method: MessageMethod, kind: u16, value: &[u8]) -> Vec<u8> {
    let unsigned = {
        let mut b = StunMessageBuilder::new(method, MessageClass::Request).with_attribute(udp());
        b = b.with_attribute(UserName::new(&h.user).unwrap());
        encode(&b.build())
    };
    // Splice the raw attribute after the header, then sign by hand with the same key.
    let mut msg = unsigned[..20].to_vec();
    msg.extend_from_slice(&kind.to_be_bytes());
    msg.extend_from_slice(&(value.len() as u16).to_be_bytes());
    msg.extend_from_slice(value);
    msg.extend_from_slice(&unsigned[20..]);
    for attr in [
        StunAttribute::from(Realm::new(REALM).unwrap()),
        Nonce::new(h.nonce.as_ref().unwrap()).unwrap().into(),
    ] {
        let one = encode(
            &StunMessageBuilder::new(method, MessageClass::Request)
                .with_attribute(attr)
                .build(),
        );
        msg.extend_from_slice(&one[20..]);
    }
    append_message_integrity(
        &mut msg,
        long_term_key(&h.user, REALM, &h.password).as_bytes(),
    );
    msg
}

#[test]
fn attributes_after_message_integrity_are_ignored() {
    let mut h = Harness::new();
    h.allocate();
    // A Refresh whose LIFETIME 0 comes after MESSAGE-INTEGRITY must not free anything.
    let mut bytes = h.build(REFRESH, MessageClass::Request, Vec::new());
    bytes.extend_from_slice(&[0x00, 0x0D, 0x00, 0x04, 0, 0, 0, 0]);
    let len = (bytes.len() - 20) as u16;
    bytes[2..4].copy_from_slice(&len.to_be_bytes());
    let FromClient::Reply(reply) = h.send(&bytes) else {
        panic!()
    };
    let reply = decode(&reply);
    assert_eq!(reply.class(), MessageClass::SuccessResponse, "{reply:?}");
    assert_eq!(h.relay.allocation_count(), 1);
}

#[test]
fn allocation_expires_unless_refreshed() {
    let mut h = Harness::new();
    h.allocate();
    h.advance(Duration::from_secs(500));
    let reply = h.authed(REFRESH, vec![LifeTime::from(60).into()]);
    let granted = lifetime(&reply);
    assert_eq!(granted, 600, "below the default, the default is granted");
    h.advance(Duration::from_secs(599));
    assert_eq!(h.relay.allocation_count(), 1);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.relay.allocation_count(), 0);
    assert_eq!(error_code(&h.authed(REFRESH, Vec::new())), Some(437));
}

#[test]
fn lifetime_is_capped_at_the_maximum() {
    let mut h = Harness::new();
    let reply = h.authed(ALLOCATE, vec![udp(), LifeTime::from(100_000).into()]);
    let granted = lifetime(&reply);
    assert_eq!(granted, 3600);
}

#[test]
fn refresh_from_another_user_is_441() {
    let mut h = Harness::new();
    h.allocate();
    h.user = "bob".into();
    h.password = "pw-b".into();
    assert_eq!(error_code(&h.authed(REFRESH, Vec::new())), Some(441));
}

#[test]
fn requests_without_allocation_are_437() {
    let mut h = Harness::new();
    let p = peer("203.0.113.1:9");
    assert_eq!(
        error_code(&h.authed(CREATE_PERMMISSION, permission(p))),
        Some(437)
    );
    assert_eq!(
        error_code(&h.authed(CHANNEL_BIND, channel(0x4000, p))),
        Some(437)
    );
}

#[test]
fn send_needs_a_permission_and_then_relays() {
    let mut h = Harness::new();
    h.allocate();
    let p = peer("203.0.113.1:9000");
    assert!(matches!(h.indication(p, b"hi"), FromClient::Drop));
    let ok = h.authed(CREATE_PERMMISSION, permission(p));
    assert_eq!(ok.class(), MessageClass::SuccessResponse);
    let FromClient::Forward {
        peer: to, payload, ..
    } = h.indication(p, b"hi")
    else {
        panic!()
    };
    assert_eq!(to, p);
    assert_eq!(payload.len(), 2);
    // The permission lapses after 300 s.
    h.advance(Duration::from_secs(300));
    assert!(matches!(h.indication(p, b"hi"), FromClient::Drop));
}

#[test]
fn channel_data_relays_only_on_bound_channels() {
    let mut h = Harness::new();
    h.allocate();
    let p = peer("203.0.113.1:9000");
    assert!(
        matches!(h.send(&channel_data(0x4000, b"x")), FromClient::Drop),
        "unbound"
    );
    let ok = h.authed(CHANNEL_BIND, channel(0x4000, p));
    assert_eq!(ok.class(), MessageClass::SuccessResponse);
    let FromClient::Forward {
        peer: to,
        payload,
        via,
    } = h.send(&channel_data(0x4000, b"hello"))
    else {
        panic!()
    };
    assert_eq!((to, payload, via), (p, 4..9, 1));
    assert!(matches!(
        h.send(&channel_data(0x4001, b"x")),
        FromClient::Drop
    ));
    // Bad numbers and conflicts.
    assert_eq!(
        error_code(&h.authed(CHANNEL_BIND, channel(0x3FFF, p))),
        Some(400)
    );
    assert_eq!(
        error_code(&h.authed(CHANNEL_BIND, channel(0x5000, p))),
        Some(400)
    );
    assert_eq!(
        error_code(&h.authed(CHANNEL_BIND, channel(0x4001, p))),
        Some(400)
    );
    assert_eq!(h.relay.metrics().relayed_bytes(Way::ToPeer), 5);
}

#[test]
fn peer_data_comes_back_as_channel_data_or_data_indication() {
    let mut h = Harness::new();
    h.allocate();
    let id = AllocId(1);
    let (bound, unbound, stranger) = (
        peer("203.0.113.1:9000"),
        peer("203.0.113.2:9000"),
        peer("203.0.113.3:9000"),
    );
    h.authed(CHANNEL_BIND, channel(0x4000, bound));
    h.authed(CREATE_PERMMISSION, permission(unbound));
    let mut buf = [0xEEu8; 16];
    buf[4..9].copy_from_slice(b"hello");
    let now = h.now.mono;
    assert_eq!(
        h.relay.handle_peer(id, bound, &mut buf, 5, true, now),
        FromPeer::ChannelData(12)
    );
    assert_eq!(
        &buf[..12],
        &[0x40, 0, 0, 5, b'h', b'e', b'l', b'l', b'o', 0, 0, 0]
    );
    buf[4..9].copy_from_slice(b"hello");
    let FromPeer::Indication(ind) = h.relay.handle_peer(id, unbound, &mut buf, 5, false, now)
    else {
        panic!()
    };
    let ind = decode(&ind);
    assert_eq!(ind.method(), stun_rs::methods::DATA);
    assert_eq!(
        ind.get::<Data>().unwrap().as_data().unwrap().as_bytes(),
        b"hello"
    );
    assert_eq!(
        h.relay.handle_peer(id, stranger, &mut buf, 5, false, now),
        FromPeer::Drop
    );
    assert_eq!(
        h.relay
            .handle_peer(AllocId(99), bound, &mut buf, 5, false, now),
        FromPeer::Drop
    );
}

#[test]
fn loopback_private_and_mapped_peers_are_forbidden_by_default() {
    let mut h = Harness::new();
    h.allocate();
    for p in [
        "127.0.0.1:9",
        "0.0.0.0:9",
        "10.0.0.1:9",
        "169.254.169.254:80",
        "224.0.0.1:9",
    ] {
        let reply = h.authed(CREATE_PERMMISSION, permission(peer(p)));
        assert_eq!(error_code(&reply), Some(403), "{p}");
        let reply = h.authed(CHANNEL_BIND, channel(0x4000, peer(p)));
        assert_eq!(error_code(&reply), Some(403), "{p}");
    }
    // IPv6 forms of IPv4 loopback are a family mismatch for an IPv4 relay, or forbidden.
    let reply = h.authed(CREATE_PERMMISSION, permission(peer("[::ffff:127.0.0.1]:9")));
    assert!(matches!(error_code(&reply), Some(403) | Some(443)));
    // One bad peer spoils the whole request: nothing is installed.
    let both = vec![
        XorPeerAddress::from(peer("203.0.113.1:9")).into(),
        XorPeerAddress::from(peer("127.0.0.1:9")).into(),
    ];
    assert_eq!(error_code(&h.authed(CREATE_PERMMISSION, both)), Some(403));
    assert!(matches!(
        h.indication(peer("203.0.113.1:9"), b"x"),
        FromClient::Drop
    ));
    assert!(
        h.relay
            .metrics()
            .encode()
            .contains("turn_refused_peers_total{reason=\"special_purpose\"}")
    );
}

#[test]
fn own_addresses_only_as_relay_addresses_of_live_allocations() {
    let mut s = settings();
    s.policy.allow = vec!["127.0.0.0/8".parse().unwrap()];
    s.policy.own = vec!["127.0.0.1".parse().unwrap()];
    let mut h = Harness::with(s);
    let mine = h.allocate();
    // Another allocation's relay address (here our own) is a fine peer…
    assert_eq!(
        h.authed(CHANNEL_BIND, channel(0x4000, mine)).class(),
        MessageClass::SuccessResponse
    );
    // …the listener port of the relay's own IP is not.
    assert_eq!(
        error_code(&h.authed(CHANNEL_BIND, channel(0x4001, peer("127.0.0.1:3478")))),
        Some(403)
    );
    // Allow-listed loopback that is not ours passes.
    assert_eq!(
        h.authed(CREATE_PERMMISSION, permission(peer("127.0.0.2:9")))
            .class(),
        MessageClass::SuccessResponse
    );
}

#[test]
fn malformed_packets_are_dropped_or_get_400_never_panic() {
    let mut h = Harness::new();
    h.allocate();
    let good = h.build(REFRESH, MessageClass::Request, Vec::new());
    for cut in 0..good.len() {
        let _ = h.send(&good[..cut]);
    }
    // An attribute whose length runs past the message.
    let mut overlong = good.clone();
    overlong[22..24].copy_from_slice(&0xFFF0u16.to_be_bytes());
    let _ = h.send(&overlong);
    let _ = h.send(&[0x40, 0x00, 0xFF, 0xFF, 1, 2]);
    let _ = h.send(&[0xFF; 64]);
    let _ = h.send(&[0u8; 1500]);
    assert_eq!(h.relay.allocation_count(), 1);
    assert!(h.relay.metrics().encode().contains("reason=\"malformed\""));
}

#[test]
fn challenges_are_rate_limited_and_small() {
    let mut s = settings();
    s.unauthenticated_per_s = 10;
    let mut h = Harness::with(s);
    let request = h.build(ALLOCATE, MessageClass::Request, vec![udp()]);
    let mut replies = 0;
    for i in 0..100u16 {
        h.from = tuple(&format!("198.51.100.{}:{}", i % 200, 1000 + i));
        if let FromClient::Reply(r) = h.send(&request) {
            // 28 bytes in, at most 100 out (ERROR-CODE, REALM, NONCE, FINGERPRINT).
            assert!(
                r.len() <= 100,
                "{} bytes for a {}-byte request",
                r.len(),
                request.len()
            );
            replies += 1;
        }
    }
    assert_eq!(replies, 10);
    h.advance(Duration::from_secs(1));
    assert!(matches!(h.send(&request), FromClient::Reply(_)));
}

#[test]
fn unauthenticated_traffic_creates_no_state() {
    let mut h = Harness::new();
    let request = h.build(ALLOCATE, MessageClass::Request, vec![udp()]);
    for i in 0..1000u16 {
        h.from = tuple(&format!("198.51.100.{}:{}", i % 250, 1000 + i));
        let _ = h.send(&request);
    }
    assert_eq!(h.relay.allocation_count(), 0);
    assert!(h.relay.by_five_tuple.is_empty() && h.relay.per_user.is_empty());
}

#[test]
fn bandwidth_cap_drops_excess() {
    let mut s = settings();
    s.bandwidth_per_allocation = Some(1000);
    let mut h = Harness::with(s);
    h.allocate();
    let p = peer("203.0.113.1:9000");
    h.authed(CHANNEL_BIND, channel(0x4000, p));
    let payload = [7u8; 400];
    let sent = (0..5)
        .filter(|_| {
            matches!(
                h.send(&channel_data(0x4000, &payload)),
                FromClient::Forward { .. }
            )
        })
        .count();
    assert_eq!(sent, 2);
    h.advance(Duration::from_secs(1));
    assert!(matches!(
        h.send(&channel_data(0x4000, &payload)),
        FromClient::Forward { .. }
    ));
}

#[test]
fn failed_binds_try_other_ports_then_508() {
    let mut h = Harness::new();
    h.ask(ALLOCATE, vec![udp()]);
    let bytes = h.build(ALLOCATE, MessageClass::Request, vec![udp()]);
    let FromClient::Open { id, relay } = h.send(&bytes) else {
        panic!()
    };
    let next = h.relay.relay_failed(id).unwrap();
    assert_ne!(next, relay);
    let reply = decode(&h.relay.relay_opened(id, 5));
    let advertised = reply
        .get::<XorRelayedAddress>()
        .unwrap()
        .as_xor_relayed_address()
        .unwrap();
    assert_eq!(
        *advertised.socket_address(),
        next,
        "the answer names the port that was bound"
    );
    // A second client exhausts its attempts.
    h.from = tuple("198.51.100.7:40002");
    let bytes = h.build(ALLOCATE, MessageClass::Request, vec![udp()]);
    let FromClient::Open { id, .. } = h.send(&bytes) else {
        panic!()
    };
    let mut last = Ok(relay);
    for _ in 0..super::BIND_ATTEMPTS {
        last = h.relay.relay_failed(id);
        if last.is_err() {
            break;
        }
    }
    assert_eq!(error_code(&decode(&last.unwrap_err())), Some(508));
    assert_eq!(h.relay.allocation_count(), 1);
}

#[test]
fn closing_a_stream_frees_its_allocation() {
    let mut h = Harness::new();
    h.from.transport = Transport::Tcp;
    h.allocate();
    assert_eq!(h.relay.client_closed(&h.from), Some(1));
    assert_eq!(h.relay.allocation_count(), 0);
    assert_eq!(h.relay.client_closed(&h.from), None);
}

proptest::proptest! {
    /// Whatever bytes arrive, from a client or a peer, the core neither panics nor
    /// creates state for them.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
        let mut h = Harness::new();
        h.allocate();
        let _ = h.send(&bytes);
        // Also as a STUN message with a valid header around random attributes.
        let mut stun = vec![0x00, 0x03, 0, 0, 0x21, 0x12, 0xA4, 0x42];
        stun.extend_from_slice(&[9u8; 12]);
        stun.extend_from_slice(&bytes[..bytes.len() / 4 * 4]);
        let body = (stun.len() - 20) as u16;
        stun[2..4].copy_from_slice(&body.to_be_bytes());
        let _ = h.send(&stun);
        let mut buf = vec![0u8; bytes.len() + 8];
        buf[4..4 + bytes.len()].copy_from_slice(&bytes);
        let now = h.now.mono;
        let _ = h.relay.handle_peer(AllocId(1), peer("203.0.113.1:9"), &mut buf, bytes.len(), true, now);
        proptest::prop_assert_eq!(h.relay.allocation_count(), 1);
    }
}

#[test]
fn every_teardown_path_returns_the_port_and_the_quota() {
    // One relay port and one allocation per user: any leak shows as 508 or 486.
    let mut s = settings();
    s.ports = 50_000..=50_000;
    s.max_allocations_per_user = 1;
    let mut h = Harness::with(s);
    // Refresh with lifetime 0.
    h.allocate();
    let freed = h.authed(REFRESH, vec![LifeTime::from(0).into()]);
    assert_eq!(freed.class(), MessageClass::SuccessResponse);
    // Expiry.
    h.allocate();
    h.advance(Duration::from_secs(601));
    assert_eq!(h.relay.allocation_count(), 0);
    // A TCP connection closing.
    h.from.transport = Transport::Tcp;
    h.allocate();
    assert!(h.relay.client_closed(&h.from).is_some());
    // A failed bind that ends in 508.
    h.from.transport = Transport::Udp;
    let bytes = h.build(ALLOCATE, MessageClass::Request, vec![udp()]);
    let FromClient::Open { id, .. } = h.send(&bytes) else {
        panic!()
    };
    let _ = h.relay.relay_failed(id);
    assert_eq!(h.relay.allocation_count(), 0);
    assert!(h.relay.per_user.is_empty(), "the quota came back");
    // After all that, the range is still usable: only the port that failed stays held.
    let mut s = settings();
    s.ports = 50_000..=50_001;
    s.max_allocations_per_user = 1;
    let mut h = Harness::with(s);
    for _ in 0..3 {
        h.allocate();
        h.authed(REFRESH, vec![LifeTime::from(0).into()]);
    }
    h.allocate();
}
