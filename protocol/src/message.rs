//! Every message of the contract, client to server and server to client.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::{CallId, EndReason, ErrorCode, RejectReason, UserName};

/// A message a client sends. `{"type": ...}` picks the variant; unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Hello(Hello),
    Invite(Invite),
    Accept(Accept),
    Reject(Reject),
    Candidate(Candidate),
    Renegotiate(Renegotiate),
    Hangup(CallRef),
    Ping(Ping),
}

impl ClientMessage {
    /// The `type` tag, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Hello(_) => "hello",
            Self::Invite(_) => "invite",
            Self::Accept(_) => "accept",
            Self::Reject(_) => "reject",
            Self::Candidate(_) => "candidate",
            Self::Renegotiate(_) => "renegotiate",
            Self::Hangup(_) => "hangup",
            Self::Ping(_) => "ping",
        }
    }

    /// The call this message is about, if any.
    pub fn call_id(&self) -> Option<&CallId> {
        match self {
            Self::Invite(m) => Some(&m.call_id),
            Self::Accept(m) => Some(&m.call_id),
            Self::Reject(m) => Some(&m.call_id),
            Self::Candidate(m) => Some(&m.call_id),
            Self::Renegotiate(m) => Some(&m.call_id),
            Self::Hangup(m) => Some(&m.call_id),
            Self::Hello(_) | Self::Ping(_) => None,
        }
    }
}

/// The first message of every connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    /// Kept as a plain string so that a bad name maps to `invalid_user`, not `bad_message`.
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
    /// Extension (docs/protocol.md): how many messages after `welcome` this client has
    /// received in the session being resumed (`0` on a new one). Sending it opts the
    /// session in to replay of messages lost with a dead socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<u64>,
}

/// Heartbeat. The extension field `received` acknowledges messages (see [`Hello::received`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<u64>,
}

/// Call `to`; rings all of its sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invite {
    pub call_id: CallId,
    pub to: UserName,
    pub offer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
}

/// The callee answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accept {
    pub call_id: CallId,
    pub answer: String,
}

/// The callee refuses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reject {
    pub call_id: CallId,
    #[serde(default)]
    pub reason: RejectReason,
}

/// A trickled ICE candidate; `candidate: null` is end of candidates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub call_id: CallId,
    /// Required; `null` means end of candidates.
    #[serde(deserialize_with = "required_nullable")]
    pub candidate: Option<IceCandidate>,
}

fn required_nullable<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

/// RTCIceCandidateInit, spelled as the browser's `RTCIceCandidate.toJSON()` spells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    pub candidate: String,
    #[serde(default)]
    pub sdp_mid: Option<String>,
    #[serde(default, rename = "sdpMLineIndex")]
    pub sdp_m_line_index: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// Mid-call offer/answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Renegotiate {
    pub call_id: CallId,
    pub description: SessionDescription,
}

/// RTCSessionDescriptionInit, limited to what renegotiation uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionDescription {
    #[serde(rename = "type")]
    pub kind: SdpType,
    pub sdp: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SdpType {
    Offer,
    Answer,
}

/// A message that names only its call (`hangup`, `ringing`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRef {
    pub call_id: CallId,
}

/// A message the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Welcome(Welcome),
    Invite(IncomingInvite),
    Ringing(Ringing),
    Accepted(Accepted),
    Candidate(Candidate),
    Renegotiate(Renegotiate),
    Ended(Ended),
    Error(ErrorMessage),
    Pong,
}

impl ServerMessage {
    /// The `type` tag, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Welcome(_) => "welcome",
            Self::Invite(_) => "invite",
            Self::Ringing(_) => "ringing",
            Self::Accepted(_) => "accepted",
            Self::Candidate(_) => "candidate",
            Self::Renegotiate(_) => "renegotiate",
            Self::Ended(_) => "ended",
            Self::Error(_) => "error",
            Self::Pong => "pong",
        }
    }

    /// The call this message is about, if any (an `error` names one when it can).
    pub fn call_id(&self) -> Option<&CallId> {
        match self {
            Self::Invite(m) => Some(&m.call_id),
            Self::Ringing(m) => Some(&m.call_id),
            Self::Accepted(m) => Some(&m.call_id),
            Self::Candidate(m) => Some(&m.call_id),
            Self::Renegotiate(m) => Some(&m.call_id),
            Self::Ended(m) => Some(&m.call_id),
            Self::Error(m) => m.call_id.as_ref(),
            Self::Welcome(_) | Self::Pong => None,
        }
    }

    /// Shorthand for an `error` message.
    pub fn error(code: ErrorCode, message: impl Into<String>, call_id: Option<CallId>) -> Self {
        Self::Error(ErrorMessage {
            code,
            message: message.into(),
            call_id,
        })
    }

    /// Shorthand for an `ended` message.
    pub fn ended(call_id: CallId, reason: EndReason) -> Self {
        Self::Ended(Ended { call_id, reason })
    }
}

/// The answer to `hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub version: u32,
    pub user: UserName,
    /// Opaque resume token: send it back as `hello.resume` after a dropped socket.
    pub session: String,
    pub resumed: bool,
    pub heartbeat_s: u64,
    pub resume_ttl_s: u64,
    pub ice_servers: Vec<IceServer>,
}

/// RTCIceServer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// An `invite` as the callee receives it, with `from` stamped by the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncomingInvite {
    pub call_id: CallId,
    pub from: UserName,
    pub offer: String,
    #[serde(default)]
    pub meta: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ringing {
    pub call_id: CallId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accepted {
    pub call_id: CallId,
    pub answer: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ended {
    pub call_id: CallId,
    pub reason: EndReason,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorMessage {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<CallId>,
}
