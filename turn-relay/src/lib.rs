//! The TURN relay of the stack (RFC 8489 STUN, RFC 8656 TURN, RFC 6156 IPv6).
//!
//! The sans-IO core lives in the `turn-proto` crate (allocations, permissions, channels,
//! authentication, peer policy, quotas); this crate is the thin tokio shell around it,
//! [`TurnServer`], which owns the UDP, TCP and TLS listeners and the relay sockets. The
//! signaling server embeds it; the `turn-relay` binary runs it alone ([`config`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), turn_relay::StartError> {
//! use turn_relay::{Listeners, RelaySettings, TurnServer, Users};
//!
//! let users = Users { rest_secret: Some("shared secret".into()), ..Users::default() };
//! let listeners = Listeners {
//!     udp: vec!["0.0.0.0:3478".parse().unwrap()],
//!     tcp: vec!["0.0.0.0:3478".parse().unwrap()],
//!     ..Listeners::default()
//! };
//! let server = TurnServer::start(RelaySettings::new("example.org", users), listeners).await?;
//! // Clients get credentials minted with the same secret.
//! let credential = turn_relay::credentials::mint(b"shared secret", "alice", 1_700_000_000, 3600);
//! # let _ = credential;
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod config;
mod server;
mod udp_worker;

pub use server::{Listeners, StartError, StreamLimits, TurnServer};
/// TURN REST credentials: `mint` for `welcome.ice_servers`, `password_for` to check.
pub use turn_proto::credentials;
pub use turn_proto::{Metrics, PeerPolicy, RelaySettings, Users, Way};

/// The rustls of `Listeners::tls_config` and `config::load_tls`.
pub use tokio_rustls::rustls;
