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
    /// Home → a party's node: queue `msg` (if any) for `session`; with `leave`, the session
    /// is no longer in the call afterwards. `call` is `None` for a reply that is not part of
    /// a call the session takes part in (an `error`).
    Deliver {
        /// The session.
        session: SessionId,
        /// The call the message belongs to, checked against the session's calls.
        call: Option<CallKey>,
        /// The `call_id` the session knows the call under, for `leave`.
        call_id: Option<CallId>,
        /// The message (`None`: only `leave`, for the party that ended the call itself).
        msg: Option<ServerMessage>,
        /// The session leaves the call.
        leave: bool,
    },
    /// A party's node → home: `session` ended (signed off, expired, dropped): it leaves
    /// `call`.
    Left {
        /// The call.
        call: CallKey,
        /// The session that ended.
        session: SessionId,
    },
}

impl NodeMessage {
    /// For logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Ring { .. } => "ring",
            Self::RingAnswer { .. } => "ring_answer",
            Self::Input { .. } => "input",
            Self::Deliver { .. } => "deliver",
            Self::Left { .. } => "left",
        }
    }
}
