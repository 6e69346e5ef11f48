//! Closed vocabularies of the contract: error codes, `ended` reasons, reject reasons.

use serde::{Deserialize, Serialize};

/// `error.code`: what was wrong with a message the client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, unknown `type`, a missing or wrong field, a binary frame.
    BadMessage,
    /// Anything but `hello` before `hello`.
    NotReady,
    /// `hello.user` is not 1 to 64 chars of `A-Z a-z 0-9 . _ @ -`. Closes the socket.
    InvalidUser,
    /// Missing or bad token. Closes the socket (close code 1008).
    Unauthorized,
    /// No such call, or the sender is not part of it.
    UnknownCall,
    /// The caller already has a call with this `call_id`.
    CallExists,
    /// The call is not in a state where this message makes sense.
    BadState,
    /// Too many messages, or too many calls at once.
    RateLimited,
    /// Message over the size limit. Closes the socket (close code 1009).
    TooLarge,
    /// The server failed; the message may be retried.
    Internal,
}

impl ErrorCode {
    /// The wire spelling, e.g. `"unknown_call"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadMessage => "bad_message",
            Self::NotReady => "not_ready",
            Self::InvalidUser => "invalid_user",
            Self::Unauthorized => "unauthorized",
            Self::UnknownCall => "unknown_call",
            Self::CallExists => "call_exists",
            Self::BadState => "bad_state",
            Self::RateLimited => "rate_limited",
            Self::TooLarge => "too_large",
            Self::Internal => "internal",
        }
    }

    /// Every code, for metrics and exhaustive tests.
    pub const ALL: [ErrorCode; 10] = [
        Self::BadMessage,
        Self::NotReady,
        Self::InvalidUser,
        Self::Unauthorized,
        Self::UnknownCall,
        Self::CallExists,
        Self::BadState,
        Self::RateLimited,
        Self::TooLarge,
        Self::Internal,
    ];
}

/// `ended.reason`: why a call is over for the session that receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The other party hung up, or the caller cancelled while ringing.
    Hangup,
    /// The callee rejected with `declined` (or hung up while ringing).
    Declined,
    /// The callee rejected with `busy`, or every callee session was already in as many calls
    /// as it may have.
    Busy,
    /// The callee has no session: nobody to ring.
    Unavailable,
    /// Nobody accepted within the ring timeout (default 45 s).
    Timeout,
    /// To the callee's other sessions: one of its sessions accepted.
    AnsweredElsewhere,
    /// To the callee's other sessions: one of its sessions rejected.
    RejectedElsewhere,
    /// The other party's session ended without a hangup: its socket dropped and it did not
    /// resume in time, it signed off (close code 1000), or its send queue overflowed.
    PeerLost,
    /// Both users invited each other at once: the call whose `call_id` sorts lower is kept
    /// and this one ended.
    Glare,
}

impl EndReason {
    /// The wire spelling, e.g. `"answered_elsewhere"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hangup => "hangup",
            Self::Declined => "declined",
            Self::Busy => "busy",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::AnsweredElsewhere => "answered_elsewhere",
            Self::RejectedElsewhere => "rejected_elsewhere",
            Self::PeerLost => "peer_lost",
            Self::Glare => "glare",
        }
    }
}

/// `reject.reason`: why the callee refuses; the caller sees it as `ended.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// `declined`: the user said no. The default when `reason` is absent.
    #[default]
    Declined,
    /// `busy`: the user is in another call.
    Busy,
}

impl From<RejectReason> for EndReason {
    fn from(r: RejectReason) -> Self {
        match r {
            RejectReason::Declined => EndReason::Declined,
            RejectReason::Busy => EndReason::Busy,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
