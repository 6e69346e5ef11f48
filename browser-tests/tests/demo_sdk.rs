//! The browser and the Rust SDK in one call, both ways: the SDK's `answer` and `call`
//! example programs (built from peer-sdk/examples as `sdk-answer` and `sdk-call`) against
//! the demo page in headless Chromium. The page decodes the SDK's VP8 video and Opus audio,
//! the example counts the browser's RTP packets, and chat crosses the data channel both ways.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use support::example::{Example, receives_rtp};
use support::{Lab, Page, assert_no_console_errors};

/// Chat both ways between `page` and `example` (whose peer is `page_user`).
async fn chat(page: &Page, page_user: &str, example: &mut Example, example_user: &str) {
    page.wait_js(
        "the chat to open",
        "!document.getElementById('chat').hidden",
    )
    .await;
    page.fill("chat-input", "hello from the browser").await;
    page.click("chat-send").await;
    let expected = format!("{page_user}: hello from the browser");
    example.wait_line(&expected, |l| l == expected).await;
    example.say("hello from rust").await;
    page.wait_text("chat-log", &format!("{example_user}: hello from rust"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_answer_example_takes_a_call_from_the_browser() {
    let Some(lab) = Lab::start().await else {
        return;
    };
    let ws = lab.ws_url();
    let mut bob = Example::start(
        env!("CARGO_BIN_EXE_sdk-answer"),
        &["--server", &ws, "--user", "bob", "--once"],
    );
    bob.wait_line("that it signed in", |l| l.contains("waiting for calls"))
        .await;

    let alice = lab.page().await;
    alice.sign_in("alice", false).await;
    alice.call("bob").await;
    bob.wait_line("the incoming call", |l| l.starts_with("alice calls"))
        .await;

    // The page decodes the SDK's VP8 test pattern and receives its Opus tone.
    let stats = alice.wait_media().await;
    assert_eq!(stats["path"], "direct", "{stats}");
    // The SDK receives the browser's RTP, audio and video.
    bob.wait_line("video from the browser", |l| {
        l.starts_with("receiving video/")
    })
    .await;
    bob.wait_line("audio from the browser", |l| {
        l.starts_with("receiving audio/")
    })
    .await;
    bob.wait_line("RTP packets counted", receives_rtp).await;
    chat(&alice, "alice", &mut bob, "bob").await;

    alice.click("hangup").await;
    bob.wait_line("the end of the call", |l| l == "call ended: hangup")
        .await;
    assert!(bob.exit().await, "the answer example failed");
    assert_no_console_errors(&[&alice], &[]).await;
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_call_example_calls_the_browser() {
    let Some(lab) = Lab::start().await else {
        return;
    };
    let bob = lab.page().await;
    bob.sign_in("bob", false).await;
    let ws = lab.ws_url();
    let mut alice = Example::start(
        env!("CARGO_BIN_EXE_sdk-call"),
        &["--server", &ws, "--user", "alice", "--to", "bob"],
    );
    bob.accept("alice").await;
    alice
        .wait_line("the answer", |l| l.starts_with("bob answered"))
        .await;

    let stats = bob.wait_media().await;
    assert_eq!(stats["path"], "direct", "{stats}");
    alice.wait_line("RTP from the browser", receives_rtp).await;
    chat(&bob, "bob", &mut alice, "alice").await;

    bob.click("hangup").await;
    alice
        .wait_line("the end of the call", |l| l == "call ended: hangup")
        .await;
    assert!(alice.exit().await, "the call example failed");
    assert_no_console_errors(&[&bob], &[]).await;
    bob.close().await;
}
