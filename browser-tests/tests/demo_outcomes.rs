//! What the page tells a person when a call does not happen, or the connection to the
//! server drops: decline, busy, offline, cancel, no answer, a bad name, and a WebSocket
//! that drops mid-call and resumes without ending the call.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use peer_sdk::{CallOptions, Client, EndReason, Error, MediaKind};
use support::{CutProxy, Lab, assert_no_console_errors, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_busy_offline_cancelled_unanswered_and_bad_names_are_explained() {
    let Some(lab) = Lab::start_with(|c| c.ring_timeout = Duration::from_secs(2)).await else {
        return;
    };
    let alice = lab.page().await;
    let bob = lab.page().await;

    // A name the server refuses: the page says why and stays on the form.
    alice.sign_in_form("no spaces allowed", false).await;
    alice.wait_status("That name is not allowed").await;
    alice.sign_in("alice", false).await;
    bob.sign_in("bob", false).await;

    // A callee name that cannot exist is refused before anything is sent.
    alice.call("bob smith").await;
    alice.wait_status("That name is not allowed").await;

    // Nobody by that name is online.
    alice.call("nobody").await;
    alice.wait_status("nobody is not online.").await;

    // Declined.
    alice.call("bob").await;
    bob.wait_incoming("alice").await;
    bob.click("decline").await;
    alice.wait_status("bob declined the call.").await;
    bob.wait_status("You declined alice's call.").await;

    // Cancelled by the caller while it rings.
    alice.call("bob").await;
    bob.wait_incoming("alice").await;
    alice.click("hangup").await;
    alice.wait_status("Call ended.").await;
    bob.wait_status("alice cancelled the call.").await;

    // No answer within the ring timeout (2 s here).
    alice.call("bob").await;
    bob.wait_incoming("alice").await;
    alice.wait_status("bob did not answer.").await;
    bob.wait_status("Missed call from alice.").await;

    // Busy: bob's phone is ringing with carol's call (a Rust SDK client) when alice calls.
    let carol = within(
        "carol to sign in",
        Client::connect(&lab.ws_url(), "carol", None),
    )
    .await
    .unwrap();
    let carol_call = tokio::spawn(async move {
        let options = CallOptions {
            tracks: vec![MediaKind::Audio],
            ..Default::default()
        };
        let outcome = carol.call("bob", options).await.map(|_| ());
        (carol, outcome)
    });
    bob.wait_incoming("carol").await;
    alice.call("bob").await;
    alice.wait_status("bob is busy.").await;
    bob.wait_text("incoming-text", "carol is calling").await;
    bob.click("decline").await;
    let (carol, outcome) = within("carol's call to end", carol_call).await.unwrap();
    assert!(
        matches!(outcome, Err(Error::CallEnded(EndReason::Declined))),
        "{outcome:?}"
    );
    carol.close().await;

    assert_no_console_errors(&[&alice, &bob], &[]).await;
    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_websocket_resumes_and_the_call_goes_on() {
    let Some(lab) = Lab::start().await else {
        return;
    };
    // Alice reaches the server through a proxy the test can cut, page and WebSocket alike.
    let proxy = CutProxy::start(lab.server.local_addr()).await;
    let alice = lab.page_at(&format!("http://{}/", proxy.addr)).await;
    let bob = lab.page().await;
    alice.sign_in("alice", false).await;
    bob.sign_in("bob", false).await;
    alice.call("bob").await;
    bob.accept("alice").await;
    alice.wait_media().await;
    bob.wait_media().await;

    // The network drops for a while: the page says so and keeps the call.
    proxy.block(true);
    proxy.cut();
    alice
        .wait_status("Connection to the server lost; reconnecting")
        .await;
    alice.wait_text("server-state", "reconnecting").await;
    // Retried at least once while the network was down.
    alice.wait_status("(attempt 2)").await;
    proxy.block(false);
    alice
        .wait_status("Reconnected to the server; the session resumed and the call goes on.")
        .await;
    alice.wait_text("server-state", "signed in as alice").await;
    assert_eq!(alice.text("call-state").await, "connected");
    alice.wait_media().await;

    // Dropped again, and bob hangs up meanwhile: his hangup waits on the server and
    // reaches alice when she is back.
    proxy.block(true);
    proxy.cut();
    alice.wait_status("reconnecting").await;
    bob.click("hangup").await;
    bob.wait_status("Call ended.").await;
    alice.wait_status("(attempt 2)").await;
    proxy.block(false);
    alice.wait_status("bob hung up.").await;
    alice
        .wait_js("the call to be gone", "window.demo.call === null")
        .await;

    // The session works on: a new call.
    bob.call("alice").await;
    alice.accept("bob").await;
    alice.wait_media().await;
    alice.click("hangup").await;
    bob.wait_status("alice hung up.").await;

    // The failed reconnect attempts while the network was down are logged by Chromium.
    assert_no_console_errors(&[&alice, &bob], &["WebSocket connection to"]).await;
    alice.close().await;
    bob.close().await;
}
