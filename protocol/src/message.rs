//! Every message of the contract, client to server and server to client.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::{CallId, EndReason, ErrorCode, RejectReason, UserName};

/// A message a client sends. `{"type": ...}` picks the variant; unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// `hello`: opens (or resumes) a session; must be the first message on a connection.
    Hello(Hello),
    /// `invite`: the caller starts a call with its SDP offer.
    Invite(Invite),
    /// `accept`: a ringing callee session answers with its SDP answer.
    Accept(Accept),
    /// `reject`: a ringing callee session refuses the call.
    Reject(Reject),
    /// `candidate`: a trickled ICE candidate for the other party.
    Candidate(Candidate),
    /// `renegotiate`: a mid-call offer or answer, once the call is accepted.
    Renegotiate(Renegotiate),
    /// `hangup`: the caller cancels while ringing, or either party ends the call.
    Hangup(CallRef),
    /// `ping`: heartbeat, at least every `welcome.heartbeat_s`; answered with `pong`.
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

/// `hello`: the first message of every connection. Anything else first gets `not_ready`.
///
/// ```json
/// {"type":"hello","version":1,"user":"alice","token":"<optional>","resume":"<optional>"}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the client speaks; must be
    /// [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION), else `bad_message`.
    pub version: u32,
    /// Who the client is: 1 to 64 chars of `A-Z a-z 0-9 . _ @ -`, else `invalid_user` and the
    /// socket closes. Kept as a plain string (not a [`UserName`]) so that a bad name maps to
    /// `invalid_user`, not `bad_message`.
    pub user: String,
    /// A JWT whose `sub` is `user`; required when the server has auth configured, else
    /// `unauthorized` and the socket closes (1008). Ignored in open mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// `welcome.session` of an earlier connection: resumes that session and its calls if it
    /// is the same user's and still within `resume_ttl_s`; otherwise the client gets a fresh
    /// session (`welcome.resumed` says which).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
    /// Extension (docs/protocol.md): how many messages after `welcome` this client has
    /// received in the session being resumed (`0` on a new one). Sending it opts the
    /// session in to replay of messages lost with a dead socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<u64>,
}

/// `ping`: heartbeat. The server answers `pong` ([`ServerMessage::Pong`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ping {
    /// Extension (docs/protocol.md): how many messages after `welcome` this client has
    /// received so far, so the server can forget what it already has (see [`Hello::received`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<u64>,
}

/// `invite`: call `to`; rings all of its sessions. The callee receives it as an
/// [`IncomingInvite`], with `from` stamped by the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invite {
    /// Chosen by the caller, unique among its session's calls (a random id is best); every
    /// later message about this call carries it.
    pub call_id: CallId,
    /// The user to call.
    pub to: UserName,
    /// The caller's SDP offer.
    pub offer: String,
    /// Anything the application wants the callee to see before it answers (e.g. "video
    /// call"), passed through untouched; at most [`MAX_META_BYTES`](crate::MAX_META_BYTES)
    /// serialized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
}

/// `accept`: a ringing callee session answers. The first session to accept wins; the
/// caller gets [`Accepted`], the callee's other sessions `ended` `answered_elsewhere`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accept {
    /// The call being answered.
    pub call_id: CallId,
    /// The callee's SDP answer.
    pub answer: String,
}

/// `reject`: a ringing callee session refuses; the call ends for the caller with `reason`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reject {
    /// The call being refused.
    pub call_id: CallId,
    /// `declined` (the default when absent) or `busy`.
    #[serde(default)]
    pub reason: RejectReason,
}

/// `candidate`: a trickled ICE candidate, in both directions: the server forwards it to the
/// other party (before `accept`, between the caller and every ringing callee session).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The call the candidate belongs to.
    pub call_id: CallId,
    /// The candidate; required on the wire, where `null` (`None`) means end of candidates.
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

/// RTCIceCandidateInit, spelled as the browser's `RTCIceCandidate.toJSON()` spells it
/// (camelCase, unlike the rest of the protocol), so a browser can pass it straight to
/// `addIceCandidate()`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    /// The SDP `candidate:` attribute, e.g.
    /// `candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host`.
    pub candidate: String,
    /// `sdpMid`: the media section (by its `a=mid`) the candidate is for.
    #[serde(default)]
    pub sdp_mid: Option<String>,
    /// `sdpMLineIndex`: the media section by its index in the SDP, from 0.
    #[serde(default, rename = "sdpMLineIndex")]
    pub sdp_m_line_index: Option<u16>,
    /// `usernameFragment`: the ICE ufrag the candidate goes with, which tells candidates
    /// from before and after an ICE restart apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// `renegotiate`: a mid-call offer or answer (ICE restart, new tracks), from either party,
