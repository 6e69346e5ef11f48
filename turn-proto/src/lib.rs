//! The sans-IO core of the TURN relay (RFC 8489 STUN, RFC 8656 TURN, RFC 6156 IPv6).
//!
//! [`relay::Relay`] owns every allocation, permission and channel, authenticates requests
//! and applies the peer policy and quotas. It takes datagrams and stream frames with the
//! time they arrived and returns what to send, where, and when to wake it next. It never
//! reads a clock or touches a socket; the `turn-relay` crate is the tokio shell around it.

pub mod allocation;
pub mod auth;
pub mod credentials;
pub mod five_tuple;
pub mod framing;
pub mod integrity;
pub mod metrics;
pub mod peer_policy;
pub mod ports;
pub mod relay;
pub mod response;
