//! A call changes home: its home node drains (SIGTERM in a cluster) and hands each call
//! whose parties have all moved away to the caller's node, so that the node can exit and
//! the call goes on.
//!
//! 1. The draining node D, once no party of call K is on it any more, sends the caller's
//!    node X [`NodeMessage::Adopt`] with the call's state. From then on it forwards whatever
//!    arrives about K ([`NodeMessage::Forwarded`]) to X.
//! 2. X installs the call under a key of its own, K'; its own parties now take part in it
//!    directly. It answers [`NodeMessage::Adopted`] and holds the call's traffic with each
//!    party node (inputs from it, deliveries to it) until that node's fence comes through D.
//! 3. D, on `Adopted` (behind everything X sent it about K), sends X its own fence, and
//!    tells every other party node N [`NodeMessage::CallMoved`] (behind every delivery D sent
//!    it about K). N switches its sessions to (X, K') and answers [`NodeMessage::CallFence`]
//!    (behind every input it sent D about K), which D forwards to X.
//! 4. X releases what it held for N, in order. So every party gets each message once and in
//!    order, and nothing X sends directly overtakes what still goes through D.
//!
//! If D dies meanwhile, X releases what waits on D ([`Switchboard::node_down`]); a caller's
//! node that cannot be reached ends the call with `peer_lost`.

use signaling_protocol::{ClientMessage, EndReason};
use tracing::{info, warn};

use super::{Switchboard, Timer};
use crate::call::{Call, CallKey, CallState};
use crate::metrics::Outcome;
use crate::node::{
    CallRef, CallTransfer, Delivery, NodeId, NodeMessage, SessionAddr, TransferState,
};
use crate::registry::Registry;
use crate::session::{Membership, SessionId};

/// A call this (draining) node handed to another.
#[derive(Debug)]
pub(crate) struct Rehomed {
    /// The adopting node.
    pub to: NodeId,
    /// The other party nodes and their sessions in the call, told once `to` adopted it.
    pub parties: Vec<(NodeId, Vec<SessionId>)>,
    /// Fences still to come through here: the adopter's (its `Adopted`) and each party
    /// node's.
    pub waiting: usize,
}

/// An adopted call's traffic with one party node, held until that node's fence comes
/// through the old home `via`.
#[derive(Debug)]
pub(crate) struct CallHold {
    pub via: NodeId,
    pub held: Vec<HeldCall>,
    /// Releases still to come before this one goes: the node's fence, and the holds this
    /// one is chained behind ([`Switchboard::hold_behind`]).
    pub waiting: usize,
    /// Holds chained behind this one: each waits for one release less once this one goes.
    pub then: Vec<NodeId>,
}

/// What an adopted call holds for a party node.
#[derive(Debug)]
pub(crate) enum HeldCall {
    /// A party sent this about the call.
    Input(SessionAddr, ClientMessage),
    /// A party left the call.
    Left(SessionAddr),
    /// A delivery for a party on that node.
    Deliver(Delivery),
    /// Another message for that node, in order with the deliveries (a session move's fence).
    Send(NodeMessage),
}

impl<R: Registry> Switchboard<R> {
    /// While draining: hands every call that lives here and has no party here any more
    /// (and no lookup on its way) to its caller's node.
    pub(super) fn hand_over_calls(&mut self) {
        let mut ready: Vec<CallKey> = self
            .calls
            .iter()
            .filter(|(key, call)| {
                !self.pending_invites.contains_key(key)
                    && !self.holds_traffic(**key)
                    && call.parties().iter().all(|p| p.node != self.node)
            })
            .map(|(key, _)| *key)
            .collect();
        ready.sort_unstable();
        for key in ready {
            self.hand_over_call(key);
        }
    }

