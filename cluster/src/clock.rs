//! The one place this crate reads the clock and sleeps (workspace `clippy.toml`). The
//! decisions that depend on time take it as input elsewhere (`Backoff`); the background
//! tasks are the tokio shell that waits.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

/// Monotonic now, for round-trip timing.
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// Waits `d` (heartbeat period, reconnect backoff).
pub(crate) async fn sleep(d: Duration) {
    tokio::time::sleep(d).await;
}

/// Nanoseconds since the Unix epoch, only as a last-resort entropy source.
pub(crate) fn wall_clock_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
