//! Direct when possible, relay when not, across real NATs: each test builds the lab of
//! `scripts/nat-lab` (network namespaces, veth, iptables NAT) and makes one or more calls
//! between the SDK's example programs. docs/nat-lab.md has the diagram.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use support::lab;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_on_the_same_lan_talk_host_to_host() {
    let Some(lab) = lab("nl1-", None).await else {
        return;
    };
    let call = lab.call("lana2", &[], "lana", &[]).await;
    // A remote host candidate can show as prflx when its check beat its trickle.
    assert!(call.bob.is(&["host"], &["host", "prflx"]), "{call:?}");
    assert!(call.alice.is(&["host"], &["host", "prflx"]), "{call:?}");
    assert_eq!(call.relayed_in_call, 0, "{call:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cone_nats_go_direct_through_reflexive_addresses() {
    let Some(lab) = lab("nl2-", None).await else {
        return;
    };
    // Full cone, then port-restricted cone (the usual home router): both punch through.
    for mode in ["cone", "prc"] {
        lab.nat("a", mode);
        lab.nat("b", mode);
        let call = lab.call("lanb", &[], "lana", &[]).await;
        // Behind different NATs a host address cannot be reached: the remote end is the
        // other NAT's mapping, learnt from our relay's STUN answer (srflx) or from the
        // other side's check (prflx). Nothing goes through the relay.
        assert!(!call.uses_relay(), "{mode}: {call:?}");
        assert!(
            call.bob.is(&["host"], &["srflx", "prflx"]),
            "{mode}: {call:?}"
        );
        assert!(
            call.alice.is(&["host"], &["srflx", "prflx"]),
            "{mode}: {call:?}"
        );
        assert_eq!(call.relayed_in_call, 0, "{mode}: {call:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symmetric_nats_need_the_relay() {
    let Some(lab) = lab("nl3-", None).await else {
        return;
    };
    lab.nat("a", "sym");
    lab.nat("b", "sym");
    let call = lab.call("lanb", &[], "lana", &[]).await;
    assert!(call.uses_relay(), "{call:?}");
    assert!(call.relayed_in_call > 10_000, "{call:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_keeps_out_of_its_own_private_network_unless_allowed() {
    // priv (10.0.9.2) sits on the relay's private network; bob is relay-only.
    let Some(mut lab) = lab("nl5-", None).await else {
        return;
    };
    let refused = lab.metric("turn_refused_peers_total");
    let call = lab.call("lana", &["--relay-only"], "priv", &[]).await;
    // The relay refused to send to 10.0.9.2 itself, so the only path left is relay to
    // relay (two allocations of ours).
    assert!(call.bob.is(&["relay"], &["relay"]), "{call:?}");
    assert!(
        lab.metric("turn_refused_peers_total") > refused,
        "no refusal counted"
    );

    // Allow-listed, the relay reaches priv's host address directly.
    lab.start_signaling(&["--turn-allow-peers", "10.0.9.0/24"])
        .await;
    let call = lab.call("lana", &["--relay-only"], "priv", &[]).await;
    assert!(call.bob.is(&["relay"], &["host", "prflx"]), "{call:?}");
}
