//! ChannelBind, ChannelData, and what peers send back (ChannelData or Data indications).

use super::*;

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
    // Over TCP, so that ChannelData is padded (and the padding must be zeroes).
    h.from.transport = Transport::Tcp;
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
        h.relay.handle_peer(id, bound, &mut buf, 5, now),
        FromPeer::ChannelData(12)
    );
    assert_eq!(
        &buf[..12],
        &[0x40, 0, 0, 5, b'h', b'e', b'l', b'l', b'o', 0, 0, 0]
    );
    buf[4..9].copy_from_slice(b"hello");
    let FromPeer::Indication(ind) = h.relay.handle_peer(id, unbound, &mut buf, 5, now) else {
        panic!()
    };
    let ind = decode(&ind);
    assert_eq!(ind.method(), stun_rs::methods::DATA);
    assert_eq!(
        ind.get::<Data>().unwrap().as_data().unwrap().as_bytes(),
        b"hello"
    );
    assert_eq!(
        h.relay.handle_peer(id, stranger, &mut buf, 5, now),
        FromPeer::Drop
    );
    assert_eq!(
        h.relay.handle_peer(AllocId(99), bound, &mut buf, 5, now),
        FromPeer::Drop
    );
    // A UDP client gets ChannelData without padding.
    h.from = tuple("198.51.100.7:40001");
    h.allocate();
    h.authed(CHANNEL_BIND, channel(0x4000, bound));
    buf[4..9].copy_from_slice(b"hello");
    assert_eq!(
        h.relay.handle_peer(AllocId(2), bound, &mut buf, 5, now),
        FromPeer::ChannelData(9)
    );
}
