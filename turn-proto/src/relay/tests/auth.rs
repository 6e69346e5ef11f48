//! Long-term credentials: integrity (SHA-1 and SHA-256), nonces, TURN REST usernames,
//! the owner of an allocation, and no state for unauthenticated requests.

use super::*;

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
fn refresh_from_another_user_is_441() {
    let mut h = Harness::new();
    h.allocate();
    h.user = "bob".into();
    h.password = "pw-b".into();
    assert_eq!(error_code(&h.authed(REFRESH, Vec::new())), Some(441));
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
