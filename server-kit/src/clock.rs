//! The one place that reads the clocks and the OS's randomness; the cores take time and
//! seeds as input (`clippy.toml` forbids `Instant::now` and friends everywhere else).
#![allow(clippy::disallowed_methods)]

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Monotonic time, for protocol timers.
pub fn now() -> Instant {
    Instant::now()
}

/// Wall-clock seconds since the Unix epoch, for TURN REST and JWT expiry.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// 32 random bytes from the OS, to seed a core's generator (ports, nonces, tokens) or to
/// make a secret.
pub fn random_seed() -> [u8; 32] {
    rand::random()
}
