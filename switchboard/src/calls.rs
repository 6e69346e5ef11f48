//! Call messages: invite, accept, reject, candidate, renegotiate, hangup, ring timeout.
//!
//! A call lives on its home node (the caller's); its parties are [`SessionAddr`]es. A party
//! on this node acts on the call directly, a party elsewhere through its node's
//! [`NodeMessage::Input`], and both go through [`Switchboard::call_input`].

use std::sync::Arc;

use signaling_protocol::{
    Accept, Accepted, CallId, ClientMessage, EndReason, ErrorCode, IncomingInvite, Invite, Ringing,
    ServerMessage,
};
use tracing::{debug, info};

use super::{Output, Switchboard, Timer};
use crate::call::{Call, CallKey, CallState, Side};
use crate::metrics::Outcome;
use crate::moves::Held;
use crate::node::{CallRef, Delivery, NodeMessage, RingAnswer, SessionAddr};
use crate::registry::Registry;
use crate::rehome::HeldCall;
use crate::session::{Membership, Outgoing, SessionId};

/// Which refusal a caller hears when no session rings: glare over busy over unavailable.
fn worse(a: Option<RingAnswer>, b: RingAnswer) -> Option<RingAnswer> {
    let rank = |r: Option<RingAnswer>| match r {
        Some(RingAnswer::Glare) => 3,
        Some(RingAnswer::Busy) => 2,
        Some(RingAnswer::Gone) => 1,
        Some(RingAnswer::Ringing) | None => 0,
    };
    if rank(Some(b)) > rank(a) { Some(b) } else { a }
}

impl<R: Registry> Switchboard<R> {
    /// The address of a session of this node.
    pub(super) fn here(&self, sid: SessionId) -> SessionAddr {
        SessionAddr {
            node: self.node.clone(),
            session: sid,
        }
    }

    /// Queues `msg` for a party of call `key` (known to it as `call_id`), here or on its
    /// node; with `leave` the party is out of the call afterwards. `msg` `None` only takes
    /// the party out.
    fn send_to(
        &mut self,
        party: &SessionAddr,
        key: CallKey,
        call_id: &CallId,
        msg: Option<Outgoing>,
        leave: bool,
    ) {
        let delivery = |msg: Option<Outgoing>| Delivery {
            session: party.session,
            call: Some(key),
            call_id: Some(call_id.clone()),
            msg: msg.map(|m| (*m).clone()),
            leave,
        };
        // A call adopted from a draining node waits for the party node's fence.
        if let Some(held) = self.hold_mut(key, &party.node) {
            held.push(HeldCall::Deliver(delivery(msg)));
            return;
        }
        if party.node == self.node && self.claims.contains_key(&party.session) {
            // On its way here (moves.rs): delivered once it arrived.
            let node = self.node.clone();
            return self.delivered(&node, delivery(msg), false);
        }
        if party.node == self.node {
            let node = self.node.clone();
            // A session that moved here waits for the fence of its calls living here.
            if let Some(held) = self.call_fence_mut(party.session, call_id, key, &node) {
                held.push(Held::Deliver(delivery(msg)));
                return;
            }
            if leave
                && let Some(s) = self.sessions.get_mut(&party.session)
                && s.calls.get(call_id) == Some(&Membership::Home(key))
            {
                s.calls.remove(call_id);
            }
            if let Some(msg) = msg {
                self.send_shared(party.session, msg);
            }
        } else {
            self.send_node(party.node.clone(), NodeMessage::Deliver(delivery(msg)));
        }
    }

    /// An `error` for a party, here or on its node.
    fn error_to(
        &mut self,
        party: &SessionAddr,
        code: ErrorCode,
        message: &str,
        call_id: Option<CallId>,
    ) {
        if party.node == self.node {
            return self.error(party.session, code, message, call_id);
        }
        self.metrics.error(code);
        self.send_node(
            party.node.clone(),
            NodeMessage::Deliver(Delivery {
                session: party.session,
                call: None,
                call_id: None,
                msg: Some(ServerMessage::error(code, message, call_id)),
                leave: false,
            }),
        );
    }

    pub(super) fn send_node(&mut self, to: crate::node::NodeId, msg: NodeMessage) {
        debug!(to = %to, kind = msg.kind(), "to node");
        self.outputs.push_back(Output::Node { to, msg });
    }

