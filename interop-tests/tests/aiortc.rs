//! The Rust SDK against aiortc, a WebRTC implementation independent of webrtc-rs and
//! Chromium (Python; ICE by aioice, VP8 and Opus by libvpx and libopus through PyAV), both
//! ways, through the real signaling server: `aiortc_peer.py` calls the SDK's `answer`
//! example, and the SDK's `call` example calls it. In each call chat crosses the data
//! channel both ways, aiortc decodes the SDK's VP8 video and Opus audio, and the SDK
//! receives aiortc's RTP. aiortc does not trickle: its candidates come in the SDP only.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use serde_json::Value;
use signaling::Server;
use test_support::example::{Example, receives_rtp};
use test_support::require::require_python_modules;
use test_support::signaling_server::server_with_turn;

/// The aiortc peer.
const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/aiortc_peer.py");

/// Where `setup-venv` installs the peer's packages.
const VENV_PYTHON: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/interop-venv/bin/python"
);

/// Video frames and audio samples (48 kHz) aiortc must have decoded: a second or more.
const FRAMES: u64 = 30;
const SAMPLES: u64 = 48_000;

/// The Python with aiortc: `$INTEROP_PYTHON`, else the venv `setup-venv` makes; `None`
/// (a loud skip, a failure under CI) if it cannot import aiortc.
fn python() -> Option<String> {
    let python = std::env::var("INTEROP_PYTHON").unwrap_or_else(|_| VENV_PYTHON.to_owned());
    let install = "run `bash interop-tests/setup-venv` or set INTEROP_PYTHON";
    require_python_modules(&python, &["aiortc", "av", "websockets"], install).then_some(python)
}

/// One test at a time: each aiortc peer encodes and decodes video in Python, and the CI
/// machine has two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The aiortc peer as a child process (killed when dropped), signed in as `user`.
fn aiortc(python: &str, server: &Server, user: &str, extra: &[&str]) -> Example {
    let ws = ws_url(server);
    let mut args = vec![
        "-u",
        PEER,
        "--server",
        &ws,
        "--user",
        user,
        "--deadline",
        "90",
    ];
    args.extend_from_slice(extra);
    Example::start(python, &args)
}

fn ws_url(server: &Server) -> String {
    format!("ws://{}/ws", server.local_addr())
}

/// The JSON of a status line of the aiortc peer ("stats {...}").
fn stats(line: &str) -> Option<Value> {
    serde_json::from_str(line.strip_prefix("stats ")?).ok()
}

/// Whether aiortc's status says it decoded VP8 video and Opus audio, enough of both.
fn decoded_enough(line: &str) -> bool {
    stats(line).is_some_and(|s| {
        s["video"]["decoders"] == serde_json::json!(["video/VP8"])
            && s["video"]["frames"].as_u64() >= Some(FRAMES)
            && s["audio"]["decoders"] == serde_json::json!(["audio/opus"])
            && s["audio"]["samples"].as_u64() >= Some(SAMPLES)
    })
}

/// The path the SDK example reports ("path host/host, ..."), once it has one.
fn sdk_path(line: &str) -> Option<&str> {
    let path = line.strip_prefix("path ")?.split(',').next()?;
    (path != "not connected yet").then_some(path)
}

/// Chat both ways between the aiortc peer `py` (user `py_user`) and the SDK example `sdk`
/// (user `sdk_user`), once aiortc says the channel is open.
async fn chat(py: &mut Example, py_user: &str, sdk: &mut Example, sdk_user: &str) {
    py.wait_line("aiortc's chat to open", |l| l == "chat open")
        .await;
    py.say("hello from aiortc").await;
    let expected = format!("{py_user}: hello from aiortc");
    sdk.wait_line(&expected, |l| l == expected).await;
    sdk.say("hello from rust").await;
    let expected = format!("{sdk_user}: hello from rust");
    py.wait_line(&expected, |l| l == expected).await;
}

/// The caller hangs up (Ctrl-C), the callee hears `hangup`, and both programs exit 0;
/// `*_what` names each in a failure.
async fn hang_up(caller: Example, caller_what: &str, callee: Example, callee_what: &str) {
    caller.interrupt();
    callee
        .wait_line("the end of the call", |l| l == "call ended: hangup")
        .await;
    assert!(caller.exit().await, "{caller_what} failed");
    assert!(callee.exit().await, "{callee_what} failed");
}

