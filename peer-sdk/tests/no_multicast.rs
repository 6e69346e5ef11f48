//! A call on a host with no multicast route (containers, some VMs): webrtc-rs cannot open
//! its mDNS socket there, and the SDK must go on without mDNS, saying so once. The test
//! runs this binary again in a network namespace of its own that has only `lo` up.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::process::Command;

use test_support::require::{require, require_root};

/// The inner test, run by [`a_call_works_in_a_namespace_without_multicast`].
const INNER: &str = "call_inside_the_namespace";
/// What the SDK logs when it turns mDNS off.
const MDNS_OFF: &str = "mDNS is off";

#[test]
fn a_call_works_in_a_namespace_without_multicast() {
    if !require_root("a network namespace (unshare -n)")
        || !require("unshare", "util-linux")
        || !require("ip", "iproute2")
    {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args([
            "-n",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" --ignored --exact \"$1\" --nocapture",
        ])
        .arg(&exe)
        .arg(INNER)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the call in the namespace failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("1 passed"), "{stdout}\n{stderr}");
    // Two peer connections (caller and callee) were built without mDNS; said once.
    assert_eq!(
        stderr.matches(MDNS_OFF).count(),
        1,
        "mDNS off must be logged once:\n{stderr}"
    );
}

/// Run inside the namespace only (through the test above): the signaling server and both
/// clients in this one process, on `lo`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run inside a network namespace by a_call_works_in_a_namespace_without_multicast"]
async fn call_inside_the_namespace() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .init();
    // The namespace is what the test says it is: the mDNS group cannot be joined.
    let probe = rtc::mdns::MulticastSocket::new().into_std();
    assert!(probe.is_err(), "multicast works here: not the namespace");
    eprintln!("mDNS probe: {}", probe.unwrap_err());

    let server = support::server().await;
    let alice = support::connect(server.local_addr(), "alice").await;
    let bob = support::connect(server.local_addr(), "bob").await;
    let (call, bob_call, chat, bob_chat) = support::chat_call(&alice, &bob).await;
    support::round_trip(&chat, &bob_chat, "no multicast here").await;
    support::round_trip(&bob_chat, &chat, "and still a call").await;
    call.hangup().await;
    drop(bob_call);
}
