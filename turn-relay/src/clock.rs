//! The one place in this crate that reads the clocks and the OS's randomness; the relay
//! core takes time and seeds as input.
#![allow(clippy::disallowed_methods)]

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Monotonic time, for protocol timers.
pub fn now() -> Instant {
    Instant::now()
}

/// Wall-clock seconds since the Unix epoch, for TURN REST expiry.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A seed for port choice and the nonce key.
pub fn random_seed() -> [u8; 32] {
    rand::random()
}
