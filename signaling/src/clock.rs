//! Where signaling gets time and randomness; the switchboard and the token bucket take them as input.

pub use server_kit::clock::{now, unix_now};

/// A seed for the resume-token generator.
pub fn random_seed() -> u64 {
    let seed = server_kit::clock::random_seed();
    u64::from_le_bytes([
        seed[0], seed[1], seed[2], seed[3], seed[4], seed[5], seed[6], seed[7],
    ])
}

/// A random TURN REST secret, for an embedded relay without a configured one.
pub fn random_secret() -> String {
    let bytes = server_kit::clock::random_seed();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
