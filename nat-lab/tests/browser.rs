//! Browser peers in the NAT lab: headless Chromium runs inside a namespace and calls the
//! SDK's `answer` example in another. Topology 3 (symmetric NATs) with a browser, and
//! topology 4: a network with no UDP at all, where only TURN over TCP, or only TURN over
//! TLS, gets out. webrtc-rs 0.21 has no TURN over TCP or TLS (it skips such URLs), so the
//! browser is the peer that needs it; docs/nat-lab.md.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use serde_json::Value;
use support::example::{Example, receives_rtp};
use support::{NatLab, Pki};

/// alice (Chromium in `browser_ns`) calls bob (the SDK's answer example in `answer_ns`);
/// waits until the page decodes bob's video and bob receives RTP (and, given `settles`, a
/// JS condition on the page's stats `s`: Chromium may switch pairs once more have been
/// checked), measures what the relay carries over one more status period of bob's, hangs
/// up from the page. Returns the page's stats and badge, and the relayed bytes.
async fn browser_calls(
    lab: &NatLab,
    pki: &Pki,
    browser_ns: &str,
    answer_ns: &str,
    settles: Option<&str>,
) -> (Value, u64) {
    let ws = lab.ws_url();
    let bob = lab.spawn(
        answer_ns,
        env!("CARGO_BIN_EXE_lab-answer"),
        &["--server", &ws, "--user", "bob", "--once"],
    );
    bob.wait_line("bob to sign in", |l| l.contains("waiting for calls"))
        .await;
    let alice = lab.browser(browser_ns, pki).await;
    alice.page.sign_in("alice", false).await;
    alice.page.call("bob").await;
    let mut stats = alice.page.wait_media().await;
    if let Some(condition) = settles {
        let expr = format!("window.demo.call.stats().then(s => ({condition}) && s)");
        stats = alice.page.wait_js(condition, &expr).await;
    }
    bob.wait_line("RTP at bob", receives_rtp).await;
    let before = lab.relayed_bytes();
    another_status_line(&bob).await;
    let relayed = lab.relayed_bytes() - before;
    let badge = alice.page.text("path").await;
    alice.page.click("hangup").await;
    bob.wait_line("the end of the call at bob", |l| {
        l.starts_with("call ended")
    })
    .await;
    assert!(bob.exit().await, "the answer example failed");
    let stats = serde_json::json!({ "stats": stats, "badge": badge });
    eprintln!("{stats}; relayed {relayed} B");
    (stats, relayed)
}

async fn another_status_line(ex: &Example) {
    ex.wait_another("another status line", receives_rtp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_behind_a_symmetric_nat_calls_through_the_relay() {
    let Some(pki) = Pki::new("nl6-") else {
        return;
    };
    let Some(lab) = NatLab::up("nl6-", &[]).await else {
        return;
    };
    lab.nat("a", "sym");
    lab.nat("b", "sym");
    let (call, relayed) = browser_calls(&lab, &pki, "lana", "lanb", None).await;
    assert_eq!(call["stats"]["path"], "relay", "{call}");
    assert!(
        call["badge"].as_str().unwrap().starts_with("via relay"),
        "{call}"
    );
    assert!(relayed > 10_000, "{call}; relayed {relayed} B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_udp_blocked_a_browser_relays_over_turn_tcp_or_tls() {
    let Some(pki) = Pki::new("nl7-") else {
        return;
    };
    let tls = pki.signaling_args();
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let Some(lab) = NatLab::up("nl7-", &tls).await else {
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
        let (call, relayed) = browser_calls(&lab, &pki, "lana", "lanb", Some(&settles)).await;
        assert_eq!(call["stats"]["local"], "relay", "{mode}: {call}");
        assert_eq!(call["stats"]["relayProtocol"], protocol, "{mode}: {call}");
        assert!(
            call["badge"].as_str().unwrap().ends_with(badge),
            "{mode}: {call}"
        );
        assert!(relayed > 10_000, "{mode}: {call}; relayed {relayed} B");
    }
}
