//! MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT checks on the raw bytes of
//! a request (RFC 8489 §14.5, §14.6, §14.7).
//!
//! stun-rs checks integrity only with a key fixed before decoding, and compares HMACs
//! with `==`. A server learns the key from the message itself (USERNAME, REALM), so it
//! decodes first and verifies here, in constant time (`hmac`'s `verify_*`), and accepts
//! MESSAGE-INTEGRITY-SHA256 truncated to 16 bytes as RFC 8489 allows.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

use crate::framing::STUN_HEADER;

/// Attribute types read from the raw bytes (RFC 8489 §18.3, RFC 8656 §18).
pub const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
/// MESSAGE-INTEGRITY-SHA256.
pub const ATTR_MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
/// FINGERPRINT.
pub const ATTR_FINGERPRINT: u16 = 0x8028;
/// DATA, the payload of a Send indication.
pub const ATTR_DATA: u16 = 0x0013;
const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// Which integrity attribute a request carried; a response answers with the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrityKind {
    /// MESSAGE-INTEGRITY (HMAC-SHA1).
    Sha1,
    /// MESSAGE-INTEGRITY-SHA256.
    Sha256,
}

/// Where an attribute's value lies in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrSpan {
    /// Offset of the attribute header.
    pub start: usize,
    /// Where its value lies (padding excluded).
    pub value: std::ops::Range<usize>,
}

/// Finds the first attribute of type `wanted` in a STUN message whose framing was
/// already checked, stopping at MESSAGE-INTEGRITY unless that is what is wanted
/// (attributes after it are not protected and must be ignored).
pub fn find_attr(msg: &[u8], wanted: u16) -> Option<AttrSpan> {
    let mut at = STUN_HEADER;
    while at + 4 <= msg.len() {
        let kind = u16::from_be_bytes([msg[at], msg[at + 1]]);
        let len = u16::from_be_bytes([msg[at + 2], msg[at + 3]]) as usize;
        let value = at + 4..at + 4 + len;
        if value.end > msg.len() {
            return None;
        }
        if kind == wanted {
            return Some(AttrSpan { start: at, value });
        }
        let integrity = kind == ATTR_MESSAGE_INTEGRITY || kind == ATTR_MESSAGE_INTEGRITY_SHA256;
        if integrity && wanted != ATTR_MESSAGE_INTEGRITY_SHA256 && wanted != ATTR_FINGERPRINT {
            return None;
        }
        at = crate::framing::padded(value.end);
    }
    None
}

/// The integrity attribute a request carries, if any: SHA-256 is preferred.
pub fn integrity_of(msg: &[u8]) -> Option<(IntegrityKind, AttrSpan)> {
    if let Some(span) = find_attr(msg, ATTR_MESSAGE_INTEGRITY_SHA256) {
        return Some((IntegrityKind::Sha256, span));
    }
    find_attr(msg, ATTR_MESSAGE_INTEGRITY).map(|span| (IntegrityKind::Sha1, span))
}

/// Checks the integrity attribute at `span` with the long-term `key`.
pub fn verify(msg: &[u8], kind: IntegrityKind, span: &AttrSpan, key: &[u8]) -> bool {
    let tag = &msg[span.value.clone()];
    match kind {
        IntegrityKind::Sha1 => {
            if tag.len() != 20 {
                return false;
            }
            let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
                return false;
            };
            feed(&mut mac, msg, span);
            mac.verify_slice(tag).is_ok()
        }
        IntegrityKind::Sha256 => {
            if tag.len() < 16 || tag.len() > 32 || !tag.len().is_multiple_of(4) {
                return false;
            }
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
                return false;
            };
            feed(&mut mac, msg, span);
            mac.verify_truncated_left(tag).is_ok()
        }
    }
}

/// HMAC input: the header with its length covering the integrity attribute, then the
/// attributes before it.
fn feed<M: Mac>(mac: &mut M, msg: &[u8], span: &AttrSpan) {
    let length = (span.value.end - STUN_HEADER) as u16;
    mac.update(&msg[..2]);
    mac.update(&length.to_be_bytes());
    mac.update(&msg[4..span.start]);
}

