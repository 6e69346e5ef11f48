//! The DTLS handshake recovers from a lost final flight (vendor/README.md,
//! `dtls-retransmit.patch`), driven on the sans-IO endpoints of the vendored rtc-dtls with
//! invented times: no sockets, no sleeping.
//!
//! What the NAT lab's shaped network (5% loss, 100 ± 30 ms) caught: the server's flight 4
//! was retransmitted while the client's flight 5 was on its way; the server completed and
//! sent its Finished (flight 6), which was lost; the client then received the repeated
//! flight 4, and rtc-dtls 0.21.1 disarmed its retransmit timer on any handshake packet,
//! whether or not it completed the flight it was waiting for. The client never sent
//! flight 5 again, the server never had a reason to repeat flight 6, and the call never
//! connected.
#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // one reading of the clock as the origin; later times are invented

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::dtls::config::{ClientAuthType, ConfigBuilder, ExtendedMasterSecretType, HandshakeConfig};
use rtc::dtls::crypto::Certificate;
use rtc::dtls::endpoint::{Endpoint, EndpointEvent};
use rtc::shared::TransportProtocol;

const CLIENT: &str = "10.0.2.2:5000";
const SERVER: &str = "10.0.1.2:6000";

/// A configuration as `rtc` builds one for a peer connection (certificate, client
/// authentication required, any certificate accepted).
fn config(is_client: bool) -> Arc<HandshakeConfig> {
    let provider = rtc::crypto::default_provider().unwrap();
    let cert =
        Certificate::generate_self_signed(vec!["peer".to_owned()], provider.crypto()).unwrap();
    Arc::new(
        ConfigBuilder::default()
            .with_crypto_provider(provider)
            .with_certificates(vec![cert])
            .with_client_auth(ClientAuthType::RequireAnyClientCert)
            .with_insecure_skip_verify(true)
            .with_extended_master_secret(ExtendedMasterSecretType::Require)
            .build(is_client, None)
            .unwrap(),
    )
}

/// The datagrams an endpoint has queued.
fn sent(endpoint: &mut Endpoint) -> Vec<BytesMut> {
    std::iter::from_fn(|| endpoint.poll_transmit().map(|t| t.message)).collect()
}

/// Hands `datagrams` from `from` to `to`; true if the handshake completed on `to`.
fn deliver(to: &mut Endpoint, from: SocketAddr, datagrams: &[BytesMut], now: Instant) -> bool {
    let mut complete = false;
    for d in datagrams {
        let events = to.read(now, from, None, d.clone()).unwrap();
        complete |= events
            .iter()
            .any(|e| matches!(e, EndpointEvent::HandshakeComplete));
    }
    complete
}

#[test]
fn a_lost_finished_is_recovered_after_the_client_receives_a_repeated_flight() {
    let (client_addr, server_addr): (SocketAddr, SocketAddr) =
        (CLIENT.parse().unwrap(), SERVER.parse().unwrap());
    let mut client = Endpoint::new(client_addr, TransportProtocol::UDP, None);
    let mut server = Endpoint::new(server_addr, TransportProtocol::UDP, Some(config(false)));
    let mut now = Instant::now();

    client
        .connect(now, server_addr, config(true), None)
        .unwrap();
    let flight1 = sent(&mut client);
    assert!(!deliver(&mut server, client_addr, &flight1, now));
    let flight2 = sent(&mut server); // HelloVerifyRequest
    assert!(!deliver(&mut client, server_addr, &flight2, now));
    let flight3 = sent(&mut client); // ClientHello with the cookie
    assert!(!deliver(&mut server, client_addr, &flight3, now));
    let flight4 = sent(&mut server); // ServerHello … ServerHelloDone
    assert!(!flight4.is_empty());
    now += Duration::from_millis(50); // on its way
    assert!(!deliver(&mut client, server_addr, &flight4, now));
    let flight5 = sent(&mut client); // Certificate … Finished
    assert!(!flight5.is_empty());
    let client_timer = client
        .poll_timeout(&server_addr)
        .expect("the client waits for flight 6 with its retransmit timer armed");

    // The server's timer fires before flight 5 arrives: it repeats flight 4 (new record
    // sequence numbers, so not a replay).
    now = server
        .poll_timeout(&client_addr)
        .expect("the server waits for flight 5");
    assert!(now < client_timer);
    server.handle_timeout(client_addr, now).unwrap();
    let flight4_again = sent(&mut server);
    assert!(
        !flight4_again.is_empty(),
        "the server retransmitted flight 4"
    );

    // Flight 5 arrives; the server completes, and its Finished is lost.
    assert!(
        deliver(&mut server, client_addr, &flight5, now),
        "the server completes"
    );
    let flight6 = sent(&mut server);
    assert!(!flight6.is_empty(), "the server sent its Finished");
    drop(flight6);

    // The repeated flight 4 reaches the client, which is still waiting for flight 6.
    assert!(!deliver(&mut client, server_addr, &flight4_again, now));
    let timer = client.poll_timeout(&server_addr).expect(
        "the client still has a retransmit timer after a packet that did not complete \
         the flight it waits for (rtc-dtls 0.21.1 disarmed it, and the handshake stalled)",
    );
    assert_eq!(timer, client_timer, "the timer keeps its deadline");

    // The timer fires: the client repeats flight 5, the server answers the repeat with its
    // flight 6 again (RFC 6347 4.2.4), and the client completes.
    now = timer;
    client.handle_timeout(server_addr, now).unwrap();
    let flight5_again = sent(&mut client);
    assert!(
        !flight5_again.is_empty(),
        "the client retransmitted flight 5"
    );
    assert!(!deliver(&mut server, client_addr, &flight5_again, now));
    if server.poll_timeout(&client_addr).is_some_and(|t| t <= now) {
        server.handle_timeout(client_addr, now).unwrap();
    }
    let flight6_again = sent(&mut server);
    assert!(
        !flight6_again.is_empty(),
        "the completed server repeats its Finished"
    );
    assert!(
        deliver(&mut client, server_addr, &flight6_again, now),
        "the client completes the handshake"
    );
}