    fn hand_over_call(&mut self, key: CallKey) {
        let Some(call) = self.calls.remove(&key) else {
            return;
        };
        self.metrics.calls().dec();
        let to = call.caller.node.clone();
        let state = match call.state {
            CallState::Ringing {
                sessions,
                deadline,
                unanswered,
                rang,
                refused,
            } => {
                self.deadlines.cancel(deadline, Timer::Ring(key));
                TransferState::Ringing {
                    sessions,
                    ring_left: deadline.saturating_duration_since(self.now),
                    unanswered,
                    rang,
                    refused,
                }
            }
            CallState::Connected { callee } => TransferState::Connected { callee },
        };
        let transfer = CallTransfer {
            call_id: call.call_id,
            caller: call.caller,
            caller_user: call.caller_user,
            callee_user: call.callee_user,
            state,
        };
        let mut parties: Vec<(NodeId, Vec<SessionId>)> = Vec::new();
        for p in transfer.parties().into_iter().filter(|p| p.node != to) {
            match parties.iter_mut().find(|(n, _)| *n == p.node) {
                Some((_, sids)) => sids.push(p.session),
                None => parties.push((p.node, vec![p.session])),
            }
        }
        info!(call = %transfer.call_id, to = %to, "draining: handing the call to the caller's node");
        self.rehomed.insert(
            key,
            Rehomed {
                to: to.clone(),
                waiting: parties.len() + 1,
                parties,
            },
        );
        self.send_node(
            to,
            NodeMessage::Adopt {
                call: key,
                state: Box::new(transfer),
            },
        );
    }

    /// Whether call `key` (adopted here) still waits for a party node's fence.
    fn holds_traffic(&self, key: CallKey) -> bool {
        self.call_holds.keys().any(|(k, _)| *k == key)
    }

    /// The caller's node could not be reached with the call: it ends for the others.
    pub(super) fn adopt_failed(&mut self, key: CallKey, transfer: CallTransfer) {
        self.rehomed.remove(&key);
        warn!(call = %transfer.call_id, "the caller's node is unreachable: the call ends");
        let mut others = transfer.parties();
        others.retain(|p| *p != transfer.caller);
        let ended = std::sync::Arc::new(signaling_protocol::ServerMessage::ended(
            transfer.call_id.clone(),
            EndReason::PeerLost,
        ));
        self.metrics.outcome(Outcome::PeerLost);
        for p in others {
            let d = Delivery {
                session: p.session,
                call: Some(key),
                call_id: Some(transfer.call_id.clone()),
                msg: Some((*ended).clone()),
                leave: true,
            };
            self.send_node(p.node, NodeMessage::Deliver(d));
        }
    }

    /// Node `from` (draining) hands call `old` over: it lives here from now on.
    pub(super) fn adopt(&mut self, from: NodeId, old: CallKey, t: CallTransfer) {
        let key = CallKey(self.next_id());
        let was = Membership::Remote(CallRef {
            home: from.clone(),
            key: old,
        });
        let mut nodes: Vec<NodeId> = Vec::new();
        for p in t.parties() {
            if p.node == self.node
                && let Some(s) = self.sessions.get_mut(&p.session)
                && let Some(m) = s.calls.get_mut(&t.call_id)
                && *m == was
            {
                *m = Membership::Home(key);
                // A session that moved here and still waits for the old home's fence.
                let here = self.node.clone();
                self.call_rekeyed(p.session, (&from, old), (&here, key));
            } else if p.node == self.node
                && let Some(claim) = self.claims.get_mut(&p.session)
            {
                // On its way here: it takes part once it arrives.
                claim.adopted.push((from.clone(), old, key));
            }
            if !nodes.contains(&p.node) {
                nodes.push(p.node);
            }
        }
        let state = match t.state {
            TransferState::Ringing {
                sessions,
                ring_left,
                unanswered,
                rang,
                refused,
            } => {
                let deadline = self.now + ring_left;
                self.deadlines.insert(deadline, Timer::Ring(key));
                CallState::Ringing {
                    sessions,
                    deadline,
                    unanswered,
                    rang,
                    refused,
                }
            }
            TransferState::Connected { callee } => CallState::Connected { callee },
        };
        info!(call = %t.call_id, from = %from, "adopted a call from a draining node");
        self.calls.insert(
            key,
            Call {
                call_id: t.call_id,
                caller: t.caller,
                caller_user: t.caller_user,
                callee_user: t.callee_user,
                state,
            },
        );
        self.metrics.calls().inc();
        self.adopted.insert((from.clone(), old), key);
        for node in nodes {
            let hold = CallHold {
                via: from.clone(),
                held: Vec::new(),
                waiting: 1,
                then: Vec::new(),
            };
            self.call_holds.insert((key, node), hold);
        }
        self.send_node(from, NodeMessage::Adopted { call: old, key });
    }

