//! The sans-IO core of the TURN relay (RFC 8489 STUN, RFC 8656 TURN, RFC 6156 IPv6).
//!
//! [`Relay`] owns every allocation, permission and channel, authenticates requests and
//! applies the peer policy and quotas. It takes datagrams and stream frames with the time
//! they arrived and returns what to send, where, and when to wake it next. It never reads
//! a clock or touches a socket; the `turn-relay` crate is the tokio shell around it.
//!
//! The public API is what a shell needs: [`Relay`] and its inputs and outputs
//! ([`RelaySettings`], [`Users`], [`PeerPolicy`], [`Now`], [`FiveTuple`], [`FromClient`],
//! [`FromPeer`]), the [`Metrics`] it keeps, [`framing`] to cut a TCP/TLS stream into
//! frames, and [`credentials`], the TURN REST scheme that the signaling server mints with.
//!
//! ```
//! use turn_proto::{FiveTuple, FromClient, Metrics, Now, Relay, RelaySettings, Transport, Users};
//!
//! let users = Users { rest_secret: Some("secret".into()), ..Users::default() };
//! // The shell reads the clock and passes the time in.
//! let now = server_kit::clock::now();
//! // The shell's handle for an allocation's relay socket is any `Clone` type.
//! let mut relay: Relay<u32> =
//!     Relay::new(RelaySettings::new("example.org", users), [7; 32], Metrics::new(), now);
//! let client = FiveTuple {
//!     client: "192.0.2.1:40000".parse().unwrap(),
//!     server: "192.0.2.9:3478".parse().unwrap(),
//!     transport: Transport::Udp,
//! };
//! // A STUN Binding request: 20 bytes of header, no attributes.
//! let mut binding = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
//! binding.extend_from_slice(&[1; 12]);
//! let FromClient::Reply(response) =
//!     relay.handle_client(client, &binding, Now { mono: now, unix: 1_700_000_000 })
//! else {
//!     panic!("a Binding request is answered");
//! };
//! assert_eq!(&response[..2], &[0x01, 0x01], "Binding success response");
//! assert!(relay.poll_timeout() > now, "the next sweep is in the future");
//! ```
#![warn(missing_docs)]

mod allocation;
mod answer_budget;
mod auth;
pub mod credentials;
mod five_tuple;
pub mod framing;
mod integrity;
mod metrics;
mod peer_policy;
mod ports;
mod relay;
mod response;

pub use allocation::AllocId;
pub use auth::{Quota, Users};
pub use five_tuple::{FiveTuple, Transport};
pub use metrics::{Metrics, Way};
pub use peer_policy::{PeerPolicy, Refusal};
pub use relay::{BindFailure, FromClient, FromPeer, Now, Relay, RelaySettings};
