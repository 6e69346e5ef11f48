//! Where signaling gets time and randomness; the switchboard and the token bucket take them as input.

/// `random_seed`: 32 bytes from the OS, for the resume-token generator.
pub use server_kit::clock::{now, random_seed, unix_now};

/// A random TURN REST secret, for an embedded relay without a configured one.
pub fn random_secret() -> String {
    let bytes = server_kit::clock::random_seed();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
