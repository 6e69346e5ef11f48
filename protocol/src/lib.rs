//! The signaling wire contract, version 1 (`shared/PROTOCOL.md`), as Rust types.
//!
//! The server, the peer SDK, the benchmarks and the tests all use these types, so a
//! field renamed here is renamed everywhere at once. Extensions to the contract are
//! documented in `docs/protocol.md`.
//!
//! ```
//! use signaling_protocol::{ClientMessage, parse_client_message};
//! let msg = parse_client_message(r#"{"type":"ping"}"#).unwrap();
//! assert_eq!(msg, ClientMessage::Ping(Default::default()));
//! ```

#![warn(missing_docs)]

mod codes;
mod message;
mod names;
mod parse;

pub use codes::{EndReason, ErrorCode, RejectReason};
pub use message::{
    Accept, Accepted, CallRef, Candidate, ClientMessage, Ended, ErrorMessage, Hello, IceCandidate,
    IceServer, IncomingInvite, Invite, Ping, Reject, Renegotiate, Ringing, SdpType, ServerMessage,
    SessionDescription, Welcome,
};
pub use names::{CallId, NameError, UserName};
pub use parse::{ParseError, parse_client_message, parse_server_message};

/// The protocol version this crate speaks (`hello.version`, `welcome.version`).
pub const PROTOCOL_VERSION: u32 = 1;
/// The largest `meta` an `invite` may carry, serialized, in bytes.
pub const MAX_META_BYTES: usize = 4 * 1024;