/// only once the call is accepted (before, `bad_state`). Forwarded to the other party as is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Renegotiate {
    /// The call to renegotiate.
    pub call_id: CallId,
    /// The new offer, or the answer to the other party's.
    pub description: SessionDescription,
}

/// RTCSessionDescriptionInit, limited to what renegotiation uses:
/// `{"type":"offer"|"answer","sdp":"..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionDescription {
    /// `type` on the wire: offer or answer.
    #[serde(rename = "type")]
    pub kind: SdpType,
    /// The SDP text.
    pub sdp: String,
}

/// `SessionDescription.type`: which half of an offer/answer exchange the SDP is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SdpType {
    /// `offer`: a new description the other party must answer.
    Offer,
    /// `answer`: the reply to the other party's offer.
    Answer,
}

/// A message that names only its call: `hangup` from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRef {
    /// The call the message is about.
    pub call_id: CallId,
}

/// A message the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// `welcome`: the answer to `hello`; the session is open.
    Welcome(Welcome),
    /// `invite`: someone calls; sent to every session of the callee.
    Invite(IncomingInvite),
    /// `ringing`: to the caller, once the invite reached at least one callee session.
    Ringing(Ringing),
    /// `accepted`: to the caller, with the callee's answer.
    Accepted(Accepted),
    /// `candidate`: the other party's trickled ICE candidate.
    Candidate(Candidate),
    /// `renegotiate`: the other party's mid-call offer or answer.
    Renegotiate(Renegotiate),
    /// `ended`: the call is over for this session, with the reason.
    Ended(Ended),
    /// `error`: what was wrong with a message this session sent.
    Error(ErrorMessage),
    /// `pong`: the answer to `ping`.
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

/// `welcome`: the answer to `hello`; the session is open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// The protocol version the server speaks ([`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION)).
    pub version: u32,
    /// The user the session belongs to, as `hello.user` named it.
    pub user: UserName,
    /// Opaque resume token: send it back as `hello.resume` after a dropped socket.
    pub session: String,
    /// `true` when `hello.resume` re-attached a live session (its calls go on and queued
    /// messages follow); `false` for a fresh session, whose earlier calls are gone.
    pub resumed: bool,
    /// Send `ping` at least this often, seconds; a connection silent for twice as long is
    /// dropped.
    pub heartbeat_s: u64,
    /// How long, seconds, the server keeps the session and its calls after the socket drops,
    /// waiting for a `hello` with `resume`.
    pub resume_ttl_s: u64,
    /// STUN and TURN servers, with short-lived TURN credentials, ready to pass to
    /// `new RTCPeerConnection({iceServers})`.
    pub ice_servers: Vec<IceServer>,
    /// The server's limit on this connection's messages: sustained per second (project
    /// extension; absent from servers that predate it, which apply the contract's default, 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_s: Option<u32>,
    /// ... and at once (project extension; the contract's default is 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_burst: Option<u32>,
}

/// RTCIceServer: one STUN or TURN server, with credentials for TURN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:` and `turn:` URLs of one server, e.g. `turn:host:3478?transport=udp`.
    pub urls: Vec<String>,
    /// TURN user name, in the TURN REST convention `"<unix expiry>:<user>"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password: `base64(HMAC-SHA1(shared secret, username))`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// `invite` as the callee receives it, with `from` stamped by the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncomingInvite {
    /// The caller's id for the call; the callee uses it in `accept`, `reject`, `candidate`.
    pub call_id: CallId,
    /// Who calls: the caller's user name as its `hello` established it, never a field the
    /// caller wrote.
    pub from: UserName,
    /// The caller's SDP offer.
    pub offer: String,
    /// The caller's `invite.meta`, untouched.
    #[serde(default)]
    pub meta: Option<Value>,
}

/// `ringing`: to the caller, once its invite reached at least one callee session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ringing {
    /// The call that rings.
    pub call_id: CallId,
}

/// `accepted`: to the caller, when a callee session accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accepted {
    /// The call that was answered.
    pub call_id: CallId,
    /// The callee's SDP answer, to set as the caller's remote description.
    pub answer: String,
}

/// `ended`: the call is over for the session that receives it. The session that sent
/// `hangup` gets none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ended {
    /// The call that ended.
    pub call_id: CallId,
    /// Why it ended.
    pub reason: EndReason,
}

/// `error`: what was wrong with a message this session sent. Goes only to the sender;
/// `invalid_user`, `unauthorized` and `too_large` also close the socket, the others keep it
/// open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorMessage {
    /// What kind of mistake, for programs.
    pub code: ErrorCode,
    /// A human-readable explanation, for logs; not meant to be parsed.
    pub message: String,
    /// The call the bad message named, when it named a valid one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<CallId>,
}
