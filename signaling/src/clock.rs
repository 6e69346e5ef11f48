//! The one place that reads the clocks; the switchboard and the token bucket take time as input.
#![allow(clippy::disallowed_methods)]

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Monotonic time, for protocol timers.
pub fn now() -> Instant {
    Instant::now()
}

/// Wall-clock seconds since the Unix epoch, for JWT and TURN credential expiry.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A seed for the resume-token generator.
pub fn random_seed() -> u64 {
    rand::random()
}

/// A random TURN REST secret, for an embedded relay without a configured one.
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
