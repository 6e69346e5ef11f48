//! A session moves to another node: its client resumed there (through a load balancer, or
//! because its node drains). The session's node hands it over; the calls it is in follow.
//!
//! 1. The new node gets `hello` with a resume token of another node's session (the token
//!    names its node): it keeps the connection waiting and sends that node a
//!    [`NodeMessage::Claim`].
//! 2. The old node takes the session out (closing its old socket with 4000 if it still had
//!    one), rewinds it to the client's `received`, renames it in the calls that live there,
//!    tells the homes of its other calls on third nodes ([`NodeMessage::Moved`]), and sends
//!    the session ([`NodeMessage::Handover`]). It keeps a forwarding entry for a while and
//!    relays what still arrives for the old id ([`NodeMessage::Relayed`]).
//! 3. The new node installs the session and writes `welcome` (`resumed: true`) and the
//!    queue. For each call living on another node than the old one (a third node, or the
//!    new node itself), messages may still be on their way through the old node: the new
//!    node holds that call's direct traffic until the home's [`NodeMessage::Fence`] comes
//!    back relayed by the old node, behind everything relayed before it. So the client gets
//!    every message once and in order.
//!
//! A claim unanswered within [`CLAIM_PATIENCE`] (the old node died) gives the client a fresh
//! session, as an expired token does on one node.

use std::time::Duration;

use signaling_protocol::{ClientMessage, IceServer, UserName};
use tracing::{info, warn};

use super::{CLOSE_TAKEN_OVER, Output, Switchboard, Timer};
use crate::call::{CallKey, CallState};
use crate::node::{CallRef, Delivery, MovedSession, NodeId, NodeMessage, SessionAddr};
use crate::registry::Registry;
use crate::session::{ConnId, Membership, Session, SessionId};

/// How long a claimed session may take to arrive before the client gets a fresh one.
pub const CLAIM_PATIENCE: Duration = Duration::from_secs(5);

/// A client waiting for its session to arrive from another node.
#[derive(Debug)]
pub(crate) struct Claim {
    /// Its connection; `None` once it closed.
    pub conn: Option<ConnId>,
    pub user: UserName,
    pub received: Option<u64>,
    pub ice_servers: Vec<IceServer>,
    pub deadline: std::time::Instant,
    /// Messages for the session that came before it (a new home heard of the move before
    /// the session arrived): acted on once it did, or once the claim failed.
    pub early: Vec<(NodeId, NodeMessage)>,
    /// Calls adopted here while the session was on its way (rehome.rs): (old home, key
    /// there, key here); the session takes part in them here once it arrives.
    pub adopted: Vec<(NodeId, CallKey, CallKey)>,
}

/// A session that moved to another node (its traffic is relayed until `resume_ttl` later):
/// where to, and how many of its calls' fences (each call living elsewhere sends one) are still to come
/// through here.
#[derive(Debug)]
pub(crate) struct MovedOut {
    pub to: SessionAddr,
    pub fences: usize,
}

/// A moved session's call whose traffic waits for the home's fence, relayed by `via` (the
/// session's old node).
#[derive(Debug)]
pub(crate) struct Fence {
    pub via: NodeId,
    pub held: Vec<Held>,
    /// The call's key and home after it changed home (rehome.rs) while the session moved:
    /// the fence may then come from the new home instead (whichever of the two learned of
    /// the move), and the new home's traffic waits here too.
    pub also: Option<(CallKey, NodeId)>,
}

/// Traffic of a moved session's call held until the call's home's fence comes through.
#[derive(Debug)]
pub(crate) enum Held {
    /// A message the client sent about the call (for its home on a third node).
    Input(ClientMessage),
    /// A delivery for the client.
    Deliver(Delivery),
}

/// Which node a resume token's session lives on (`node.random`), if it names one.
pub(crate) fn token_node(token: &str) -> Option<&str> {
    token.split_once('.').map(|(node, _)| node)
}

