//! Bad input: truncated, overlong and random bytes are dropped or get 400, never a panic.

use super::*;

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
        let _ = h.relay.handle_peer(AllocId(1), peer("203.0.113.1:9"), &mut buf, bytes.len(), now);
        proptest::prop_assert_eq!(h.relay.allocation_count(), 1);
    }
}
