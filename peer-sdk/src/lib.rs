//! The Rust SDK for native apps.
//!
//! For now it exposes the wire types of the signaling contract, the same ones the
//! server uses, so that an app can already speak the protocol with any WebSocket
//! client. The call API (connect, call, answer, media, data channels) is tracked in
//! its own issue.
//!
//! ```
//! use peer_sdk::protocol::{ClientMessage, Hello, PROTOCOL_VERSION};
//! let hello = ClientMessage::Hello(Hello {
//!     version: PROTOCOL_VERSION,
//!     user: "alice".into(),
//!     token: None,
//!     resume: None,
//!     received: None,
//! });
//! let text = serde_json::to_string(&hello).unwrap();
//! assert_eq!(text, r#"{"type":"hello","version":1,"user":"alice"}"#);
//! ```

/// The signaling wire types (`shared/PROTOCOL.md`).
pub use signaling_protocol as protocol;