    /// A message about a call from a session of this node: acted on here if the call lives
    /// here, else forwarded to its home.
    pub(super) fn call_message(&mut self, sid: SessionId, msg: ClientMessage) {
        let Some(call_id) = msg.call_id().cloned() else {
            return;
        };
        let membership = self
            .sessions
            .get(&sid)
            .and_then(|s| s.calls.get(&call_id))
            .cloned();
        match membership {
            Some(Membership::Home(key)) => {
                // A session that moved here while its call came here too (rehome.rs): what
                // it sent before may still come through its old node and the old home.
                let node = self.node.clone();
                if let Some(held) = self.fence_mut(sid, key, &node) {
                    held.push(Held::Input(msg));
                } else {
                    self.call_input(key, self.here(sid), msg);
                }
            }
            Some(Membership::Remote(CallRef { home, key })) => {
                // After a move, the home may not know this session's new address yet.
                if let Some(held) = self.fence_mut(sid, key, &home) {
                    held.push(Held::Input(msg));
                } else {
                    let input = NodeMessage::Input {
                        call: key,
                        session: sid,
                        msg,
                    };
                    self.send_node(home, input);
                }
            }
            None => self.error(sid, ErrorCode::UnknownCall, "no such call", Some(call_id)),
        }
    }

    /// `party` (here or elsewhere) sent `msg` about call `key`, which lives here (held if the
    /// call was adopted and the party's node has not fenced it yet: rehome.rs).
    pub(super) fn call_input(&mut self, key: CallKey, party: SessionAddr, msg: ClientMessage) {
        match self.hold_mut(key, &party.node) {
            Some(held) => held.push(HeldCall::Input(party, msg)),
            None => self.call_input_now(key, party, msg),
        }
    }

