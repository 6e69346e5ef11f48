//! A call between a caller session and the callee's sessions, on the call's home node.
//! Parties are [`SessionAddr`]es: on a single node all of them are local; in a cluster the
//! callee's sessions may be on other nodes (node.rs).

use std::time::Instant;

use serde::{Deserialize, Serialize};
use signaling_protocol::{CallId, UserName};

use crate::node::{RingAnswer, SessionAddr};

/// Internal identity of a call on its home node (call ids are only unique per caller
/// session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CallKey(pub u64);

#[derive(Debug)]
pub struct Call {
    pub call_id: CallId,
    pub caller: SessionAddr,
    pub caller_user: UserName,
    pub callee_user: UserName,
    pub state: CallState,
}

#[derive(Debug)]
pub enum CallState {
    /// Invite sent; these callee sessions ring until `deadline`.
    Ringing {
        sessions: Vec<SessionAddr>,
        deadline: Instant,
        /// Rings sent to other nodes and not answered yet.
        unanswered: usize,
        /// The caller was told `ringing`.
        rang: bool,
        /// The worst refusal among the rings answered (`Busy`, `Gone`, `Glare`), for the
        /// reason the caller gets if no session rings.
        refused: Option<RingAnswer>,
    },
    /// Accepted by `callee`.
    Connected { callee: SessionAddr },
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
    pub fn side(&self, session: &SessionAddr) -> Option<Side> {
        if *session == self.caller {
            return Some(Side::Caller);
        }
        match &self.state {
            CallState::Ringing { sessions, .. } if sessions.contains(session) => {
                Some(Side::Ringing)
            }
            CallState::Connected { callee } if callee == session => Some(Side::Callee),
            _ => None,
        }
    }

    /// Every callee session in the call (ringing ones, or the one that accepted).
    pub fn callee_sessions(&self) -> Vec<SessionAddr> {
        match &self.state {
            CallState::Ringing { sessions, .. } => sessions.clone(),
            CallState::Connected { callee } => vec![callee.clone()],
        }
    }

    /// Every party: the callee sessions, then the caller.
    pub fn parties(&self) -> Vec<SessionAddr> {
        let mut all = self.callee_sessions();
        all.push(self.caller.clone());
        all
    }

    pub fn ring_deadline(&self) -> Option<Instant> {
        match &self.state {
            CallState::Ringing { deadline, .. } => Some(*deadline),
            CallState::Connected { .. } => None,
        }
    }
}
