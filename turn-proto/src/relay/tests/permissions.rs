//! CreatePermission, Send indications and the peer policy.

use super::*;

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