    /// [`Self::call_input`], now.
    pub(super) fn call_input_now(&mut self, key: CallKey, party: SessionAddr, msg: ClientMessage) {
        let Some(call_id) = msg.call_id().cloned() else {
            return;
        };
        let side = self
            .calls
            .get(&key)
            .filter(|c| c.call_id == call_id)
            .and_then(|c| c.side(&party));
        let Some(side) = side else {
            return self.error_to(
                &party,
                ErrorCode::UnknownCall,
                "no such call",
                Some(call_id),
            );
        };
        match msg {
            ClientMessage::Accept(m) => self.accept(key, side, &party, m),
            ClientMessage::Reject(m) => self.reject(key, side, &party, &m.call_id, m.reason.into()),
            ClientMessage::Candidate(m) => {
                let targets = match (side, self.calls.get(&key)) {
                    (_, None) => return,
                    (Side::Caller, Some(call)) => call.callee_sessions(),
                    (Side::Ringing | Side::Callee, Some(call)) => vec![call.caller.clone()],
                };
                let msg: Outgoing = Arc::new(ServerMessage::Candidate(m));
                for t in &targets {
                    self.send_to(t, key, &call_id, Some(msg.clone()), false);
                }
            }
            ClientMessage::Renegotiate(m) => {
                let target = match self.calls.get(&key).map(|c| (&c.state, side)) {
                    Some((CallState::Connected { callee }, Side::Caller)) => callee.clone(),
                    Some((CallState::Connected { .. }, _)) => self
                        .calls
                        .get(&key)
                        .map(|c| c.caller.clone())
                        .unwrap_or(party.clone()),
                    Some((CallState::Ringing { .. }, _)) | None => {
                        let msg = "renegotiate needs an accepted call";
                        return self.error_to(&party, ErrorCode::BadState, msg, Some(call_id));
                    }
                };
                let msg = Arc::new(ServerMessage::Renegotiate(m));
                self.send_to(&target, key, &call_id, Some(msg), false);
            }
            ClientMessage::Hangup(_) => self.hangup(key, side, &party),
            ClientMessage::Hello(_) | ClientMessage::Ping(_) | ClientMessage::Invite(_) => {}
        }
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
        let key = CallKey(self.next_id());
        let deadline = self.now + self.settings.ring_timeout;
        // One body shared by every ringing device's queue (on this node).
        let invite = Arc::new(ServerMessage::Invite(IncomingInvite {
            call_id: inv.call_id.clone(),
            from: caller_user.clone(),
            offer: inv.offer,
            meta: inv.meta,
        }));
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.calls.insert(inv.call_id.clone(), Membership::Home(key));
        }
        let callee_user = inv.to.clone();
        self.calls.insert(
            key,
            Call {
                call_id: inv.call_id,
                caller: self.here(sid),
                caller_user,
                callee_user: inv.to,
                state: CallState::Ringing {
                    sessions: Vec::new(),
                    deadline,
                    // The lookup of the callee's sessions.
                    unanswered: 1,
                    rang: false,
                    refused: None,
                },
            },
        );
        self.deadlines.insert(deadline, Timer::Ring(key));
        self.metrics.calls().inc();
        self.pending_invites.insert(key, invite);
        if self.clustered {
            self.outputs.push_back(Output::Lookup {
                call: key,
                user: callee_user,
            });
        } else {
            self.ring(key, &[]);
        }
    }

    /// The callee's sessions on other nodes are known (`remote`; the shell's lookup): rings
    /// them and the callee's sessions here.
    pub(super) fn ring(&mut self, key: CallKey, remote: &[SessionAddr]) {
        let Some(invite) = self.pending_invites.remove(&key) else {
            return;
        };
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let (caller, call_id) = (call.caller.clone(), call.call_id.clone());
        let (caller_user, callee_user) = (call.caller_user.clone(), call.callee_user.clone());
        let max = self.settings.max_calls_per_session;
        let mut rung = Vec::new();
        let mut refused = None;
        for t in self.registry.sessions(&callee_user) {
            let addr = self.here(t);
            if addr == caller {
                continue;
            }
            let ringable = self
                .sessions
                .get(&t)
                .is_some_and(|s| s.calls.len() < max && !s.calls.contains_key(&call_id));
            if ringable {
                rung.push(addr);
            } else {
                refused = worse(refused, RingAnswer::Busy);
            }
        }
        for addr in &rung {
            if let Some(s) = self.sessions.get_mut(&addr.session) {
                s.calls.insert(call_id.clone(), Membership::Home(key));
            }
            self.send_shared(addr.session, invite.clone());
        }
        let remote: Vec<SessionAddr> = remote
            .iter()
            .filter(|a| a.node != self.node && **a != caller)
            .cloned()
            .collect();
        for addr in &remote {
            self.send_node(
                addr.node.clone(),
                NodeMessage::Ring {
                    call: key,
                    session: addr.session,
                    caller: caller_user.clone(),
                    invite: (*invite).clone(),
                },
            );
        }
        info!(call = %call_id, to = %callee_user, here = rung.len(), elsewhere = remote.len(), "ringing");
        let rang_here = !rung.is_empty();
        if let Some(call) = self.calls.get_mut(&key)
            && let CallState::Ringing {
                sessions,
                unanswered,
                refused: worst,
                ..
            } = &mut call.state
        {
            sessions.extend(rung);
            sessions.extend(remote.iter().cloned());
            *unanswered = *unanswered - 1 + remote.len();
            if let Some(r) = refused {
                *worst = worse(*worst, r);
            }
        }
        if rang_here {
            self.tell_ringing(key);
        }
        self.settle_ringing(key);
    }

    /// Tells the caller `ringing`, once.
    fn tell_ringing(&mut self, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let CallState::Ringing { rang, .. } = &mut call.state else {
            return;
        };
        if std::mem::replace(rang, true) {
            return;
        }
        let (caller, call_id) = (call.caller.clone(), call.call_id.clone());
        let msg = Arc::new(ServerMessage::Ringing(Ringing {
            call_id: call_id.clone(),
        }));
        self.send_to(&caller, key, &call_id, Some(msg), false);
    }

    /// A ringing call with no session left to ring and no answer to wait for ends with the
    /// worst refusal (`unavailable` if none).
    fn settle_ringing(&mut self, key: CallKey) {
        let Some(CallState::Ringing {
            sessions,
            unanswered,
            refused,
            ..
        }) = self.calls.get(&key).map(|c| &c.state)
        else {
            return;
        };
        if !sessions.is_empty() || *unanswered > 0 {
            return;
        }
        let (reason, outcome) = match refused {
            Some(RingAnswer::Glare) => (EndReason::Glare, Outcome::Glare),
            Some(RingAnswer::Busy) => (EndReason::Busy, Outcome::Busy),
            _ => (EndReason::Unavailable, Outcome::Unavailable),
        };
        self.finish(key, reason, Some(outcome));
    }

    /// Another node answered a ring of call `key`.
    pub(super) fn ring_answered(&mut self, key: CallKey, party: SessionAddr, answer: RingAnswer) {
        let Some(CallState::Ringing {
            sessions,
            unanswered,
            refused,
            ..
        }) = self.calls.get_mut(&key).map(|c| &mut c.state)
        else {
            return;
        };
        *unanswered = unanswered.saturating_sub(1);
        if answer == RingAnswer::Ringing {
            self.tell_ringing(key);
        } else {
            sessions.retain(|s| *s != party);
            *refused = worse(*refused, answer);
            self.settle_ringing(key);
        }
    }

    /// A ring from call `call` on node `home` for session `sid` of this node.
    pub(super) fn rung(
        &mut self,
        home: crate::node::NodeId,
        call: CallKey,
        sid: SessionId,
        caller_user: &signaling_protocol::UserName,
        invite: ServerMessage,
    ) {
        let ServerMessage::Invite(inv) = &invite else {
            return;
        };
        let call_id = inv.call_id.clone();
        let max = self.settings.max_calls_per_session;
        let answer = match self.sessions.get(&sid) {
            None => RingAnswer::Gone,
            Some(s) if s.calls.len() >= max || s.calls.contains_key(&call_id) => RingAnswer::Busy,
            Some(s) => {
                let me = s.user.clone();
                if self.crossing_wins(&me, caller_user, &call_id) {
                    RingAnswer::Glare
                } else {
                    RingAnswer::Ringing
                }
            }
        };
        if answer == RingAnswer::Ringing {
            let membership = Membership::Remote(CallRef {
                home: home.clone(),
                key: call,
            });
            if let Some(s) = self.sessions.get_mut(&sid) {
                s.calls.insert(call_id, membership);
            }
            self.send(sid, invite);
        }
        self.send_node(
            home,
            NodeMessage::RingAnswer {
                call,
                session: sid,
                answer,
            },
        );
    }

    /// The calls of `me`'s sessions here that live here.
    fn home_calls_of(&self, me: &signaling_protocol::UserName) -> Vec<CallKey> {
        let mut mine: Vec<CallKey> = self
            .registry
            .sessions(me)
            .iter()
            .filter_map(|s| self.sessions.get(s))
            .flat_map(|s| s.calls.values().filter_map(Membership::home))
            .collect();
        mine.sort_unstable();
        mine.dedup();
        mine
    }

    /// `me`'s ringing calls here to `other`, crossing a call from `other` to `me` known as
    /// `call_id`.
    fn crossing(
        &self,
        me: &signaling_protocol::UserName,
        other: &signaling_protocol::UserName,
    ) -> Vec<(CallKey, CallId)> {
        self.home_calls_of(me)
            .into_iter()
            .filter_map(|key| self.calls.get(&key).map(|c| (key, c)))
            .filter(|(_, c)| {
                c.caller_user == *me
                    && c.callee_user == *other
                    && matches!(c.state, CallState::Ringing { .. })
            })
            .map(|(k, c)| (k, c.call_id.clone()))
            .collect()
    }

    /// A call from `other` to `me` known as `call_id` rings here while `me`'s own calls to
    /// `other` ring: the lower `call_id` wins. Ends `me`'s calls that lose; returns whether
    /// the incoming one loses.
    fn crossing_wins(
        &mut self,
        me: &signaling_protocol::UserName,
        other: &signaling_protocol::UserName,
        call_id: &CallId,
    ) -> bool {
        for (key, mine) in self.crossing(me, other) {
            if *call_id < mine {
                self.finish(key, EndReason::Glare, Some(Outcome::Glare));
            } else {
                return true;
            }
        }
        false
    }

    /// An invite from A to B while B's call to A still rings here: the lower `call_id` wins.
    /// Returns whether the new invite lost (and was answered with `ended` `glare`). A
    /// crossing call that lives on another node is settled when the ring arrives there
    /// ([`Self::rung`]), by the same rule.
    ///
    /// Only A's own calls are looked at (those its sessions ring for): at most
    /// `max_sessions_per_user` × `max_calls_per_session`, where scanning every call of the
    /// server on each invite held the switchboard's lock for as long as it had calls.
    fn resolve_glare(&mut self, sid: SessionId, inv: &Invite) -> bool {
        let Some(me) = self.sessions.get(&sid).map(|s| s.user.clone()) else {
            return false;
        };
        for (key, other_id) in self.crossing(&inv.to, &me) {
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

    fn accept(&mut self, key: CallKey, side: Side, party: &SessionAddr, acc: Accept) {
        match side {
            Side::Caller => {
                let msg = "the caller cannot accept";
                return self.error_to(party, ErrorCode::BadState, msg, Some(acc.call_id));
            }
            Side::Callee => {
                let msg = "the call is already accepted";
                return self.error_to(party, ErrorCode::BadState, msg, Some(acc.call_id));
            }
            Side::Ringing => {}
        }
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let connected = CallState::Connected {
            callee: party.clone(),
        };
        let CallState::Ringing {
            sessions, deadline, ..
        } = std::mem::replace(&mut call.state, connected)
        else {
            return;
        };
        let caller = call.caller.clone();
        self.deadlines.cancel(deadline, Timer::Ring(key));
        self.metrics.outcome(Outcome::Accepted);
        info!(call = %acc.call_id, "call accepted");
        let elsewhere: Outgoing = Arc::new(ServerMessage::ended(
            acc.call_id.clone(),
            EndReason::AnsweredElsewhere,
        ));
        for other in sessions.iter().filter(|s| *s != party) {
            self.send_to(other, key, &acc.call_id, Some(elsewhere.clone()), true);
        }
        let call_id = acc.call_id.clone();
        let accepted = Arc::new(ServerMessage::Accepted(Accepted {
            call_id: acc.call_id,
            answer: acc.answer,
        }));
        self.send_to(&caller, key, &call_id, Some(accepted), false);
    }

    fn reject(
        &mut self,
        key: CallKey,
        side: Side,
        party: &SessionAddr,
        call_id: &CallId,
        reason: EndReason,
    ) {
        let message = match side {
            Side::Caller => "the caller cannot reject; use hangup",
            Side::Callee => "the call is accepted; use hangup",
            Side::Ringing => return self.end_by_callee(key, party, reason),
        };
        self.error_to(party, ErrorCode::BadState, message, Some(call_id.clone()));
    }

    /// A ringing callee session refused: the caller gets `reason`, the other ringing
    /// sessions `rejected_elsewhere`.
    fn end_by_callee(&mut self, key: CallKey, party: &SessionAddr, reason: EndReason) {
        let outcome = if reason == EndReason::Busy {
            Outcome::Busy
        } else {
            Outcome::Declined
        };
        self.finish_with(key, Some(outcome), |s, caller| match s {
            s if s == party => None,
            s if s == caller => Some(reason),
            _ => Some(EndReason::RejectedElsewhere),
        });
    }

    fn hangup(&mut self, key: CallKey, side: Side, party: &SessionAddr) {
        let ringing = self
            .calls
            .get(&key)
            .is_some_and(|c| c.ring_deadline().is_some());
        match side {
            Side::Ringing => self.end_by_callee(key, party, EndReason::Declined),
            Side::Caller | Side::Callee => {
                let outcome = ringing.then_some(Outcome::Cancelled);
                self.finish_with(key, outcome, |s, _| {
                    (s != party).then_some(EndReason::Hangup)
                });
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

    /// Ends call `key`: everyone still in it gets `ended` with `reason`.
    pub(super) fn finish(&mut self, key: CallKey, reason: EndReason, outcome: Option<Outcome>) {
        self.finish_with(key, outcome, |_, _| Some(reason));
    }

    /// Ends call `key`; `reason_for(party, caller)` says what each party is told (`None`:
    /// nothing, for the one who ended it).
    pub(super) fn finish_with(
        &mut self,
        key: CallKey,
        outcome: Option<Outcome>,
        reason_for: impl Fn(&SessionAddr, &SessionAddr) -> Option<EndReason>,
    ) {
        let Some(call) = self.calls.remove(&key) else {
            return;
        };
        self.pending_invites.remove(&key);
        if let Some(at) = call.ring_deadline() {
            self.deadlines.cancel(at, Timer::Ring(key));
        }
        if let Some(outcome) = outcome {
            self.metrics.outcome(outcome);
        }
        self.metrics.calls().dec();
        info!(call = %call.call_id, from = %call.caller_user, to = %call.callee_user, "call ended");
        for party in call.parties() {
            let msg = reason_for(&party, &call.caller)
                .map(|reason| Arc::new(ServerMessage::ended(call.call_id.clone(), reason)));
            self.send_to(&party, key, &call.call_id, msg, true);
        }
    }

    /// `party` vanished from call `key`.
    pub(super) fn leave_call(&mut self, key: CallKey, party: &SessionAddr) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(side) = call.side(party) else {
            return; // already out of it (a late `Left` after a refused ring)
        };
        match &mut call.state {
            CallState::Ringing { sessions, .. } if side == Side::Ringing && sessions.len() > 1 => {
                sessions.retain(|s| s != party);
            }
            CallState::Ringing { .. } => {
                self.finish(key, EndReason::PeerLost, Some(Outcome::PeerLost))
            }
            CallState::Connected { .. } => self.finish(key, EndReason::PeerLost, None),
        }
    }
}
