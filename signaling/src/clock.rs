//! Where signaling gets time and randomness; the switchboard and the token bucket take them as input.
#![allow(clippy::disallowed_methods)]

/// Monotonic time for protocol timers, wall-clock seconds for JWT and TURN credential
/// expiry: the same clocks as the relay's.
pub use turn_relay::clock::{now, unix_now};

/// A seed for the resume-token generator.
pub fn random_seed() -> u64 {
    rand::random()
}

/// A random TURN REST secret, for an embedded relay without a configured one.
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
