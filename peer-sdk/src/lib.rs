//! The Rust SDK for native apps: sign in to the signaling server, call and answer, send
//! media and data peer to peer, with TURN as the fallback.
//!
//! - [`Client::connect`] opens the session; the TURN credentials of the server's
//!   `welcome` are used for every call. A dropped WebSocket is reconnected with backoff
//!   and the session resumed, so calls in progress go on (nothing the server sent is
//!   lost: the SDK acknowledges what it received, see `docs/protocol.md`).
//! - [`Client::call`] rings someone and resolves when they answer, or fails with the
//!   reason ([`Error::CallEnded`] with `unavailable`, `busy`, `declined`, `timeout`).
//! - [`Client::next_event`] yields [`ClientEvent::Incoming`] calls to
//!   [`accept`](IncomingCall::accept) or [`reject`](IncomingCall::reject).
//! - A [`Call`] carries media tracks ([`LocalTrack`] fed with Opus or VP8 frames,
//!   [`RemoteTrack`] read as RTP) and [`DataChannel`]s (reliable or not, with
//!   back-pressure); [`Call::stats`] tells whether the path is direct or relayed.
//!
//! webrtc-rs stays behind these types, so it can be upgraded without breaking apps.
//!
//! ```no_run
//! use peer_sdk::{CallOptions, ChannelSpec, Client, ClientEvent, AcceptOptions, MediaKind};
//!
//! # async fn demo() -> Result<(), peer_sdk::Error> {
//! // Bob waits for calls and answers the first.
//! let bob = Client::connect("ws://127.0.0.1:8080/ws", "bob", None).await?;
//! tokio::spawn(async move {
//!     while let Some(event) = bob.next_event().await {
//!         if let ClientEvent::Incoming(call) = event {
//!             println!("{} calls", call.from());
//!             let _call = call.accept(AcceptOptions::default()).await;
//!         }
//!     }
//! });
//!
//! // Alice calls Bob with audio and a chat channel.
//! let alice = Client::connect("ws://127.0.0.1:8080/ws", "alice", None).await?;
//! let call = alice
//!     .call("bob", CallOptions {
//!         tracks: vec![MediaKind::Audio],
//!         channels: vec![ChannelSpec::reliable("chat")],
//!         ..Default::default()
//!     })
//!     .await?;
//! let chat = call.data_channel("chat").expect("opened with the call");
//! chat.opened().await?;
//! chat.send_text("hello").await?;
//! println!("path: {:?}", call.stats().await.pair);
//! call.hangup().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! Every fallible call returns the one [`Error`]. Match on what the app can act on: a call
//! that ended ([`Error::CallEnded`] with its reason), a refused session
//! ([`Error::Refused`] with the wire's [`ErrorCode`]), an invalid argument
//! ([`Error::Invalid`] names it), a failed connection ([`Error::Connect`], whose
//! [`ConnectErrorKind`] says at which step: DNS, TCP, TLS, the WebSocket handshake with its
//! HTTP status, the protocol). The error underneath (an [`std::io::Error`], rustls's, the
//! WebSocket library's, webrtc-rs's) is the [`source`](std::error::Error::source); the SDK's own
//! message does not repeat it, so print the whole chain:
//!
//! ```
//! use std::error::Error as _;
//! use peer_sdk::{Client, ConnectErrorKind, Error};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Nothing listens on this port any more.
//! let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
//! let url = format!("ws://127.0.0.1:{port}/ws");
//! let error = Client::connect(&url, "alice", None).await.unwrap_err();
//! match &error {
//!     Error::Connect(e) => match e.kind() {
//!         ConnectErrorKind::Dns => eprintln!("check the host name"),
//!         ConnectErrorKind::Tcp if e.io_kind() == Some(std::io::ErrorKind::ConnectionRefused) => {
//!             eprintln!("nothing listens there: is the server running?")
//!         }
//!         ConnectErrorKind::Handshake { status: Some(503) } => eprintln!("the server is full"),
//!         _ => eprintln!("cannot reach the server"),
//!     },
//!     Error::Refused { code, .. } => eprintln!("the server refused the session: {code}"),
//!     Error::Invalid { what, .. } => eprintln!("fix the {what}"),
//!     _ => {}
//! }
//! // The chain, for the log: the SDK's message, then what the OS said.
//! let mut line = error.to_string();
//! let mut next = error.source();
//! while let Some(e) = next {
//!     line += &format!(": {e}");
//!     next = e.source();
//! }
//! assert!(line.contains("TCP connection"), "{line}");
//! # }
//! ```
//!
//! A `wss://` URL connects over TLS: the certificate must chain to the built-in Mozilla
//! roots or to a CA in [`ClientOptions::extra_ca_pem`] (a self-hosted deployment's own
//! CA), and a check that fails is [`ConnectErrorKind::Tls`] with
//! [`ConnectError::tls_failure`] saying which ([`TlsFailure`]):
//!
//! ```no_run
//! use peer_sdk::{Client, ClientOptions, Error, TlsFailure};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let options = ClientOptions {
//!     extra_ca_pem: Some(std::fs::read("ca.pem")?),
//!     ..ClientOptions::default()
//! };
//! match Client::connect_with("wss://signal.lan:8443/ws", "alice", None, options).await {
//!     Ok(client) => client.close().await,
//!     Err(Error::Connect(e)) if e.tls_failure() == Some(TlsFailure::Expired) => {
//!         eprintln!("the server's certificate has expired")
//!     }
//!     Err(e) => return Err(e.into()),
//! }
//! # Ok(()) }
//! ```
//!
//! The wire types are re-exported as [`protocol`]:
//!
//! ```
//! use peer_sdk::protocol::{ClientMessage, Hello, PROTOCOL_VERSION};
//! let hello = ClientMessage::Hello(Hello {
//!     version: PROTOCOL_VERSION,
//!     user: "alice".into(),
//!     token: None,
//!     resume: None,
//!     received: Some(0),
//! });
//! let text = serde_json::to_string(&hello).unwrap();
//! assert_eq!(text, r#"{"type":"hello","version":1,"user":"alice","received":0}"#);
//! ```

#![warn(missing_docs, unreachable_pub)]

mod backoff;
mod call;
mod call_driver;
mod client;
mod clock;
mod data;
mod error;
mod incoming;
mod media;
mod options;
mod peer;
mod session;
mod signaling;
mod stats;
mod tls;
mod websocket;

pub use call::{Call, CallEvent, CallState, ConnectionState, Role};
pub use client::{Client, ClientEvent};
pub use data::{ChannelState, DataChannel, DataMessage};
pub use error::{Argument, ConnectError, ConnectErrorKind, Error, Result, WebRtcError};
pub use incoming::IncomingCall;
pub use media::{LocalTrack, RemoteTrack, RtpPacket};
pub use options::{
    AcceptOptions, CallOptions, ChannelSpec, ClientOptions, Delivery, IcePolicy, MediaKind,
    PeerOptions,
};
pub use signaling_protocol::{EndReason, ErrorCode, IceServer, RejectReason};
pub use stats::{CallStats, CandidateType, RelayTransport};
pub use tls::TlsFailure;

/// Locks a std mutex, taking the data over if another thread panicked while holding it
/// (the maps it guards stay consistent: every update is a single insert or remove).
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The signaling wire types (`shared/PROTOCOL.md`).
pub use signaling_protocol as protocol;