impl<R: Registry> Switchboard<R> {
    /// `hello` with `token` of a session on node `home`: the connection waits while the
    /// session is claimed.
    pub(super) fn claim(
        &mut self,
        conn: ConnId,
        user: UserName,
        token: &str,
        received: Option<u64>,
        ice_servers: Vec<IceServer>,
        home: NodeId,
    ) -> SessionId {
        let sid = SessionId(self.next_id());
        let deadline = self.now + CLAIM_PATIENCE;
        info!(user = %user, session = sid.0, from = %home, "claiming a session from another node");
        self.by_conn.insert(conn, sid);
        self.deadlines.insert(deadline, Timer::Claim(sid));
        self.send_node(
            home,
            NodeMessage::Claim {
                token: token.to_owned(),
                user: user.clone(),
                session: sid,
                received,
            },
        );
        self.claims.insert(
            sid,
            Claim {
                conn: Some(conn),
                user,
                received,
                ice_servers,
                deadline,
                early: Vec::new(),
                adopted: Vec::new(),
            },
        );
        sid
    }

    /// Renames party `old` of call `key` (living here) to `new`.
    fn rename_party(&mut self, key: CallKey, old: &SessionAddr, new: &SessionAddr) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.caller == *old {
            call.caller = new.clone();
        }
        match &mut call.state {
            CallState::Ringing { sessions, .. } => {
                for s in sessions.iter_mut().filter(|s| *s == old) {
                    *s = new.clone();
                }
            }
            CallState::Connected { callee } if callee == old => *callee = new.clone(),
            CallState::Connected { .. } => {}
        }
    }

    /// Node `from` claims the session with `token`: hand it over, or say there is none.
    pub(super) fn claimed(
        &mut self,
        from: NodeId,
        token: &str,
        user: &UserName,
        new_sid: SessionId,
        received: Option<u64>,
    ) {
        let found = self
            .by_token
            .get(token)
            .copied()
            .filter(|sid| self.sessions.get(sid).is_some_and(|s| s.user == *user));
        let Some(sid) = found else {
            let answer = NodeMessage::Handover {
                session: new_sid,
                old: SessionId(0),
                moved: None,
            };
            return self.send_node(from, answer);
        };
        let Some(mut s) = self.sessions.remove(&sid) else {
            return;
        };
        self.held_bytes = self.held_bytes.saturating_sub(s.held_bytes());
        self.early_fences.retain(|(s, _, _)| *s != sid);
        self.registry.remove(&s.user, sid);
        self.outputs.push_back(Output::Unregistered {
            user: s.user.clone(),
            session: sid,
        });
        self.by_token.remove(&s.token);
        if let Some(at) = s.expires.take() {
            self.deadlines.cancel(at, Timer::Resume(sid));
        }
        if let Some(conn) = s.conn.take() {
            self.by_conn.remove(&conn);
            self.outputs.push_back(Output::Close {
                conn,
                code: CLOSE_TAKEN_OVER,
                reason: "session resumed elsewhere",
            });
        }
        self.metrics.sessions().dec();
        s.acks |= received.is_some();
        let missing = s.rewind(received, self.now);
        if missing > 0 {
            warn!(
                session = sid.0,
                missing, "moved session missed messages beyond the replay buffer"
            );
        }
        let (old, new) = (
            self.here(sid),
            SessionAddr {
                node: from.clone(),
                session: new_sid,
            },
        );
        let mut memberships: Vec<_> = std::mem::take(&mut s.calls).into_iter().collect();
        memberships.sort_by(|a, b| a.0.cmp(&b.0));
        let mut calls = Vec::with_capacity(memberships.len());
        let mut fences = 0;
        for (call_id, membership) in memberships {
            let call = match membership {
                Membership::Home(key) => {
                    self.rename_party(key, &old, &new);
                    CallRef {
                        home: self.node.clone(),
                        key,
                    }
                }
                Membership::Remote(r) => {
                    // Its home sends a fence this way (after `Moved`, or the new node does).
                    fences += 1;
                    if r.home != from {
                        let moved = NodeMessage::Moved {
                            call: r.key,
                            old: sid,
                            new: new.clone(),
                        };
                        self.send_node(r.home.clone(), moved);
                    }
                    r
                }
            };
            calls.push((call_id, call));
        }
        let forget = self.now + self.settings.resume_ttl;
        let out = MovedOut { to: new, fences };
        self.moved_out.insert(sid, out);
        self.deadlines.insert(forget, Timer::MovedOut(sid));
        info!(user = %s.user, session = sid.0, to = %from, "session moved to another node");
        let (user, token, acks) = (s.user.clone(), s.token.clone(), s.acks);
        let (queue, delivered) = s.export();
        let moved = MovedSession {
            user,
            token,
            acks,
            delivered,
            queue,
            calls,
        };
        self.send_node(
            from,
            NodeMessage::Handover {
                session: new_sid,
                old: sid,
                moved: Some(Box::new(moved)),
            },
        );
    }

    /// The session claimed as `sid` arrived from node `from` (where it was `old`), or there
    /// was none (`moved` `None`).
    pub(super) fn handed_over(
        &mut self,
        from: &NodeId,
        sid: SessionId,
        old: SessionId,
        moved: Option<Box<MovedSession>>,
    ) {
        let Some(mut claim) = self.claims.remove(&sid) else {
            return;
        };
        self.deadlines.cancel(claim.deadline, Timer::Claim(sid));
        let early = std::mem::take(&mut claim.early);
        let adopted = std::mem::take(&mut claim.adopted);
        match moved {
            Some(moved) => self.install(from, sid, old, claim, *moved),
            None => self.claim_failed(claim),
        }
        for (was, old, key) in adopted {
            let here = self.node.clone();
            self.switch_calls(&was, old, &here, key, &[sid]);
        }
        for (from, msg) in early {
            self.node_message(from, msg);
        }
    }

    /// No session came: the client gets a fresh one, as for an unknown token.
    fn claim_failed(&mut self, claim: Claim) {
        let Some(conn) = claim.conn else {
            return;
        };
        self.by_conn.remove(&conn);
        if !self.room_for_a_session(&claim.user) {
            self.outputs.push_back(Output::Close {
                conn,
                code: super::CLOSE_POLICY,
                reason: "too many sessions",
            });
            return;
        }
        let fresh = self.start_session(conn, claim.user, claim.received);
        self.welcome(fresh, conn, false, claim.ice_servers);
    }

    fn install(
        &mut self,
        from: &NodeId,
        sid: SessionId,
        old: SessionId,
        claim: Claim,
        moved: MovedSession,
    ) {
        // A token of its own: it names this node, where the next resume must claim it (the
        // client keeps the token of its latest `welcome`).
        let token = self.new_token();
        let mut s = Session::moved_in(
            moved.user,
            token,
            moved.acks,
            moved.delivered,
            moved.queue,
            self.now,
        );
        let (was, now_at) = (
            SessionAddr {
                node: from.clone(),
                session: old,
            },
            self.here(sid),
        );
        for (call_id, call) in moved.calls {
            if call.home == self.node {
                self.rename_party(call.key, &was, &now_at);
                s.calls.insert(call_id, Membership::Home(call.key));
            } else {
                s.calls.insert(call_id, Membership::Remote(call.clone()));
            }
            if call.home != *from {
                // Until the home's fence comes back through the old node.
                let fence = Fence {
                    via: from.clone(),
                    held: Vec::new(),
                    also: None,
                };
                self.fences
                    .insert((sid, call.key, call.home.clone()), fence);
                if call.home == self.node {
                    let fence = NodeMessage::Fence {
                        call: call.key,
                        old,
                    };
                    let here = self.node.clone();
                    self.fence_after_holds(call.key, from, fence, &here);
                }
            }
        }
        info!(user = %s.user, session = sid.0, from = %from, queued = s.queued(), "session moved here");
        self.registry.insert(&s.user, sid);
        self.unannounced.insert(sid);
        self.outputs.push_back(Output::Registered {
            user: s.user.clone(),
            session: sid,
        });
        self.by_token.insert(s.token.clone(), sid);
        self.metrics.sessions().inc();
        self.held_bytes += s.held_bytes();
        match claim.conn {
            Some(conn) => {
                s.attach(conn, self.now);
                self.sessions.insert(sid, Box::new(s));
                self.welcome(sid, conn, true, claim.ice_servers);
            }
            None => {
                let at = self.now + self.settings.resume_ttl;
                s.expires = Some(at);
                self.sessions.insert(sid, Box::new(s));
                self.deadlines.insert(at, Timer::Resume(sid));
            }
        }
    }

    /// A claim that got no answer in time: the old node is gone.
    pub(super) fn claim_timeout(&mut self, sid: SessionId) {
        if let Some(mut claim) = self.claims.remove(&sid) {
            warn!(
                session = sid.0,
                "claimed session never arrived: starting a fresh one"
            );
            let early = std::mem::take(&mut claim.early);
            self.claim_failed(claim);
            for (from, msg) in early {
                self.node_message(from, msg);
            }
        }
    }

    /// A message from `home` for `old`, which moved: relayed to its new node.
    pub(super) fn relay(&mut self, home: NodeId, old: SessionId, msg: NodeMessage) -> bool {
        let Some(out) = self.moved_out.get_mut(&old) else {
            return false;
        };
        if matches!(msg, NodeMessage::Fence { .. }) {
            out.fences = out.fences.saturating_sub(1);
        }
        let new = out.to.clone();
        let msg = match msg {
            NodeMessage::Deliver(d) => NodeMessage::Deliver(Delivery {
                session: new.session,
                ..d
            }),
            NodeMessage::Fence { call, .. } => NodeMessage::Fence {
                call,
                old: new.session,
            },
            NodeMessage::CallMoved {
                call,
                home: to,
                key,
                ..
            } => NodeMessage::CallMoved {
                call,
                home: to,
                key,
                sessions: vec![new.session],
            },
            _ => return false,
        };
        self.send_node(
            new.node,
            NodeMessage::Relayed {
                home,
                msg: Box::new(msg),
            },
        );
        true
    }

    /// The old node of a party of call `key` (living here) says it moved: rename it, and
    /// send the fence back the way the old traffic went.
    pub(super) fn party_moved(
        &mut self,
        from: NodeId,
        key: CallKey,
        old: SessionId,
        new: SessionAddr,
    ) {
        let was = SessionAddr {
            node: from.clone(),
            session: old,
        };
        self.rename_party(key, &was, &new);
        let fence = NodeMessage::Fence { call: key, old };
        self.fence_after_holds(key, &from, fence, &new.node);
    }

    /// Sends the fence of call `key` (living here) to a party's old node `from`; the party
    /// is on node `to` now. If the call was adopted and still holds its traffic with `from`
    /// (rehome.rs), the fence goes behind what is held, and the traffic with `to` waits until
    /// then: the party gets what was on its way to its old address first.
    fn fence_after_holds(&mut self, key: CallKey, from: &NodeId, fence: NodeMessage, to: &NodeId) {
        match self.hold_mut(key, from) {
            Some(held) => {
                held.push(crate::rehome::HeldCall::Send(fence));
                self.hold_behind(key, from, to);
            }
            None => self.send_node(from.clone(), fence),
        }
    }

    /// Where traffic of `sid` about call `key` living on `home` waits, if it waits for a
    /// fence.
    pub(super) fn fence_mut(
        &mut self,
        sid: SessionId,
        key: CallKey,
        home: &NodeId,
    ) -> Option<&mut Vec<Held>> {
        let at = self.fence_of(sid, key, home)?;
        self.fences.get_mut(&at).map(|fence| &mut fence.held)
    }

    /// The fence `sid` waits behind for its call `call_id`, known here as `key` on `home`:
    /// [`Self::fence_mut`], or, while the session does not know yet that the call changed
    /// home (rehome.rs), the fence of the call as the session knows it.
    pub(super) fn call_fence_mut(
        &mut self,
        sid: SessionId,
        call_id: &signaling_protocol::CallId,
        key: CallKey,
        home: &NodeId,
    ) -> Option<&mut Vec<Held>> {
        if self.fences.is_empty() {
            return None;
        }
        let at = self.fence_of(sid, key, home).or_else(|| {
            let (k, h) = match self.sessions.get(&sid)?.calls.get(call_id)? {
                Membership::Home(k) => (*k, self.node.clone()),
                Membership::Remote(r) => (r.key, r.home.clone()),
            };
            self.fence_of(sid, k, &h)
        })?;
        self.fences.get_mut(&at).map(|fence| &mut fence.held)
    }

    /// The fence `sid` waits behind for call `key` on `home`: the one set up for it, or the
    /// one of the call before it changed home.
    fn fence_of(
        &self,
        sid: SessionId,
        key: CallKey,
        home: &NodeId,
    ) -> Option<(SessionId, CallKey, NodeId)> {
        if self.fences.is_empty() {
            return None;
        }
        let direct = (sid, key, home.clone());
        if self.fences.contains_key(&direct) {
            return Some(direct);
        }
        self.fences
            .iter()
            .find(|((s, _, _), f)| *s == sid && f.also.as_ref() == Some(&(key, home.clone())))
            .map(|(at, _)| at.clone())
    }

    /// The fence of call `key` on `home` came through for `sid`: what was held goes on, in
    /// order.
    pub(super) fn release(&mut self, sid: SessionId, key: CallKey, home: &NodeId) {
        let Some(fence) = self
            .fence_of(sid, key, home)
            .and_then(|at| self.fences.remove(&at))
        else {
            // Its call may have changed home meanwhile (rehome.rs), and the new home's fence
            // come before the session learned of it: kept for then ([`Self::call_rekeyed`]).
            if self.sessions.contains_key(&sid) {
                self.early_fences.insert((sid, key, home.clone()));
            }
            return;
        };
        for h in fence.held {
            match h {
                // To wherever the call lives now (it may have changed home meanwhile).
                Held::Input(msg) => self.call_message(sid, msg),
                Held::Deliver(d) => self.apply(d),
            }
        }
    }

    /// Session `sid` (moved here, waiting for a fence of its call `old` on `was`) learns
    /// that the call now lives on `home` as `key` ([`NodeMessage::CallMoved`]): the fence
    /// may come from either, and the new home's traffic waits behind it too. If the new
    /// home's came already, it is released.
    pub(super) fn call_rekeyed(
        &mut self,
        sid: SessionId,
        (was, old): (&NodeId, CallKey),
        (home, key): (&NodeId, CallKey),
    ) {
        if let Some(fence) = self.fences.get_mut(&(sid, old, was.clone())) {
            fence.also = Some((key, home.clone()));
            if self.early_fences.remove(&(sid, key, home.clone())) {
                self.release(sid, key, home);
            }
        }
    }

    /// Node `node` is gone: fences that would have come from it or through it never will;
    /// release them.
    pub(super) fn release_fences_of(&mut self, node: &NodeId) {
        let mut waiting: Vec<(SessionId, CallKey, NodeId)> = self
            .fences
            .iter()
            .filter(|((_, _, home), fence)| {
                home == node
                    || fence.via == *node
                    || fence.also.as_ref().is_some_and(|(_, h)| h == node)
            })
            .map(|(k, _)| k.clone())
            .collect();
        waiting.sort();
        for (sid, key, home) in waiting {
            self.release(sid, key, &home);
        }
    }
}
