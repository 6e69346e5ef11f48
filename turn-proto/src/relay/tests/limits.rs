//! Quotas and rate limits: per user, in total, relay ports, challenges a second,
//! bandwidth, and every teardown path giving back what it held.

use super::*;

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
    let (id, _) = h.open_allocation();
    assert_eq!(error_code(&decode(&h.fail_every_bind(id))), Some(508));
    assert_eq!(h.relay.allocation_count(), 0);
    assert!(h.relay.per_user.is_empty(), "the quota came back");
    // After all that, the range is still usable: every port came back.
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

#[test]
fn rest_credentials_of_one_user_share_its_quota() {
    // Each `welcome` of the signaling server mints the same user a new expiry: the quota
    // counts the user, not the credential.
    let mut h = Harness::new();
    let rest = |h: &mut Harness, username: &str| {
        h.user = username.into();
        h.password = crate::credentials::password_for(b"rest-secret", username);
    };
    for (port, expiry) in [(1, 1_700_000_600u64), (2, 1_700_000_601)] {
        rest(&mut h, &format!("{expiry}:carol"));
        h.from = tuple(&format!("198.51.100.9:{port}"));
        h.allocate();
    }
    rest(&mut h, "1700000602:carol");
    h.from = tuple("198.51.100.9:3");
    assert_eq!(error_code(&h.authed(ALLOCATE, vec![udp()])), Some(486));
    // Another user of the same secret is not affected.
    rest(&mut h, "1700000602:dave");
    h.allocate();
}

#[test]
fn one_flooding_source_does_not_silence_the_others() {
    let mut s = settings();
    s.unauthenticated_per_s = 100;
    s.unauthenticated_per_source_per_s = 5;
    s.nonce_lifetime = Duration::from_secs(10);
    let mut h = Harness::with(s);
    // An allocation holder (its first, unsigned Allocate was challenged).
    let holder = h.from;
    h.allocate();
    let signed_nonce = h.nonce.take();
    let unsigned = h.build(ALLOCATE, MessageClass::Request, vec![udp()]);
    let answered = |h: &mut Harness, from: &str, n: usize| {
        h.from = tuple(from);
        (0..n)
            .filter(|_| matches!(h.send(&unsigned), FromClient::Reply(_)))
            .count()
    };
    // One source floods: it gets its own burst (4 x 5), not the relay's 100.
    assert_eq!(answered(&mut h, "198.51.100.50:1", 10_000), 20);
    assert_eq!(
        answered(&mut h, "198.51.100.51:1", 30),
        20,
        "a victim is answered"
    );
    // The holder's nonce goes stale (the allocation lives on); then many sources drain the
    // global budget. The holder's refresh is answered all the same (438), so it can go on.
    h.advance(Duration::from_secs(11));
    for i in 0..200 {
        answered(&mut h, &format!("203.0.113.{}:1", i % 250), 1);
    }
    assert_eq!(
        answered(&mut h, "198.51.100.52:1", 5),
        0,
        "global budget spent"
    );
    h.from = holder;
    h.nonce = signed_nonce;
    let refresh = h.build(REFRESH, MessageClass::Request, vec![]);
    let FromClient::Reply(reply) = h.send(&refresh) else {
        panic!("the refresh was not answered")
    };
    assert_eq!(error_code(&decode(&reply)), Some(438));
}
