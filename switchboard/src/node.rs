//! Several nodes: where a session lives, and what one node's switchboard tells another's.
//!
//! A call lives on the node that took its `invite` (its home), beside the caller's session.
//! Callee sessions on other nodes take part through messages: the home rings them
//! ([`NodeMessage::Ring`]), their nodes forward what they send about the call
//! ([`NodeMessage::Input`]), and the home sends back what they must receive
//! ([`NodeMessage::Deliver`]). The shell carries these between nodes (through Redis) in
//! order and exactly once per pair of nodes; the switchboard never touches the transport.

use std::fmt;

use serde::{Deserialize, Serialize};
use signaling_protocol::{CallId, ClientMessage, ServerMessage, UserName};

use crate::call::CallKey;
use crate::session::SessionId;

/// A node of the cluster, as the shell names it (`--node-id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(String);

impl NodeId {
    /// The node called `name` (the shell validates names).
    pub fn new(name: &str) -> Self {
        Self(name.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A session anywhere in the cluster: its node and its id there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionAddr {
    /// The node that holds the session.
    pub node: NodeId,
    /// The session's id on that node.
    pub session: SessionId,
}

/// A call on its home node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CallRef {
    /// The node the call lives on.
    pub home: NodeId,
    /// Its key there.
    pub key: CallKey,
}

/// How a session on another node took a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RingAnswer {
    /// It rings.
    Ringing,
    /// It has `max_calls_per_session` calls, or a call with that `call_id` already.
    Busy,
    /// It ended before the ring arrived.
    Gone,
    /// Its node holds a crossing invite between the same two users that wins (the lower
    /// `call_id`): the ringing call ends with `glare`.
    Glare,
}

/// What one node's switchboard sends another's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NodeMessage {
    /// Home → callee node: ring `session` for `call` (`invite` is the `invite` message).
    Ring {
        /// The call.
        call: CallKey,
        /// The callee session to ring.
        session: SessionId,
        /// The caller's user, for the callee node's glare check.
        caller: UserName,
        /// The `invite` the session receives.
        invite: ServerMessage,
    },
    /// Callee node → home: how `session` took the ring of `call`.
    RingAnswer {
        /// The call.
        call: CallKey,
        /// The session that was rung.
        session: SessionId,
        /// How it took it.
        answer: RingAnswer,
    },
    /// A party's node → home: the party sent `msg` about `call`.
    Input {
        /// The call.
        call: CallKey,
        /// The party's session on the sending node.
        session: SessionId,
        /// What it sent (accept, reject, candidate, renegotiate, hangup).
        msg: ClientMessage,
    },
    /// Home → a party's node: a message for one of its sessions.
    Deliver(Delivery),
    /// A node where a client resumes → the node its session lives on: hand the session
    /// with resume `token` over; it will be `session` on the sender. `received` is the
    /// client's count.
    Claim {
        /// The resume token the client presented.
        token: String,
        /// The user the client signed in as (a token of another user's session is no claim).
        user: UserName,
        /// The session's id on the claiming node.
        session: SessionId,
        /// The client's `received` count.
        received: Option<u64>,
    },
    /// The session's old node → the claiming node: here it is (`moved`), or there is no
    /// such session (`None`: the client gets a fresh one). `old` is its id on the old node.
    Handover {
        /// Its id on the claiming node.
        session: SessionId,
        /// Its id on the old node.
        old: SessionId,
        /// The session, if there was one.
        moved: Option<Box<MovedSession>>,
    },
    /// The old node → a call's home on a third node: party `old` of `call` is now `new`.
    Moved {
        /// The call.
        call: CallKey,
        /// The party's id on the old node (the sender).
        old: SessionId,
        /// Where it is now.
        new: SessionAddr,
    },
    /// That home → the old node, after [`NodeMessage::Moved`]: nothing more for `old` about
    /// `call` comes this way. The old node relays it to the new one, behind everything it
    /// relayed before.
    Fence {
        /// The call.
        call: CallKey,
        /// The party's id on the old node.
        old: SessionId,
    },
    /// The old node → the new one: a message `home` sent the old node about a session that
    /// moved (a [`NodeMessage::Deliver`] or [`NodeMessage::Fence`], its session id already
    /// the new one), relayed in the order it came.
    Relayed {
        /// The node that sent it.
        home: NodeId,
        /// The message.
        msg: Box<NodeMessage>,
    },
    /// A party's node → home: `session` ended (signed off, expired, dropped): it leaves
    /// `call`.
    Left {
        /// The call.
        call: CallKey,
        /// The session that ended.
        session: SessionId,
    },
    /// A draining home → the caller's node: the call `call` lives there from now on
    /// (rehome.rs).
    Adopt {
        /// The call's key on the draining node.
        call: CallKey,
        /// The call.
        state: Box<CallTransfer>,
    },
    /// The adopting node → the old home: call `call` lives here as `key` now. Everything
    /// this node sent the old home about the call came before.
    Adopted {
        /// The key on the old home.
        call: CallKey,
        /// The key on the adopting node.
        key: CallKey,
    },
    /// The old home → a party's node (not the adopting one): call `call` lives on `home` as
    /// `key` now, for `sessions` of the receiver; nothing more comes from the old home about
    /// it.
    CallMoved {
        /// The key on the old home.
        call: CallKey,
        /// The new home.
        home: NodeId,
        /// The key there.
        key: CallKey,
        /// The receiver's sessions in the call.
        sessions: Vec<SessionId>,
    },
    /// A party's node → the old home, after [`NodeMessage::CallMoved`] (or the adopting
    /// node's [`NodeMessage::Adopted`]): nothing more from the sender about `call` comes
    /// through the old home.
    CallFence {
        /// The key on the old home.
        call: CallKey,
    },
    /// The old home → the adopting node: `msg`, about a call that moved there, came from
    /// `from` (an input, a ring answer, a leave, a party's move, or a [`NodeMessage::CallFence`]);
    /// its `call` is still the old home's key.
    Forwarded {
        /// The node that sent it to the old home.
        from: NodeId,
        /// The message.
        msg: Box<NodeMessage>,
    },
}

