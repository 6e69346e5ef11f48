//! The one error type of the SDK, and the two failures that carry the error of a layer
//! below it: a connection to the signaling server ([`ConnectError`]) and the peer
//! connection ([`WebRtcError`]).
//!
//! An app matches on what it can act on ([`Error`]'s variants, [`ConnectErrorKind`],
//! [`Argument`]); the error underneath (an [`std::io::Error`], the WebSocket library's,
//! webrtc-rs's) is reached through [`std::error::Error::source`], for logs. The SDK's own
//! messages never repeat their source's: print the chain to see it all.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::sync::Arc;

use signaling_protocol::{EndReason, ErrorCode};

use crate::tls::TlsFailure;

/// Everything that can go wrong in the SDK. Nothing the network sends makes it panic:
/// bad or unexpected input ends up here, in a call's end reason, or in a
/// [`ClientEvent::Error`](crate::ClientEvent::Error).
///
/// `Clone`, so that a call's state and events can both carry its failure; the error
/// underneath is shared, not copied.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The signaling server could not be reached, or its socket broke:
    /// [`ConnectError::kind`] says at which step (DNS, TCP, TLS, the WebSocket handshake
    /// with its HTTP status, …).
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The server refused the session (`invalid_user`, `unauthorized`, …).
    #[error("the server refused the session ({code}): {message}")]
    Refused {
        /// Why, as the wire says it.
        code: ErrorCode,
        /// The server's explanation, for people.
        message: String,
    },
    /// The server answered a message with an `error`.
    #[error("the server answered with an error ({code}): {message}")]
    Server {
        /// What was wrong, as the wire says it.
        code: ErrorCode,
        /// The server's explanation, for people.
        message: String,
    },
    /// The call ended before or while doing what was asked: `unavailable`, `busy`,
    /// `declined`, `timeout`, `answered_elsewhere`, `peer_lost`, …
    #[error("the call ended: {0}")]
    CallEnded(EndReason),
    /// The client was closed, or its session is gone for good; or the call or data
    /// channel is.
    #[error("the client is closed")]
    Closed,
    /// An argument was invalid: which one, and why.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// The argument that was refused.
        what: Argument,
        /// What is wrong with it, for people.
        reason: String,
    },
    /// A media track cannot take samples yet: its codec has not been negotiated.
    #[error("the track's codec is not negotiated yet")]
    NotNegotiated,
    /// The peer connection (webrtc-rs) failed; the source is webrtc-rs's error.
    #[error(transparent)]
    WebRtc(WebRtcError),
    /// Something took longer than the SDK waits for it (e.g. the server's `welcome`
    /// within [`ClientOptions::connect_timeout`](crate::ClientOptions::connect_timeout)).
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub(crate) fn invalid(what: Argument, reason: impl fmt::Display) -> Self {
        Error::Invalid {
            what,
            reason: reason.to_string(),
        }
    }
}

/// The argument of [`Error::Invalid`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Argument {
    /// The signaling server's URL (not `ws://host[:port]/path`).
    Url,
    /// The user name to sign in as.
    User,
    /// The user name to call.
    Callee,
    /// The call options as a whole (a call needs a track or a data channel).
    CallOptions,
    /// [`CallOptions::meta`](crate::CallOptions::meta) (too large).
    Meta,
    /// [`ClientOptions::extra_ca_pem`](crate::ClientOptions::extra_ca_pem): no
    /// certificate in it, or one that cannot be a trusted root.
    ExtraCa,
}

impl fmt::Display for Argument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Argument::Url => "signaling server URL",
            Argument::User => "user name",
            Argument::Callee => "callee user name",
            Argument::CallOptions => "call options",
            Argument::Meta => "call meta",
            Argument::ExtraCa => "extra CA certificates",
        })
    }
}

/// The error of a layer below the SDK, shared so that [`Error`] stays `Clone`.
type Cause = Arc<dyn StdError + Send + Sync + 'static>;