    /// The adopter of call `old` answered: it gets its own fence, and the other party nodes
    /// learn where the call lives now.
    pub(super) fn call_adopted(&mut self, from: &NodeId, old: CallKey, key: CallKey) {
        let Some(r) = self.rehomed.get_mut(&old) else {
            return;
        };
        if r.to != *from {
            return;
        }
        r.waiting = r.waiting.saturating_sub(1);
        let (to, parties) = (r.to.clone(), r.parties.clone());
        let fence = NodeMessage::Forwarded {
            from: to.clone(),
            msg: Box::new(NodeMessage::CallFence { call: old }),
        };
        self.send_node(to.clone(), fence);
        for (node, sessions) in parties {
            let moved = NodeMessage::CallMoved {
                call: old,
                home: to.clone(),
                key,
                sessions,
            };
            self.send_node(node, moved);
        }
    }

    /// Call `old` of node `from` lives on `home` as `key` now: this node's `sessions` in it
    /// switch, and the fence goes back the way their traffic went.
    pub(super) fn call_moved(
        &mut self,
        from: NodeId,
        old: CallKey,
        home: NodeId,
        key: CallKey,
        sessions: &[SessionId],
    ) {
        for &sid in sessions {
            if self.moved_out.contains_key(&sid) {
                // It moved on meanwhile: its new node learns through here, in order with
                // the rest of what the old home sent it.
                let moved = NodeMessage::CallMoved {
                    call: old,
                    home: home.clone(),
                    key,
                    sessions: Vec::new(),
                };
                self.relay(from.clone(), sid, moved);
            }
        }
        self.switch_calls(&from, old, &home, key, sessions);
        self.send_node(from, NodeMessage::CallFence { call: old });
    }

    /// `sessions` of this node in call `old` of node `was` take part in it on `home` as
    /// `key` now.
    pub(super) fn switch_calls(
        &mut self,
        was: &NodeId,
        old: CallKey,
        home: &NodeId,
        key: CallKey,
        sessions: &[SessionId],
    ) {
        let before = Membership::Remote(CallRef {
            home: was.clone(),
            key: old,
        });
        let after = self.membership(home, key);
        for &sid in sessions {
            let Some(s) = self.sessions.get_mut(&sid) else {
                continue;
            };
            let mut switched = false;
            for m in s.calls.values_mut().filter(|m| **m == before) {
                *m = after.clone();
                switched = true;
            }
            if switched {
                self.call_rekeyed(sid, (was, old), (home, key));
            }
        }
    }

    /// A message from node `from` about a call that moved away from here: forwarded to its
    /// new home. Returns it if it is about no such call.
    pub(super) fn forward(&mut self, from: NodeId, msg: NodeMessage) -> Option<NodeMessage> {
        let Some(call) = msg.call_at_receiver() else {
            return Some(msg);
        };
        let Some(r) = self.rehomed.get_mut(&call) else {
            return Some(msg);
        };
        if matches!(msg, NodeMessage::CallFence { .. }) {
            r.waiting = r.waiting.saturating_sub(1);
        }
        let to = r.to.clone();
        self.send_node(
            to,
            NodeMessage::Forwarded {
                from,
                msg: Box::new(msg),
            },
        );
        None
    }

    /// A message about an adopted call, forwarded by its old home `via`: it came from
    /// `from` before that node's fence, so it goes ahead of anything held.
    pub(super) fn forwarded(&mut self, via: &NodeId, from: NodeId, msg: NodeMessage) {
        let Some(old) = msg.call_at_receiver() else {
            return;
        };
        let Some(&key) = self.adopted.get(&(via.clone(), old)) else {
            return;
        };
        let party = |session| SessionAddr {
            node: from.clone(),
            session,
        };
        match msg {
            NodeMessage::Input { session, msg, .. } => {
                self.call_input_now(key, party(session), msg);
            }
            NodeMessage::RingAnswer {
                session, answer, ..
            } => self.ring_answered(key, party(session), answer),
            NodeMessage::Left { session, .. } => self.leave_call(key, &party(session)),
            NodeMessage::Moved { old, new, .. } => self.party_moved(from, key, old, new),
            NodeMessage::CallFence { .. } => self.release_hold(key, &from, false),
            _ => {}
        }
    }

