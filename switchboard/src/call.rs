//! A call between a caller session and the callee's sessions.

use std::time::Instant;

use signaling_protocol::{CallId, UserName};

use crate::session::SessionId;

/// Internal identity of a call (call ids are only unique per caller session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallKey(pub u64);

#[derive(Debug)]
pub struct Call {
    pub call_id: CallId,
    pub caller: SessionId,
    pub caller_user: UserName,
    pub callee_user: UserName,
    pub state: CallState,
}

#[derive(Debug)]
pub enum CallState {
    /// Invite sent; these callee sessions ring until `deadline`.
    Ringing {
        sessions: Vec<SessionId>,
        deadline: Instant,
    },
    /// Accepted by `callee`.
    Connected { callee: SessionId },
}

/// Which side of a call a session is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Caller,
    /// A callee session that is ringing.
    Ringing,
    /// The callee session that accepted.
    Callee,
}

impl Call {
    /// `session`'s side in this call, or `None` if it takes no part.
    pub fn side(&self, session: SessionId) -> Option<Side> {
        if session == self.caller {
            return Some(Side::Caller);
        }
        match &self.state {
            CallState::Ringing { sessions, .. } if sessions.contains(&session) => {
                Some(Side::Ringing)
            }
            CallState::Connected { callee } if *callee == session => Some(Side::Callee),
            _ => None,
        }
    }

    /// Every callee session in the call (ringing ones, or the one that accepted).
    pub fn callee_sessions(&self) -> Vec<SessionId> {
        match &self.state {
            CallState::Ringing { sessions, .. } => sessions.clone(),
            CallState::Connected { callee } => vec![*callee],
        }
    }

    pub fn ring_deadline(&self) -> Option<Instant> {
        match &self.state {
            CallState::Ringing { deadline, .. } => Some(*deadline),
            CallState::Connected { .. } => None,
        }
    }
}
