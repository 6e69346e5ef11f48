//! Nothing to use here: this crate holds the web demo's browser tests (`tests/`) and builds
//! the peer SDK's examples as binaries for them. See `tests/support/mod.rs`.
