//! Browser peers in the NAT lab: headless Chromium runs inside a namespace and calls the
//! SDK's `answer` example in another. Topology 3 (symmetric NATs) with a browser, and
//! topology 4: a network with no UDP at all, where only TURN over TCP, or only TURN over
//! TLS, gets out. webrtc-rs 0.21 has no TURN over TCP or TLS (it skips such URLs), so the
//! browser is the peer that needs it; docs/nat-lab.md.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use support::{browser_pki, lab};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_behind_a_symmetric_nat_calls_through_the_relay() {
    let Some(pki) = browser_pki("nl6-") else {
        return;
    };
    let Some(lab) = lab("nl6-", None).await else {
        return;
    };
    lab.nat("a", "sym");
    lab.nat("b", "sym");
    let call = lab.browser_call(&pki, "lana", "lanb", None).await;
    assert_eq!(call.stats["path"], "relay", "{call:?}");
    assert!(call.badge.starts_with("via relay"), "{call:?}");
    assert!(call.relayed_in_call > 10_000, "{call:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_udp_blocked_a_browser_relays_over_turn_tcp_or_tls() {
    let Some(pki) = browser_pki("nl7-") else {
        return;
    };
    let Some(lab) = lab("nl7-", Some(&pki)).await else {
        return;
    };
    // udpblock: no UDP leaves LAN A; TCP reaches signaling and the relay (3478 and 5349),
    // and Chromium prefers TURN over TCP to TURN over TLS. tlsonly: nothing but TLS to the
    // relay gets out; the browser checks the relay's certificate against the CA it trusts.
    for (mode, protocol, badge) in [
        ("udpblock", "tcp", "over TCP"),
        ("tlsonly", "tls", "over TLS"),
    ] {
        lab.nat("a", mode);
        let settles = format!("s.relayProtocol === {protocol:?}");
        let call = lab.browser_call(&pki, "lana", "lanb", Some(&settles)).await;
        assert_eq!(call.browser.local, "relay", "{mode}: {call:?}");
        assert_eq!(
            call.browser.relay.as_deref(),
            Some(protocol),
            "{mode}: {call:?}"
        );
        assert!(call.badge.ends_with(badge), "{mode}: {call:?}");
        assert!(call.relayed_in_call > 10_000, "{mode}: {call:?}");
    }
}
