//! The TURN relay of the stack (RFC 8489 STUN, RFC 8656 TURN, RFC 6156 IPv6).
//!
//! The sans-IO core lives in the `turn-proto` crate ([`relay::Relay`]: allocations,
//! permissions, channels, authentication, peer policy, quotas); this crate is the thin
//! tokio shell ([`server`]) that owns the UDP, TCP and TLS listeners and the relay sockets.
//! The signaling server embeds the shell; the `turn-relay` binary runs it alone.

pub mod config;
pub mod server;

pub use turn_proto::{
    allocation, auth, credentials, five_tuple, framing, integrity, metrics, peer_policy, ports,
    relay, response,
};

/// The rustls of `Listeners::tls_config` and `config::load_tls`.
pub use tokio_rustls::rustls;
