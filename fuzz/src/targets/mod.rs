//! The fuzz targets. Each takes any bytes, drives one part of the stack with them, and
//! panics only when that part panics or breaks one of the invariants the target checks.

mod relay;
mod signaling_message;
mod stun;
mod switchboard;

/// A fuzz target.
pub struct Target {
    /// Its name on the command line and its corpus directory's name.
    pub name: &'static str,
    /// What it exercises and checks.
    pub about: &'static str,
    /// Runs it on one input.
    pub run: fn(&[u8]),
    /// Hand-written inputs to start from, beside the committed corpus.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Longest input worth trying.
    pub max_len: usize,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    stun::TARGET,
    relay::TARGET,
    signaling_message::TARGET,
    switchboard::TARGET,
];

/// The target called `name`.
pub fn by_name(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