/// A call handed from a draining home to its caller's node ([`NodeMessage::Adopt`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallTransfer {
    /// The caller's `call_id`.
    pub call_id: CallId,
    /// The caller's session (on the adopting node).
    pub caller: SessionAddr,
    /// The caller's user.
    pub caller_user: UserName,
    /// The callee's user.
    pub callee_user: UserName,
    /// Ringing or accepted.
    pub state: TransferState,
}

/// The state of a [`CallTransfer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TransferState {
    /// These callee sessions ring for `ring_left` more.
    Ringing {
        /// The sessions that ring.
        sessions: Vec<SessionAddr>,
        /// How long they ring still.
        ring_left: std::time::Duration,
        /// Rings not answered yet (their answers come forwarded by the old home).
        unanswered: usize,
        /// The caller was told `ringing`.
        rang: bool,
        /// The worst refusal so far.
        refused: Option<RingAnswer>,
    },
    /// Accepted by `callee`.
    Connected {
        /// The callee session.
        callee: SessionAddr,
    },
}

/// A message from a call's home for a session on another node ([`NodeMessage::Deliver`]):
/// queue `msg` (if any) for `session`; with `leave`, the session is no longer in the call
/// afterwards. `call` and `call_id` are `None` for a reply that is not part of a call the
/// session takes part in (an `error`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The session.
    pub session: SessionId,
    /// The call the message belongs to, checked against the session's calls.
    pub call: Option<CallKey>,
    /// The `call_id` the session knows the call under, for `leave`.
    pub call_id: Option<CallId>,
    /// The message (`None`: only `leave`, for the party that ended the call itself).
    pub msg: Option<ServerMessage>,
    /// The session leaves the call.
    pub leave: bool,
}

/// What a session takes with it to another node ([`NodeMessage::Handover`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovedSession {
    /// Its user.
    pub user: UserName,
    /// Its resume token.
    pub token: String,
    /// The client acknowledges (`received`).
    pub acks: bool,
    /// Messages counted as delivered (the client's `received`, after the rewind).
    pub delivered: u64,
    /// What is still to be delivered, in order.
    pub queue: Vec<ServerMessage>,
    /// Its calls, by the `call_id` it knows them under, with where each lives.
    pub calls: Vec<(CallId, CallRef)>,
}

impl NodeMessage {
    /// The call living on the receiving node that this message is about, for the messages
    /// a call's home receives from its parties' nodes (what a draining home forwards once
    /// the call moved: rehome.rs).
    pub(crate) fn call_at_receiver(&self) -> Option<CallKey> {
        match self {
            Self::Input { call, .. }
            | Self::RingAnswer { call, .. }
            | Self::Left { call, .. }
            | Self::Moved { call, .. }
            | Self::CallFence { call } => Some(*call),
            _ => None,
        }
    }

    /// For logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Ring { .. } => "ring",
            Self::RingAnswer { .. } => "ring_answer",
            Self::Input { .. } => "input",
            Self::Deliver(_) => "deliver",
            Self::Left { .. } => "left",
            Self::Claim { .. } => "claim",
            Self::Handover { .. } => "handover",
            Self::Moved { .. } => "moved",
            Self::Fence { .. } => "fence",
            Self::Relayed { .. } => "relayed",
            Self::Adopt { .. } => "adopt",
            Self::Adopted { .. } => "adopted",
            Self::CallMoved { .. } => "call_moved",
            Self::CallFence { .. } => "call_fence",
            Self::Forwarded { .. } => "forwarded",
        }
    }
}
