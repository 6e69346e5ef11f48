//! RFC 6156: REQUESTED-ADDRESS-FAMILY IPv6 gets an IPv6 relayed address when the relay
//! has one, and data crosses the relay between two IPv6 allocations (relay to relay on
//! ::1, the only IPv6 address loopback offers). Without one, 440.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use stun_rs::attributes::turn::{
    ChannelNumber, RequestedAddressFamily, RequestedTrasport, XorPeerAddress,
};
use stun_rs::methods::{ALLOCATE, CHANNEL_BIND};
use stun_rs::{AddressFamily, MessageClass, StunAttribute};
use support::{Credentials, Peers, TestClient, Tls, error_code};

fn ipv6_allocate() -> Vec<StunAttribute> {
    vec![
        RequestedTrasport::new(stun_rs::protocols::UDP).into(),
        RequestedAddressFamily::new(AddressFamily::IPv6).into(),
    ]
}

async fn allocate_v6(client: &mut TestClient) -> SocketAddr {
    let reply = client.request(ALLOCATE, ipv6_allocate()).await;
    assert_eq!(reply.class(), MessageClass::SuccessResponse, "{reply:?}");
    test_support::stun::relayed_address(&reply)
}

#[tokio::test]
async fn ipv6_allocations_relay_to_each_other() {
    let mut settings = support::settings(Peers::PublicOnly, Credentials::FixedAndRest);
    settings.relay_ipv6 = Some("::1".parse().unwrap());
    settings.policy.own.push("::1".parse().unwrap());
    let relay = support::start(settings, Tls::Off).await;
    let (mut a, mut b) = (
        TestClient::new(relay.udp, "127.0.0.1").await,
        TestClient::new(relay.udp, "127.0.0.1").await,
    );
    let (relay_a, relay_b) = (allocate_v6(&mut a).await, allocate_v6(&mut b).await);
    assert!(
        relay_a.is_ipv6() && relay_b.is_ipv6(),
        "{relay_a} {relay_b}"
    );
    for (client, other) in [(&mut a, relay_b), (&mut b, relay_a)] {
        let bind = vec![
            ChannelNumber::new(0x4000).into(),
            XorPeerAddress::from(other).into(),
        ];
        let reply = client.request(CHANNEL_BIND, bind).await;
        assert_eq!(reply.class(), MessageClass::SuccessResponse, "{reply:?}");
    }
    // a → relay_a → relay_b → b, as ChannelData on b's channel for relay_a.
    a.send_raw(&[0x40, 0x00, 0x00, 0x04, b'v', b'6', b'o', b'k'])
        .await;
    let got = b.recv(Duration::from_secs(5)).await.unwrap();
    assert_eq!(got, [0x40, 0x00, 0x00, 0x04, b'v', b'6', b'o', b'k']);
    // An IPv4 peer on an IPv6 allocation is a family mismatch.
    let bind = vec![
        ChannelNumber::new(0x4001).into(),
        XorPeerAddress::from("198.51.100.1:9".parse::<SocketAddr>().unwrap()).into(),
    ];
    assert_eq!(error_code(&a.request(CHANNEL_BIND, bind).await), Some(443));
}

#[tokio::test]
async fn ipv6_without_an_ipv6_relay_address_is_440() {
    let settings = support::settings(Peers::PublicOnly, Credentials::FixedAndRest);
    let relay = support::start(settings, Tls::Off).await;
    let mut client = TestClient::new(relay.udp, "127.0.0.1").await;
    let reply = client.request(ALLOCATE, ipv6_allocate()).await;
    assert_eq!(error_code(&reply), Some(440));
}
