//! The NAT lab from Rust: `scripts/nat-lab` builds the namespaces, [`NatLab`] runs the
//! signaling server and peers in them (the SDK's examples, headless Chromium) and reads
//! what their calls did. The tests in `tests/` and the `lab-matrix` program share it;
//! docs/nat-lab.md has the diagram and the matrix.
//!
//! Harness code, like test-support: it reads the real clock, sleeps in its poll loops,
//! and panics on what must not happen; a matrix cell turns its call's panic into its
//! outcome.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

pub mod browser_peer;
pub mod condition;
pub mod lab;
pub mod matrix;
pub mod pki;
pub mod sdk_call;
pub mod shaped_link;
pub mod shaper;
pub mod table;

pub use browser_peer::{BrowserOutcome, BrowserPeer};
pub use lab::{NatLab, PUBLIC, Programs};
pub use pki::Pki;
pub use sdk_call::{CONNECT, CallOutcome, Pair};
pub use shaped_link::{ShapedCounters, ShapedLink};
pub use shaper::{Counters, Impairment};
