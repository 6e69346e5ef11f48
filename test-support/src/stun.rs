//! STUN/TURN messages for tests, built and signed on the test side with stun-rs's encoder,
//! independently of the relay's own integrity code (turn-proto's `integrity`), so that a
//! mistake there cannot cancel out in the tests. For a message stun-rs cannot encode (a raw
//! attribute spliced in), [`append_message_integrity`] signs the bytes by hand per RFC 8489
//! §14.5; a unit test here checks it against stun-rs.

use std::net::SocketAddr;

use stun_rs::attributes::stun::{
    ErrorCode, MessageIntegrity, MessageIntegritySha256, Nonce, Realm, UserName,
};
use stun_rs::attributes::turn::XorRelayedAddress;
use stun_rs::{
    Algorithm, AlgorithmId, HMACKey, MessageClass, MessageDecoderBuilder, MessageEncoderBuilder,
    MessageMethod, StunAttribute, StunMessage, StunMessageBuilder,
};

/// Long-term credentials (RFC 8489 §9.2) with the server's NONCE: what signs a request.
#[derive(Debug, Clone, Copy)]
pub struct LongTerm<'a> {
    pub user: &'a str,
    pub realm: &'a str,
    pub password: &'a str,
    pub nonce: &'a str,
}

/// Which integrity attribute signs a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// MESSAGE-INTEGRITY (HMAC-SHA1).
    Sha1,
    /// MESSAGE-INTEGRITY-SHA256.
    Sha256,
}

/// The long-term key: MD5(user ":" realm ":" password).
pub fn long_term_key(user: &str, realm: &str, password: &str) -> HMACKey {
    HMACKey::new_long_term(user, realm, password, Algorithm::from(AlgorithmId::MD5)).unwrap()
}

/// Encodes `method`/`class` with `attrs`; when `signed`, followed by USERNAME, REALM,
/// NONCE and the integrity attribute.
pub fn message(
    method: MessageMethod,
    class: MessageClass,
    attrs: Vec<StunAttribute>,
    signed: Option<(LongTerm<'_>, Integrity)>,
) -> Vec<u8> {
    let mut b = StunMessageBuilder::new(method, class);
    for a in attrs {
        b = b.with_attribute(a);
    }
    if let Some((creds, integrity)) = signed {
        let key = long_term_key(creds.user, creds.realm, creds.password);
        b = b
            .with_attribute(UserName::new(creds.user).unwrap())
            .with_attribute(Realm::new(creds.realm).unwrap())
            .with_attribute(Nonce::new(creds.nonce).unwrap());
        b = match integrity {
            Integrity::Sha1 => b.with_attribute(MessageIntegrity::new(key)),
            Integrity::Sha256 => b.with_attribute(MessageIntegritySha256::new(key)),
        };
    }
    encode(&b.build())
}

pub fn encode(msg: &StunMessage) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let n = MessageEncoderBuilder::default()
        .build()
        .encode(&mut buf, msg)
        .unwrap();
    buf.truncate(n);
    buf
}

pub fn decode(bytes: &[u8]) -> StunMessage {
    MessageDecoderBuilder::default()
        .build()
        .decode(bytes)
        .unwrap()
        .0
}

pub fn error_code(msg: &StunMessage) -> Option<u16> {
    msg.get::<ErrorCode>()
        .map(|e| e.as_error_code().unwrap().error_code().error_code())
}

/// A 401 or 438: the request is to be sent again, signed with the NONCE this carries.
pub fn is_challenge(msg: &StunMessage) -> bool {
    matches!(error_code(msg), Some(401 | 438))
}

/// The NONCE of a response, if it has one.
pub fn nonce(msg: &StunMessage) -> Option<String> {
    msg.get::<Nonce>()
        .map(|n| n.as_nonce().unwrap().as_str().to_owned())
}

/// The XOR-RELAYED-ADDRESS of an Allocate success response.
pub fn relayed_address(msg: &StunMessage) -> SocketAddr {
    *msg.get::<XorRelayedAddress>()
        .unwrap_or_else(|| panic!("no XOR-RELAYED-ADDRESS in {msg:?}"))
        .as_xor_relayed_address()
        .unwrap()
        .socket_address()
}

/// Appends MESSAGE-INTEGRITY (HMAC-SHA1 with `key`) to the encoded message `msg`, after
/// setting its length to cover it (RFC 8489 §14.5).
pub fn append_message_integrity(msg: &mut Vec<u8>, key: &[u8]) {
    use hmac::{Hmac, Mac};
    const HEADER: usize = 20;
    const ATTRIBUTE: usize = 4 + 20;
    let len = (msg.len() - HEADER + ATTRIBUTE) as u16;
    msg[2..4].copy_from_slice(&len.to_be_bytes());
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).unwrap();
    mac.update(msg);
    let tag = mac.finalize().into_bytes();
    msg.extend_from_slice(&[0x00, 0x08, 0x00, 0x14]);
    msg.extend_from_slice(&tag);
}

#[cfg(test)]
mod tests {
    use stun_rs::methods::ALLOCATE;

    use super::*;

    const CREDS: LongTerm<'static> = LongTerm {
        user: "alice",
        realm: "test",
        password: "pw",
        nonce: "n0nce",
    };

    #[test]
    fn signing_by_hand_matches_stun_rs() {
        let signed = message(
            ALLOCATE,
            MessageClass::Request,
            Vec::new(),
            Some((CREDS, Integrity::Sha1)),
        );
        // The same message up to NONCE, with the same transaction, signed by hand.
        let id = *decode(&signed).transaction_id();
        let unsigned = encode(
            &StunMessageBuilder::new(ALLOCATE, MessageClass::Request)
                .with_transaction_id(id)
                .with_attribute(UserName::new(CREDS.user).unwrap())
                .with_attribute(Realm::new(CREDS.realm).unwrap())
                .with_attribute(Nonce::new(CREDS.nonce).unwrap())
                .build(),
        );
        let mut by_hand = unsigned;
        let key = long_term_key(CREDS.user, CREDS.realm, CREDS.password);
        append_message_integrity(&mut by_hand, key.as_bytes());
        assert_eq!(by_hand, signed);
    }

    #[test]
    fn a_signed_request_verifies_with_the_key_and_not_without() {
        for integrity in [Integrity::Sha1, Integrity::Sha256] {
            let bytes = message(
                ALLOCATE,
                MessageClass::Request,
                Vec::new(),
                Some((CREDS, integrity)),
            );
            let check = |key: HMACKey| {
                let ctx = stun_rs::DecoderContextBuilder::default()
                    .with_key(key)
                    .with_validation()
                    .build();
                MessageDecoderBuilder::default()
                    .with_context(ctx)
                    .build()
                    .decode(&bytes)
                    .is_ok()
            };
            assert!(check(long_term_key("alice", "test", "pw")), "{integrity:?}");
            assert!(
                !check(long_term_key("alice", "test", "guess")),
                "{integrity:?}"
            );
        }
    }
}
