//! Call messages: invite, accept, reject, candidate, renegotiate, hangup, ring timeout.

use signaling_protocol::{
    Accept, Accepted, CallId, Candidate, EndReason, ErrorCode, IncomingInvite, Invite, Renegotiate,
    Ringing, ServerMessage,
};
use std::sync::Arc;

use tracing::info;

use super::{Switchboard, Timer};
use crate::call::{Call, CallKey, CallState, Side};
use crate::metrics::Outcome;
use crate::registry::Registry;
use crate::session::SessionId;

impl<R: Registry> Switchboard<R> {
    /// The call `sid` knows as `call_id`, with its side in it; `unknown_call` otherwise.
    fn lookup(&mut self, sid: SessionId, call_id: &CallId) -> Option<(CallKey, Side)> {
        let found = self
            .sessions
            .get(&sid)
            .and_then(|s| s.calls.get(call_id))
            .and_then(|key| {
                let side = self.calls.get(key)?.side(sid)?;
                Some((*key, side))
            });
        if found.is_none() {
            self.error(
                sid,
                ErrorCode::UnknownCall,
                "no such call",
                Some(call_id.clone()),
            );
        }
        found
    }

    fn bad_state(&mut self, sid: SessionId, call_id: &CallId, message: &str) {
        self.error(sid, ErrorCode::BadState, message, Some(call_id.clone()));
    }

    pub(super) fn invite(&mut self, sid: SessionId, inv: Invite) {
        let Some(caller) = self.sessions.get(&sid) else {
            return;
        };
        let caller_user = caller.user.clone();
        if caller.calls.contains_key(&inv.call_id) {
            let msg = "this session already has a call with that call_id";
            return self.error(sid, ErrorCode::CallExists, msg, Some(inv.call_id));
        }
        if caller.calls.len() >= self.settings.max_calls_per_session {
            let msg = format!(
                "at most {} calls per session",
                self.settings.max_calls_per_session
            );
            return self.error(sid, ErrorCode::RateLimited, &msg, Some(inv.call_id));
        }
        if self.resolve_glare(sid, &inv) {
            return;
        }
        let targets: Vec<SessionId> = self
            .registry
            .sessions(&inv.to)
            .into_iter()
            .filter(|t| *t != sid)
            .collect();
        if targets.is_empty() {
            self.metrics.outcome(Outcome::Unavailable);
            return self.send(
                sid,
                ServerMessage::ended(inv.call_id, EndReason::Unavailable),
            );
        }
        let max = self.settings.max_calls_per_session;
        let ringable: Vec<SessionId> = targets
            .into_iter()
            .filter(|t| {
                self.sessions
                    .get(t)
                    .is_some_and(|s| s.calls.len() < max && !s.calls.contains_key(&inv.call_id))
            })
            .collect();
        if ringable.is_empty() {
            self.metrics.outcome(Outcome::Busy);
            return self.send(sid, ServerMessage::ended(inv.call_id, EndReason::Busy));
        }
        let key = CallKey(self.next_id());
        let deadline = self.now + self.settings.ring_timeout;
        info!(call = %inv.call_id, from = %caller_user, to = %inv.to, sessions = ringable.len(), "ringing");
        // One body shared by every ringing device's queue.
        let invite = Arc::new(ServerMessage::Invite(IncomingInvite {
            call_id: inv.call_id.clone(),
            from: caller_user.clone(),
            offer: inv.offer,
            meta: inv.meta,
        }));
        for &t in ringable.iter().chain([&sid]) {
            if let Some(s) = self.sessions.get_mut(&t) {
                s.calls.insert(inv.call_id.clone(), key);
            }
        }
        for &t in &ringable {
            self.send_shared(t, invite.clone());
        }
        self.send(
            sid,
            ServerMessage::Ringing(Ringing {
                call_id: inv.call_id.clone(),
            }),
        );
        self.calls.insert(
            key,
            Call {
                call_id: inv.call_id,
                caller: sid,
                caller_user,
                callee_user: inv.to,
                state: CallState::Ringing {
                    sessions: ringable,
                    deadline,
                },
            },
        );
        self.deadlines.insert(deadline, Timer::Ring(key));
        self.metrics.calls().inc();
    }

    /// An invite from A to B while B's call to A still rings: the lower `call_id` wins.
    /// Returns whether the new invite lost (and was answered with `ended` `glare`).
    ///
    /// Only A's own calls are looked at (those its sessions ring for): at most
    /// `max_sessions_per_user` × `max_calls_per_session`, where scanning every call of the
    /// server on each invite held the switchboard's lock for as long as it had calls.
    fn resolve_glare(&mut self, sid: SessionId, inv: &Invite) -> bool {
        let Some(me) = self.sessions.get(&sid).map(|s| s.user.clone()) else {
            return false;
        };
        let mut mine: Vec<CallKey> = self
            .registry
            .sessions(&me)
            .iter()
            .filter_map(|s| self.sessions.get(s))
            .flat_map(|s| s.calls.values().copied())
            .collect();
        mine.sort_unstable();
        mine.dedup();
        let crossing: Vec<(CallKey, CallId)> = mine
            .into_iter()
            .filter_map(|key| self.calls.get(&key).map(|c| (key, c)))
            .filter(|(_, c)| {
                c.caller_user == inv.to
                    && c.callee_user == me
                    && matches!(c.state, CallState::Ringing { .. })
            })
            .map(|(k, c)| (k, c.call_id.clone()))
            .collect();
        for (key, other_id) in crossing {
            if inv.call_id < other_id {
                self.finish(key, EndReason::Glare, Some(Outcome::Glare));
            } else {
                self.metrics.outcome(Outcome::Glare);
                self.send(
                    sid,
                    ServerMessage::ended(inv.call_id.clone(), EndReason::Glare),
                );
                return true;
            }
        }
        false
    }

