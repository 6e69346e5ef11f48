//! The one error type of the SDK.

use signaling_protocol::{EndReason, ErrorCode};

/// Everything that can go wrong in the SDK. Nothing the network sends makes it panic:
/// bad or unexpected input ends up here, in a call's end reason, or in a
/// [`ClientEvent::Error`](crate::ClientEvent::Error).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The signaling server could not be reached or the WebSocket failed to open.
    #[error("cannot reach the signaling server: {0}")]
    Connect(String),
    /// The server refused the session (`invalid_user`, `unauthorized`, …).
    #[error("the server refused the session ({code}): {message}")]
    Refused { code: ErrorCode, message: String },
    /// The server answered a call message with an `error`.
    #[error("the server answered with an error ({code}): {message}")]
    Server { code: ErrorCode, message: String },
    /// The call ended before or while doing what was asked: `unavailable`, `busy`,
    /// `declined`, `timeout`, `answered_elsewhere`, `peer_lost`, …
    #[error("the call ended: {0}")]
    CallEnded(EndReason),
    /// The client was closed, or its session is gone for good.
    #[error("the client is closed")]
    Closed,
    /// An argument was invalid (a bad user name, a malformed option, …).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A media track cannot take samples yet: its codec has not been negotiated.
    #[error("the track's codec is not negotiated yet")]
    NotNegotiated,
    /// The peer connection (webrtc-rs) failed.
    #[error("peer connection: {0}")]
    WebRtc(String),
    /// Something took longer than the SDK waits for it.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}

impl From<webrtc::error::Error> for Error {
    fn from(e: webrtc::error::Error) -> Self {
        Error::WebRtc(e.to_string())
    }
}

/// The SDK's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
