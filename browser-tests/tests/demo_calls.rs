//! Two people, two headless Chromiums, one real signaling server: they call each other
//! through the demo page, see and hear each other, chat, and hang up.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use support::{Lab, Page, assert_no_console_errors, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_call_see_and_hear_each_other_then_hang_up() {
    let Some(lab) = Lab::start().await else {
        return;
    };
    let alice = lab.page_at(&format!("{}?user=alice", lab.url())).await;
    let bob = lab.page().await;
    // Bob is on a phone-sized screen.
    bob.client.set_window_size(390, 844).await.unwrap();
    // ?user= fills the name in; bob types his.
    assert_eq!(
        alice.eval("document.getElementById('user').value").await,
        "alice"
    );
    alice.click("connect").await;
    alice.wait_status("Ready").await;
    bob.sign_in("bob", false).await;

    alice.call("bob").await;
    alice.wait_status("Ringing bob").await;
    bob.accept("alice").await;

    for page in [&alice, &bob] {
        let stats = page.wait_media().await;
        // Chromium hides host candidates behind mDNS names and does not use loopback, so
        // two pages on one machine meet over its interface: a direct path.
        assert_eq!(stats["path"], "direct", "{stats}");
        page.wait_text("path", "direct").await;
        page.wait_text("stats", "RTT").await;
    }
    alice.wait_status("Connected with bob").await;
    // Nothing sticks out sideways on the phone, and the controls are on screen.
    let fits = bob
        .eval("document.documentElement.scrollWidth <= window.innerWidth")
        .await;
    assert_eq!(fits, true, "the page is wider than a phone screen");
    let width = bob
        .eval(
            "document.getElementById('hangup').getBoundingClientRect().right <= window.innerWidth",
        )
        .await;
    assert_eq!(width, true, "the hang-up button is off screen");

    // Chat over the data channel, both ways.
    alice
        .wait_js(
            "the chat to open",
            "!document.getElementById('chat').hidden",
        )
        .await;
    alice.fill("chat-input", "hello bob").await;
    alice.click("chat-send").await;
    bob.wait_text("chat-log", "alice: hello bob").await;
    bob.wait_js(
        "the chat to open",
        "!document.getElementById('chat').hidden",
    )
    .await;
    bob.fill("chat-input", "hi alice").await;
    bob.click("chat-send").await;
    alice.wait_text("chat-log", "bob: hi alice").await;

    let shot = alice
        .screenshot(env!("CARGO_TARGET_TMPDIR").as_ref(), "connected-call")
        .await;
    eprintln!("screenshot of the connected call: {}", shot.display());

    // Mute and camera off switch the local tracks off (the call goes on).
    bob.click("mute").await;
    bob.click("camera").await;
    assert_eq!(bob.text("mute").await, "Unmute");
    let enabled = bob
        .eval("window.demo.call.pc.getSenders().map(s => s.track && s.track.enabled)")
        .await;
    assert_eq!(enabled, serde_json::json!([false, false]), "{enabled}");

    alice.click("hangup").await;
    alice.wait_status("Call ended").await;
    bob.wait_status("alice hung up").await;
    for page in [&alice, &bob] {
        page.wait_js("the call to be gone", "window.demo.call === null")
            .await;
        assert!(
            page.text("remote-box").await.is_empty(),
            "remote video still shown"
        );
    }
    assert_no_console_errors(&[&alice, &bob], &[]).await;
    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_sends_the_media_through_our_turn_relay() {
    let Some(lab) = Lab::start().await else {
        return;
    };
    let alice = lab.page().await;
    let bob = lab.page().await;
    alice.sign_in("alice", true).await;
    bob.sign_in("bob", false).await;
    alice.call("bob").await;
    bob.accept("alice").await;

    // Alice allows only relay candidates, so both ends of the pair are relay addresses of
    // our relay (its default policy lets two of its own allocations talk).
    let stats = alice.wait_media().await;
    assert_eq!(stats["local"], "relay", "{stats}");
    assert_eq!(stats["path"], "relay", "{stats}");
    alice.wait_text("path", "via relay (relay/").await;
    let stats = bob.wait_media().await;
    assert_eq!(stats["remote"], "relay", "{stats}");
    assert_eq!(stats["path"], "relay", "{stats}");
    assert!(
        support::relay_allocations(&lab.server) >= 1,
        "no allocation on our relay"
    );

    bob.click("hangup").await;
    alice.wait_status("bob hung up").await;
    assert_no_console_errors(&[&alice, &bob], &[]).await;
    alice.close().await;
    bob.close().await;
}

/// alice opens the demo on one signaling node, bob on another (as behind a load balancer):
/// they call each other, see and hear each other, and hang up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_on_two_signaling_nodes_call_each_other() {
    let Some(lab) = Lab::start_two_nodes().await else {
        return;
    };
    let alice = lab.page().await;
    let bob = lab.page_at(&lab.second_url()).await;
    alice_calls_bob(&alice, &bob).await;
    bob_hangs_up(alice, bob).await;
}

/// A rolling upgrade behind a load balancer (nginx): both browsers' signaling node drains
/// mid-call. The demo acts on the close code (4001): both reconnect at once through the
/// load balancer to the other node and resume there; the call goes on, and the hangup
/// afterwards reaches the other side (the call moved; it did not end with `peer_lost`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_survives_the_drain_of_its_signaling_node() {
    let Some(lab) = Lab::start_two_nodes().await else {
        return;
    };
    let second = lab.second.as_ref().unwrap();
    let nodes = [lab.server.local_addr(), second.local_addr()];
    let Some(lb) = test_support::load_balancer::LoadBalancer::start(&nodes) else {
        return;
    };
    let url = format!("http://{}/", lb.addr());
    let alice = lab.page_at(&url).await;
    let bob = lab.page_at(&url).await;
    alice_calls_bob(&alice, &bob).await;
    assert_eq!(
        second.session_count(),
        0,
        "both signed in on the first node"
    );

    assert!(
        within("the drain", lab.server.drain()).await,
        "every session and call moved"
    );
    assert_eq!(second.session_count(), 2, "both resumed on the second node");
    for page in [&alice, &bob] {
        page.wait_media().await;
    }
    bob_hangs_up(alice, bob).await;
}

/// alice and bob sign in, alice calls, bob accepts: both see and hear each other over a
/// direct path.
async fn alice_calls_bob(alice: &Page, bob: &Page) {
    alice.sign_in("alice", false).await;
    bob.sign_in("bob", false).await;
    alice.call("bob").await;
    alice.wait_status("Ringing bob").await;
    bob.accept("alice").await;
    for page in [alice, bob] {
        let stats = page.wait_media().await;
        assert_eq!(stats["path"], "direct", "{stats}");
    }
    alice.wait_status("Connected with bob").await;
}

/// bob hangs up: both pages say the call ended (alice: as a hangup, not a lost peer), and
/// neither logged an error.
async fn bob_hangs_up(alice: Page, bob: Page) {
    bob.click("hangup").await;
    bob.wait_status("Call ended").await;
    alice.wait_status("bob hung up").await;
    assert_no_console_errors(&[&alice, &bob], &[]).await;
    alice.close().await;
    bob.close().await;
}
