//! The TURN relay of the stack.
//!
//! This crate starts with what the signaling server and the relay must agree on: the
//! TURN REST credential scheme ([`credentials`]). The relay itself (RFC 8656 over UDP,
//! TCP and TLS) is tracked in its own issue.

pub mod credentials;