/// At which step a connection to the signaling server failed; see [`ConnectError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectErrorKind {
    /// The URL's host name did not resolve (no such name, or no answer from the
    /// resolver): check the URL.
    Dns,
    /// No TCP connection: refused (nothing listens there), unreachable, reset.
    /// [`ConnectError::io_kind`] tells which.
    Tcp,
    /// The TLS handshake of a `wss://` URL failed: [`ConnectError::tls_failure`] says
    /// which check (an untrusted issuer, an expired certificate, a name mismatch, …), and
    /// the source is rustls's error.
    Tls,
    /// The server answered, but did not upgrade to a WebSocket: `status` is its HTTP
    /// status (`401`, `403`, `404`, `503` …), `None` if the answer was not HTTP at all or
    /// the connection broke during the handshake.
    Handshake {
        /// The HTTP status of the answer, when there was one.
        status: Option<u16>,
    },
    /// The WebSocket opened, but what came back is not the signaling protocol (an
    /// unreadable message in place of `welcome`).
    Protocol,
    /// The WebSocket closed or broke: before `welcome`, or later (the reason of a
    /// [`ClientEvent::Reconnecting`](crate::ClientEvent::Reconnecting)).
    Lost,
}

/// Why the signaling connection failed: the step ([`kind`](Self::kind)), a message, and
/// the error underneath as its [`source`](std::error::Error::source) (an
/// [`std::io::Error`] for DNS and TCP, rustls's error for TLS, the WebSocket library's
/// error for the handshake).
#[derive(Debug, Clone)]
pub struct ConnectError {
    kind: ConnectErrorKind,
    message: String,
    source: Option<Cause>,
}

impl ConnectError {
    pub(crate) fn new(
        kind: ConnectErrorKind,
        message: impl Into<String>,
        source: Option<Cause>,
    ) -> Self {
        Self {
            kind,
            message: message.into(),
            source,
        }
    }

    /// At which step it failed.
    pub fn kind(&self) -> ConnectErrorKind {
        self.kind
    }

    /// The kind of the first [`std::io::Error`] in the source chain, if any: e.g.
    /// `ConnectionRefused` when nothing listens at the server's address.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        let mut next = StdError::source(self);
        while let Some(e) = next {
            if let Some(io) = e.downcast_ref::<io::Error>() {
                return Some(io.kind());
            }
            next = e.source();
        }
        None
    }

    /// For [`ConnectErrorKind::Tls`]: which check failed, so that an app can say "the
    /// server's certificate has expired" rather than "TLS failed". `None` for other kinds.
    pub fn tls_failure(&self) -> Option<TlsFailure> {
        if self.kind != ConnectErrorKind::Tls {
            return None;
        }
        let mut next = StdError::source(self);
        while let Some(e) = next {
            if let Some(tls) = e.downcast_ref::<rustls::Error>() {
                return Some(TlsFailure::of(tls));
            }
            next = e.source();
        }
        Some(TlsFailure::Handshake)
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for ConnectError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// A failure of the peer connection. Its [`source`](std::error::Error::source) is
/// webrtc-rs's error; the type itself keeps webrtc-rs out of the SDK's API.
#[derive(Debug, Clone)]
pub struct WebRtcError {
    source: Arc<webrtc::error::Error>,
}

impl fmt::Display for WebRtcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the peer connection failed")
    }
}

impl StdError for WebRtcError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

/// For the SDK's own `?` on webrtc-rs calls; hidden, as it is no part of the API (an
/// upgrade of webrtc-rs changes its type).
#[doc(hidden)]
impl From<webrtc::error::Error> for Error {
    fn from(e: webrtc::error::Error) -> Self {
        Error::WebRtc(WebRtcError {
            source: Arc::new(e),
        })
    }
}

/// The SDK's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_cross_threads_and_tasks() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<Error>();
    }

    #[test]
    fn a_webrtc_error_is_the_source_and_survives_a_clone() {
        let e = Error::from(webrtc::error::Error::ErrTimeout);
        let copy = e.clone();
        let source = StdError::source(&copy).expect("a source");
        assert_eq!(
            source.downcast_ref::<webrtc::error::Error>(),
            Some(&webrtc::error::Error::ErrTimeout)
        );
        assert!(matches!(copy, Error::WebRtc(_)));
        assert_eq!(e.to_string(), "the peer connection failed");
    }

    #[test]
    fn io_kind_finds_the_io_error_below_another_error() {
        #[derive(Debug, thiserror::Error)]
        #[error("wrapper")]
        struct Wrapper(#[source] io::Error);
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let e = ConnectError::new(
            ConnectErrorKind::Handshake { status: None },
            "m",
            Some(Arc::new(Wrapper(refused))),
        );
        assert_eq!(e.io_kind(), Some(io::ErrorKind::ConnectionRefused));
        assert_eq!(
            ConnectError::new(ConnectErrorKind::Lost, "m", None).io_kind(),
            None
        );
    }
}
