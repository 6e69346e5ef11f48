//! Where the SDK reads the clock and randomness; the session core and the backoff take
//! them as input.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use signaling_protocol::CallId;

/// Monotonic now, for webrtc-rs (samples, stats) and the reconnect loop.
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// Waits `d`: the reconnect backoff, and pacing messages under the server's limit.
pub(crate) async fn sleep(d: Duration) {
    tokio::time::sleep(d).await
}

/// A number in `[0, 1)` for backoff jitter.
pub(crate) fn jitter() -> f64 {
    rand::random::<f64>()
}

/// A fresh `call_id`: 32 hex digits, so two callers practically never pick the same.
pub(crate) fn call_id() -> CallId {
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    CallId::new(hex).expect("32 hex digits are a valid call id")
}

/// A random SSRC for a local track.
pub(crate) fn ssrc() -> u32 {
    rand::random()
}