    pub(super) fn accept(&mut self, sid: SessionId, acc: Accept) {
        let Some((key, side)) = self.lookup(sid, &acc.call_id) else {
            return;
        };
        match side {
            Side::Caller => return self.bad_state(sid, &acc.call_id, "the caller cannot accept"),
            Side::Callee => {
                return self.bad_state(sid, &acc.call_id, "the call is already accepted");
            }
            Side::Ringing => {}
        }
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let CallState::Ringing { sessions, deadline } =
            std::mem::replace(&mut call.state, CallState::Connected { callee: sid })
        else {
            return;
        };
        let caller = call.caller;
        self.deadlines.cancel(deadline, Timer::Ring(key));
        self.metrics.outcome(Outcome::Accepted);
        info!(call = %acc.call_id, "call accepted");
        for other in sessions.into_iter().filter(|s| *s != sid) {
            if let Some(s) = self.sessions.get_mut(&other) {
                s.calls.remove(&acc.call_id);
            }
            self.send(
                other,
                ServerMessage::ended(acc.call_id.clone(), EndReason::AnsweredElsewhere),
            );
        }
        self.send(
            caller,
            ServerMessage::Accepted(Accepted {
                call_id: acc.call_id,
                answer: acc.answer,
            }),
        );
    }

    pub(super) fn reject(&mut self, sid: SessionId, call_id: &CallId, reason: EndReason) {
        let Some((key, side)) = self.lookup(sid, call_id) else {
            return;
        };
        match side {
            Side::Caller => self.bad_state(sid, call_id, "the caller cannot reject; use hangup"),
            Side::Callee => self.bad_state(sid, call_id, "the call is accepted; use hangup"),
            Side::Ringing => self.end_by_callee(key, sid, reason),
        }
    }

    /// A ringing callee session refused: the caller gets `reason`, the other ringing
    /// sessions `rejected_elsewhere`.
    fn end_by_callee(&mut self, key: CallKey, sid: SessionId, reason: EndReason) {
        let outcome = if reason == EndReason::Busy {
            Outcome::Busy
        } else {
            Outcome::Declined
        };
        self.finish_with(key, Some(outcome), |s, caller| match s {
            s if s == sid => None,
            s if s == caller => Some(reason),
            _ => Some(EndReason::RejectedElsewhere),
        });
    }

    pub(super) fn candidate(&mut self, sid: SessionId, c: Candidate) {
        let Some((key, side)) = self.lookup(sid, &c.call_id) else {
            return;
        };
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let targets = match side {
            Side::Caller => call.callee_sessions(),
            Side::Ringing | Side::Callee => vec![call.caller],
        };
        let msg = Arc::new(ServerMessage::Candidate(c));
        for t in targets {
            self.send_shared(t, msg.clone());
        }
    }

    pub(super) fn renegotiate(&mut self, sid: SessionId, r: Renegotiate) {
        let Some((key, side)) = self.lookup(sid, &r.call_id) else {
            return;
        };
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let target = match (&call.state, side) {
            (CallState::Connected { callee }, Side::Caller) => *callee,
            (CallState::Connected { .. }, _) => call.caller,
            (CallState::Ringing { .. }, _) => {
                return self.bad_state(sid, &r.call_id, "renegotiate needs an accepted call");
            }
        };
        self.send(target, ServerMessage::Renegotiate(r));
    }

    pub(super) fn hangup(&mut self, sid: SessionId, call_id: &CallId) {
        let Some((key, side)) = self.lookup(sid, call_id) else {
            return;
        };
        let ringing = self
            .calls
            .get(&key)
            .is_some_and(|c| c.ring_deadline().is_some());
        match side {
            Side::Ringing => self.end_by_callee(key, sid, EndReason::Declined),
            Side::Caller | Side::Callee => {
                let outcome = ringing.then_some(Outcome::Cancelled);
                self.finish_with(key, outcome, |s, _| (s != sid).then_some(EndReason::Hangup));
            }
        }
    }

    pub(super) fn ring_timeout(&mut self, key: CallKey) {
        if self
            .calls
            .get(&key)
            .is_some_and(|c| c.ring_deadline().is_some())
        {
            self.finish(key, EndReason::Timeout, Some(Outcome::Timeout));
        }
    }
}