/// Media both ways: aiortc decodes enough VP8 and Opus, the SDK receives aiortc's audio and
/// video RTP. Returns the path as each side reports it, "local/remote" candidate types:
/// aiortc's (the pair it sends on) and the SDK's.
async fn media(py: &Example, sdk: &Example) -> (String, String) {
    let line = py
        .wait_line("aiortc to decode VP8 and Opus", decoded_enough)
        .await;
    let py_path = stats(&line).unwrap()["path"].as_str().unwrap().to_owned();
    let py_path = py_path.split(' ').next().unwrap().to_owned();
    sdk.wait_line("video from aiortc", |l| {
        l.starts_with("receiving video/VP8")
    })
    .await;
    sdk.wait_line("audio from aiortc", |l| {
        l.starts_with("receiving audio/opus")
    })
    .await;
    sdk.wait_line("RTP packets counted", receives_rtp).await;
    let line = sdk
        .wait_line("the SDK's path", |l| sdk_path(l).is_some())
        .await;
    let sdk_path = sdk_path(&line).unwrap().to_owned();
    eprintln!("path: aiortc says {py_path}, the SDK says {sdk_path}");
    (py_path, sdk_path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_calls_the_sdk_answer_example() {
    let Some(python) = python() else { return };
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = server_with_turn().await;
    let ws = ws_url(&server);
    let mut bob = Example::start(
        env!("CARGO_BIN_EXE_interop-answer"),
        &["--server", &ws, "--user", "bob", "--once"],
    );
    bob.wait_line("that it signed in", |l| l.contains("waiting for calls"))
        .await;

    let mut alice = aiortc(&python, &server, "alice", &["--to", "bob"]);
    bob.wait_line("the incoming call", |l| l.starts_with("alice calls"))
        .await;
    alice.wait_line("the answer", |l| l == "bob answered").await;
    bob.wait_line("aiortc's data channel", |l| {
        l == "data channel 'chat' opened by alice"
    })
    .await;

    media(&alice, &bob).await;
    chat(&mut alice, "alice", &mut bob, "bob").await;

    hang_up(alice, "the aiortc peer", bob, "the answer example").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_call_example_calls_aiortc() {
    let Some(python) = python() else { return };
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = server_with_turn().await;
    let mut bob = aiortc(&python, &server, "bob", &[]);
    bob.wait_line("that it signed in", |l| l.contains("waiting for calls"))
        .await;

    let ws = ws_url(&server);
    let mut alice = Example::start(
        env!("CARGO_BIN_EXE_interop-call"),
        &["--server", &ws, "--user", "alice", "--to", "bob"],
    );
    alice
        .wait_line("the answer", |l| l.starts_with("bob answered"))
        .await;
    bob.wait_line("the SDK's data channel", |l| {
        l == "data channel 'chat' opened by alice"
    })
    .await;

    media(&bob, &alice).await;
    chat(&mut bob, "bob", &mut alice, "alice").await;

    hang_up(alice, "the call example", bob, "the aiortc peer").await;
}

/// aiortc with relay candidates only calls the SDK: aioice's TURN client allocates on the
/// server's embedded relay (UDP, loopback peers allowed) and sends everything through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_through_the_relay_calls_the_sdk_answer_example() {
    let Some(python) = python() else { return };
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = server_with_turn().await;
    let ws = ws_url(&server);
    let mut bob = Example::start(
        env!("CARGO_BIN_EXE_interop-answer"),
        &["--server", &ws, "--user", "bob", "--once"],
    );
    bob.wait_line("that it signed in", |l| l.contains("waiting for calls"))
        .await;

    let extra = ["--to", "bob", "--relay-only"];
    let mut alice = aiortc(&python, &server, "alice", &extra);
    alice.wait_line("the answer", |l| l == "bob answered").await;
    let (py_path, sdk_path) = media(&alice, &bob).await;
    assert!(py_path.starts_with("relay/"), "aiortc sends on {py_path}");
    // aiortc's relayed candidate came inside its offer, not trickled: the SDK's stats must
    // still name it (vendor/rtc-sdp-candidate-stats.patch), not call it prflx.
    assert!(sdk_path.ends_with("/relay"), "the SDK reports {sdk_path}");
    chat(&mut alice, "alice", &mut bob, "bob").await;

    hang_up(alice, "the aiortc peer", bob, "the answer example").await;
}