/// A FINGERPRINT, when present, must be the last attribute and match; `true` when absent.
pub fn fingerprint_ok(msg: &[u8]) -> bool {
    let Some(span) = find_attr(msg, ATTR_FINGERPRINT) else {
        return true;
    };
    if span.value.len() != 4 || span.value.end != msg.len() {
        return false;
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&msg[..span.start]);
    let expected = hasher.finalize() ^ FINGERPRINT_XOR;
    msg[span.value] == expected.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5769 §2.4: request with long-term authentication (user "<U+30DE><U+30C8><U+30EA>
    /// <U+30C3><U+30AF><U+30B9>", password "The<U+00AD>M<U+00AA>tr<U+2168>" → "TheMatrIX",
    /// realm "example.org"), computed independently of this code.
    const RFC5769_LONG_TERM: [u8; 116] = [
        0x00, 0x01, 0x00, 0x60, 0x21, 0x12, 0xa4, 0x42, 0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72,
        0xc0, 0x29, 0xda, 0x41, 0x2e, 0x00, 0x06, 0x00, 0x12, 0xe3, 0x83, 0x9e, 0xe3, 0x83, 0x88,
        0xe3, 0x83, 0xaa, 0xe3, 0x83, 0x83, 0xe3, 0x82, 0xaf, 0xe3, 0x82, 0xb9, 0x00, 0x00, 0x00,
        0x15, 0x00, 0x1c, 0x66, 0x2f, 0x2f, 0x34, 0x39, 0x39, 0x6b, 0x39, 0x35, 0x34, 0x64, 0x36,
        0x4f, 0x4c, 0x33, 0x34, 0x6f, 0x4c, 0x39, 0x46, 0x53, 0x54, 0x76, 0x79, 0x36, 0x34, 0x73,
        0x41, 0x00, 0x14, 0x00, 0x0b, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72,
        0x67, 0x00, 0x00, 0x08, 0x00, 0x14, 0xf6, 0x70, 0x24, 0x65, 0x6d, 0xd6, 0x4a, 0x3e, 0x02,
        0xb8, 0xe0, 0x71, 0x2e, 0x85, 0xc9, 0xa2, 0x8c, 0xa8, 0x96, 0x66,
    ];

    fn rfc_key() -> Vec<u8> {
        let user = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";
        let algorithm = stun_rs::Algorithm::from(stun_rs::AlgorithmId::MD5);
        stun_rs::HMACKey::new_long_term(user, "example.org", "TheMatrIX", algorithm)
            .unwrap()
            .as_bytes()
            .to_vec()
    }

    #[test]
    fn rfc5769_long_term_vector() {
        let (kind, span) = integrity_of(&RFC5769_LONG_TERM).unwrap();
        assert_eq!(kind, IntegrityKind::Sha1);
        assert!(verify(&RFC5769_LONG_TERM, kind, &span, &rfc_key()));
        assert!(!verify(&RFC5769_LONG_TERM, kind, &span, b"wrong key"));
        let mut tampered = RFC5769_LONG_TERM;
        tampered[30] ^= 1;
        assert!(!verify(&tampered, kind, &span, &rfc_key()));
        assert!(fingerprint_ok(&RFC5769_LONG_TERM));
    }

    #[test]
    fn attributes_after_integrity_are_not_found() {
        let mut msg = RFC5769_LONG_TERM.to_vec();
        // Append a DATA attribute after MESSAGE-INTEGRITY.
        msg.extend_from_slice(&[0x00, 0x13, 0x00, 0x04, 1, 2, 3, 4]);
        let body = (msg.len() - STUN_HEADER) as u16;
        msg[2..4].copy_from_slice(&body.to_be_bytes());
        assert_eq!(find_attr(&msg, ATTR_DATA), None);
        assert!(find_attr(&msg, ATTR_MESSAGE_INTEGRITY).is_some());
    }

    #[test]
    fn truncated_attribute_is_not_found() {
        let msg = &RFC5769_LONG_TERM[..40];
        assert_eq!(find_attr(msg, ATTR_MESSAGE_INTEGRITY), None);
    }
}
