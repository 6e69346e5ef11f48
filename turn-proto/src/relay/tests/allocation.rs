//! Allocate, Refresh and the allocation's life: challenges, retransmissions, bad
//! requests, lifetimes, failed binds, teardown.

use super::*;

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
fn bad_allocate_requests() {
    let mut h = Harness::new();
    h.ask(ALLOCATE, vec![udp()]); // the challenge: a nonce
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
fn failed_binds_try_other_ports_then_508() {
    let mut h = Harness::new();
    h.ask(ALLOCATE, vec![udp()]);
    let (id, relay) = h.open_allocation();
    let next = h.relay.relay_failed(id, BindFailure::PortInUse).unwrap();
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
    let (id, _) = h.open_allocation();
    assert_eq!(error_code(&decode(&h.fail_every_bind(id))), Some(508));
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

#[test]
fn failed_binds_give_their_ports_back() {
    // Two ports. Every bind fails as "port in use" until the allocation gives up: without
    // the ports coming back, the range would now be empty and every Allocate would get 508.
    let mut s = settings();
    s.ports = 50_000..=50_001;
    let mut h = Harness::with(s);
    h.ask(ALLOCATE, vec![udp()]);
    let (id, _) = h.open_allocation();
    assert_eq!(error_code(&decode(&h.fail_every_bind(id))), Some(508));
    assert_eq!(h.relay.allocation_count(), 0);
    h.allocate();
    assert_eq!(
        h.relay.allocation_count(),
        1,
        "a port of the range is free again"
    );
}

#[test]
fn a_failure_not_about_the_port_answers_508_at_once() {
    // Out of file descriptors: another port would fail the same way, so no retry burns
    // ports, and the port goes back.
    let mut s = settings();
    s.ports = 50_000..=50_000;
    let mut h = Harness::with(s);
    h.ask(ALLOCATE, vec![udp()]);
    let (id, _) = h.open_allocation();
    let reply = h.relay.relay_failed(id, BindFailure::Other).unwrap_err();
    assert_eq!(error_code(&decode(&reply)), Some(508));
    assert_eq!(h.relay.allocation_count(), 0);
    h.allocate();
    assert_eq!(h.relay.allocation_count(), 1, "the only port is free again");
}
