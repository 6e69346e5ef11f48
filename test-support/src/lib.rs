//! Helpers shared by the workspace's tests, so that no test crate copies another's or
//! includes its files by path. Each test crate keeps a thin `tests/support/mod.rs` with
//! what is its own and re-exports what it uses from here. The cargo features keep light
//! users light: see `Cargo.toml`.
//!
//! Test code: it panics on what a test must not meet (`unwrap`, `expect`) and reads the
//! clock and sleeps in its poll loops.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

pub mod load_balancer;
pub mod redis_server;
pub mod require;

#[cfg(feature = "browser")]
pub mod browser;
#[cfg(feature = "tokio")]
pub mod coturn;
#[cfg(feature = "tokio")]
pub mod cut_proxy;
#[cfg(feature = "tokio")]
pub mod example;
#[cfg(feature = "pki")]
pub mod pki;
#[cfg(feature = "signaling")]
pub mod signaling_server;
#[cfg(feature = "stun")]
pub mod stun;
#[cfg(feature = "tokio")]
pub mod wait;
