//! The TURN relay of the stack (RFC 8489 STUN, RFC 8656 TURN, RFC 6156 IPv6).
//!
//! A sans-IO core ([`relay::Relay`]: allocations, permissions, channels, authentication,
//! peer policy, quotas) and a thin tokio shell ([`server`]) that owns the UDP, TCP and
//! TLS listeners and the relay sockets. The signaling server embeds the shell; the
//! `turn-relay` binary runs it alone.

pub mod allocation;
pub mod auth;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod five_tuple;
pub mod framing;
pub mod integrity;
pub mod metrics;
pub mod peer_policy;
pub mod ports;
pub mod rate_limit;
pub mod relay;
pub mod response;
pub mod server;
pub mod shutdown;

/// The rustls of `Listeners::tls_config` and `config::load_tls`.
pub use tokio_rustls::rustls;