    /// Where traffic of adopted call `key` with node `node` waits for that node's fence, if
    /// it does.
    pub(super) fn hold_mut(&mut self, key: CallKey, node: &NodeId) -> Option<&mut Vec<HeldCall>> {
        self.call_holds
            .get_mut(&(key, node.clone()))
            .map(|h| &mut h.held)
    }

    /// Node `node`'s fence for adopted call `key` came through: what was held goes on, in
    /// order.
    /// Adopted call `key` holds its traffic with `from` and a party moved from there to
    /// node `to`: the traffic with `to` waits behind it, so that what goes to the party's new
    /// address never overtakes what is held for its old one.
    pub(super) fn hold_behind(&mut self, key: CallKey, from: &NodeId, to: &NodeId) {
        if from == to {
            return;
        }
        let Some(first) = self.call_holds.get_mut(&(key, from.clone())) else {
            return;
        };
        let via = first.via.clone();
        first.then.push(to.clone());
        match self.call_holds.get_mut(&(key, to.clone())) {
            Some(hold) => hold.waiting += 1,
            None => {
                let hold = CallHold {
                    via,
                    held: Vec::new(),
                    waiting: 1,
                    then: Vec::new(),
                };
                self.call_holds.insert((key, to.clone()), hold);
            }
        }
    }

    /// One release of adopted call `key`'s hold on `node` came (its fence, or the hold it
    /// was chained behind); with none left to wait for, or `now`, what was held goes on.
    fn release_hold(&mut self, key: CallKey, node: &NodeId, now: bool) {
        let at = (key, node.clone());
        match self.call_holds.get_mut(&at) {
            Some(hold) if hold.waiting > 1 && !now => {
                hold.waiting -= 1;
                return;
            }
            Some(_) => {}
            None => return,
        }
        let Some(hold) = self.call_holds.remove(&at) else {
            return;
        };
        // Deliveries first: what the node sent before its fence (forwarded, acted on at
        // once) was answered then, and those answers were held behind what it sent after.
        let (deliveries, inputs): (Vec<HeldCall>, Vec<HeldCall>) = hold
            .held
            .into_iter()
            .partition(|h| matches!(h, HeldCall::Deliver(_) | HeldCall::Send(_)));
        for h in deliveries.into_iter().chain(inputs) {
            match h {
                HeldCall::Input(party, msg) => self.call_input_now(key, party, msg),
                HeldCall::Left(party) => self.leave_call(key, &party),
                HeldCall::Deliver(d) if *node == self.node => {
                    let here = self.node.clone();
                    self.delivered(&here, d, false);
                }
                HeldCall::Deliver(d) => self.send_node(node.clone(), NodeMessage::Deliver(d)),
                HeldCall::Send(msg) => self.send_node(node.clone(), msg),
            }
        }
        for next in hold.then {
            self.release_hold(key, &next, false);
        }
    }

    /// Node `node` is gone: holds waiting on its fence, or on fences through it, never will
    /// be released by one; release them now.
    pub(super) fn release_holds_of(&mut self, node: &NodeId) {
        let mut waiting: Vec<(CallKey, NodeId)> = self
            .call_holds
            .iter()
            .filter(|((_, n), hold)| n == node || hold.via == *node)
            .map(|(k, _)| k.clone())
            .collect();
        waiting.sort();
        for (key, n) in waiting {
            self.release_hold(key, &n, true);
            if n != *node && n != self.node {
                // The old home died before party node `n` fenced: `n` ended its side of the
                // call when it saw the old home go, so its parties leave it here too.
                let gone: Vec<SessionAddr> = self.calls.get(&key).map_or_else(Vec::new, |c| {
                    c.parties().into_iter().filter(|p| p.node == n).collect()
                });
                for p in gone {
                    self.leave_call(key, &p);
                }
            }
        }
        self.adopted.retain(|(via, _), _| via != node);
        self.rehomed.retain(|_, r| r.to != *node);
    }
}

impl CallTransfer {
    /// Every party: the callee sessions, then the caller.
    pub(crate) fn parties(&self) -> Vec<SessionAddr> {
        let mut all = match &self.state {
            TransferState::Ringing { sessions, .. } => sessions.clone(),
            TransferState::Connected { callee } => vec![callee.clone()],
        };
        all.push(self.caller.clone());
        all
    }
}
