//! The sans-IO core of the signaling server: sessions and calls.
//!
//! Input: a connection's `hello`, its other messages, its loss, and "time is now T".
//! Output: messages queued per session (the I/O layer drains them when told to
//! [`Output::Wake`]), connections to close, and the next deadline. Nothing here touches
//! a socket or reads a clock, so the tests drive it deterministically.
//!
//! Per connection, [`ConnectionPolicy`] decides the heartbeat (WebSocket pings, dropping a
//! silent connection) and the rate limit the same way: time is an input, the next deadline
//! an output.
#![warn(missing_docs)]

mod call;
mod calls;
#[cfg(test)]
mod cluster_tests;
mod connection_policy;
mod deadlines;
mod metrics;
mod moves;
mod node;
mod registry;
mod rehome;
mod session;
#[cfg(test)]
mod test_messages;
#[cfg(test)]
mod tests;

pub use call::CallKey;
pub use connection_policy::{Action, Admission, ConnectionLimits, ConnectionPolicy};
pub use metrics::Metrics;
pub use node::{
    CallRef, CallTransfer, Delivery, NodeId, NodeMessage, RingAnswer, SessionAddr, TransferState,
};
pub use registry::{MemoryRegistry, Registry};
pub use session::{ConnId, Outgoing, SessionId};

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use signaling_protocol::{
    CallId, ClientMessage, EndReason, ErrorCode, IceServer, PROTOCOL_VERSION, ServerMessage,
    UserName, Welcome,
};
use tracing::{debug, info, warn};

use crate::call::Call;
use crate::deadlines::Deadlines;
use crate::session::{Membership, Session};

/// Close code for a socket whose session was resumed on another socket.
pub const CLOSE_TAKEN_OVER: u16 = 4000;
/// Close code for "this node is draining: resume your session now" (through the load
/// balancer, which sends the client to another node). Clients reconnect at once, without
/// their usual backoff.
pub const CLOSE_MOVE: u16 = 4001;
/// Close code for policy reasons (slow reader, bad user, unauthorized).
pub const CLOSE_POLICY: u16 = 1008;
/// Close code for "going away": a silent connection dropped, the server shutting down.
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// The switchboard's knobs, taken from the server's configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Sent in `welcome.heartbeat_s` (whole seconds, at least 1).
    pub heartbeat: Duration,
    /// How long a detached session waits for a resume.
    pub resume_ttl: Duration,
    /// How long an invite rings before it ends with `timeout`.
    pub ring_timeout: Duration,
    /// Calls a session may take part in at once, ringing or connected.
    pub max_calls_per_session: usize,
    /// Sessions one user may have at once (devices, tabs). A new one over it first ends the
    /// user's oldest detached session; if all are connected, its `hello` is refused.
    pub max_sessions_per_user: usize,
    /// Queued messages past which a connected reader is dropped as too slow.
    pub send_queue: usize,
    /// Queued (or kept for replay) messages past which a detached session ends.
    pub resume_queue: usize,
    /// Bytes queued for one session (each message counted as its variable-length fields
    /// plus 128) past which it is treated as over its queue (a connected reader is dropped as too slow, a detached session ends);
    /// its replay buffer keeps at most as many bytes besides.
    pub queue_bytes: usize,
    /// Bytes queued and kept for replay, all sessions together, past which the session a
    /// message is for is treated as over its queue.
    pub total_queue_bytes: usize,
    /// Sent in `welcome.rate_per_s` and `welcome.rate_burst`: the message rate limit the
    /// I/O layer applies to each connection, so that clients can pace themselves under it.
    pub rate: Option<(u32, u32)>,
}

/// What the I/O layer must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// The session on this connection has messages queued: call [`Switchboard::take_outbox`].
    Wake(ConnId),
    /// Close this connection with a close frame.
    Close {
        /// The connection to close.
        conn: ConnId,
        /// The WebSocket close code.
        code: u16,
        /// The close frame's reason text.
        reason: &'static str,
    },
    /// In a cluster: find `user`'s sessions on every node and answer with
    /// [`Switchboard::lookup_done`] for `call` (an invite waits for it).
    Lookup {
        /// The call whose callee is looked up.
        call: CallKey,
        /// The callee.
        user: UserName,
    },
    /// In a cluster: carry `msg` to node `to`'s switchboard ([`Switchboard::from_node`]), in
    /// order with everything else sent to that node.
    Node {
        /// The node.
        to: NodeId,
        /// What its switchboard is told.
        msg: NodeMessage,
    },
    /// In a cluster: `user` has a new session here (the shell records it where other nodes
    /// look it up).
    Registered {
        /// The user.
        user: UserName,
        /// The session.
        session: SessionId,
    },
    /// In a cluster: `user`'s session here ended.
    Unregistered {
        /// The user.
        user: UserName,
        /// The session.
        session: SessionId,
    },
}

/// How a connection ended, as the I/O layer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disconnect {
    /// The client closed with code 1000: it signed off, and its session ends now.
    SignedOff,
    /// Anything else (a dropped socket, going away, an error): the session waits
    /// `resume_ttl` for a resume.
    Dropped,
}

/// Whether a session without a connection holds more than a detached session may:
/// `resume_queue` messages or `queue_bytes` bytes queued.
fn over_detached_limits(settings: &Settings, s: &Session) -> bool {
    s.queued() > settings.resume_queue || s.queued_bytes() > settings.queue_bytes
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Ring(CallKey),
    Resume(SessionId),
    /// A session claimed from another node has not arrived.
    Claim(SessionId),
    /// The forwarding entry of a session that moved away expires.
    MovedOut(SessionId),
}

/// Every session and call of the server, driven by inputs (`hello`, messages, a lost
/// connection, time) and drained of outputs ([`Self::poll_output`], [`Self::take_outbox`],
/// [`Self::poll_timeout`]).
pub struct Switchboard<R: Registry = MemoryRegistry> {
    settings: Settings,
    /// Boxed: a session is a few hundred bytes, and the map's spare capacity (up to half of
    /// it) would otherwise cost that much per empty slot, for every idle session.
    sessions: HashMap<SessionId, Box<Session>>,
    by_conn: HashMap<ConnId, SessionId>,
    by_token: HashMap<String, SessionId>,
    registry: R,
    calls: HashMap<CallKey, Call>,
    deadlines: Deadlines<Timer>,
    next_id: u64,
    rng: StdRng,
    outputs: VecDeque<Output>,
    /// Sessions whose queue overflowed while detached; ended once the current input is done.
    doomed: Vec<SessionId>,
    metrics: Metrics,
    now: Instant,
    /// [`Session::held_bytes`] of every session.
    held_bytes: usize,
    /// This node's name ([`Self::clustered`]).
    node: NodeId,
    /// Whether other nodes exist: invites look the callee up ([`Output::Lookup`]), and
    /// sessions are announced ([`Output::Registered`]).
    clustered: bool,
    /// Invites waiting for their lookup: the `invite` their callee's sessions will get.
    pending_invites: HashMap<CallKey, Outgoing>,
    /// Clients waiting for their session to arrive from another node (moves.rs).
    claims: HashMap<SessionId, moves::Claim>,
    /// Sessions that moved to another node: where to, and until when their traffic is
    /// relayed.
    moved_out: HashMap<SessionId, moves::MovedOut>,
    /// Calls of sessions that moved here whose traffic waits for the home's fence.
    fences: HashMap<(SessionId, CallKey, NodeId), moves::Fence>,
    /// Sessions whose presence the shell has not written yet ([`Self::registered`]).
    unannounced: std::collections::HashSet<SessionId>,
    /// This node drains ([`Self::drain`]): its clients go elsewhere, its calls follow.
    draining: bool,
    /// Calls handed to another node while draining (rehome.rs), by their key here.
    rehomed: HashMap<CallKey, rehome::Rehomed>,
    /// Calls adopted from a draining node: (that node, its key) → the key here.
    adopted: HashMap<(NodeId, CallKey), CallKey>,
    /// Adopted calls' traffic with a party node, held until its fence (rehome.rs).
    call_holds: HashMap<(CallKey, NodeId), rehome::CallHold>,
    /// Fences that came through before the session knew its call's new home (moves.rs).
    early_fences: std::collections::HashSet<(SessionId, CallKey, NodeId)>,
}

impl<R: Registry> Switchboard<R> {
    /// `seed` feeds the generator of resume tokens (ChaCha12, `StdRng`): tests pass a
    /// constant, the server 32 bytes from the OS. A resume token is a bearer secret for a
    /// session, so the generator gets the full 256-bit seed (a 64-bit one, as before, could
    /// in principle be searched).
    pub fn new(
        settings: Settings,
        registry: R,
        metrics: Metrics,
        seed: [u8; 32],
        now: Instant,
    ) -> Self {
        Self {
            settings,
            sessions: HashMap::new(),
            by_conn: HashMap::new(),
            by_token: HashMap::new(),
            registry,
            calls: HashMap::new(),
            deadlines: Deadlines::default(),
            next_id: 1,
            rng: StdRng::from_seed(seed),
            outputs: VecDeque::new(),
            doomed: Vec::new(),
            metrics,
            now,
            held_bytes: 0,
            node: NodeId::new("local"),
            clustered: false,
            pending_invites: HashMap::new(),
            claims: HashMap::new(),
            moved_out: HashMap::new(),
            fences: HashMap::new(),
            unannounced: std::collections::HashSet::new(),
            draining: false,
            rehomed: HashMap::new(),
            adopted: HashMap::new(),
            call_holds: HashMap::new(),
            early_fences: std::collections::HashSet::new(),
        }
    }

    /// The switchboard of node `node` of a cluster: it looks callees up and talks to the
    /// other nodes' switchboards through its outputs ([`Output::Lookup`], [`Output::Node`],
    /// [`Output::Registered`]).
    #[must_use]
    pub fn clustered(mut self, node: NodeId) -> Self {
        self.node = node;
        self.clustered = true;
        self
    }

    /// This node's name.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// Bytes queued and kept for replay, all sessions together ([`Settings::total_queue_bytes`]).
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Runs `f` on session `sid`, keeping [`Self::held_bytes`] in step with it.
    fn on_session<T>(&mut self, sid: SessionId, f: impl FnOnce(&mut Session) -> T) -> Option<T> {
        let s = self.sessions.get_mut(&sid)?;
        let before = s.held_bytes();
        let out = f(s);
        self.held_bytes = (self.held_bytes + s.held_bytes()).saturating_sub(before);
        Some(out)
    }

    /// A verified `hello` on `conn`: starts a session or resumes one, and returns it;
    /// `None` when the user already has `max_sessions_per_user` connected sessions (the
    /// caller refuses the `hello`).
    pub fn hello(
        &mut self,
        conn: ConnId,
        user: UserName,
        resume: Option<&str>,
        received: Option<u64>,
        ice_servers: Vec<IceServer>,
        now: Instant,
    ) -> Option<SessionId> {
        self.now = now;
        if let Some(&sid) = self.by_conn.get(&conn) {
            self.second_hello(sid);
            self.settle();
            return Some(sid);
        }
        let resumable = resume
            .and_then(|token| self.by_token.get(token).copied())
            .filter(|sid| self.sessions.get(sid).is_some_and(|s| s.user == user));
        let elsewhere = resume
            .filter(|_| self.clustered && resumable.is_none())
            .and_then(|token| moves::token_node(token).map(|node| (token, NodeId::new(node))))
            .filter(|(_, node)| *node != self.node);
        if let Some((token, home)) = elsewhere {
            let sid = self.claim(conn, user, token, received, ice_servers, home);
            self.settle();
            return Some(sid);
        }
        let (sid, resumed) = match resumable {
            Some(sid) => {
                self.reattach(sid, conn, received);
                (sid, true)
            }
            None => {
                if !self.room_for_a_session(&user) {
                    return None;
                }
                (self.start_session(conn, user, received), false)
            }
        };
        self.welcome(sid, conn, resumed, ice_servers);
        self.settle();
        Some(sid)
    }

    /// Queues `welcome` for session `sid` on `conn`, ahead of everything else.
    fn welcome(
        &mut self,
        sid: SessionId,
        conn: ConnId,
        resumed: bool,
        ice_servers: Vec<IceServer>,
    ) {
        let Some(session) = self.sessions.get(&sid) else {
            return;
        };
        let welcome = ServerMessage::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            user: session.user.clone(),
            session: session.token.clone(),
            resumed,
            heartbeat_s: self.settings.heartbeat.as_secs().max(1),
            resume_ttl_s: self.settings.resume_ttl.as_secs(),
            ice_servers,
            rate_per_s: self.settings.rate.map(|(per_s, _)| per_s),
            rate_burst: self.settings.rate.map(|(_, burst)| burst),
        });
        let now = self.now;
        self.on_session(sid, |s| s.push_welcome(welcome, now));
        // A session not yet announced to the other nodes gets its `welcome` once it is
        // ([`Self::registered`]): a client that has it can be called from every node.
        if !self.unannounced.contains(&sid) {
            self.outputs.push_back(Output::Wake(conn));
        }
    }

    /// The shell wrote (or failed to write: Redis away) the presence of `session`
    /// ([`Output::Registered`]): its `welcome` may go.
    pub fn registered(&mut self, session: SessionId) {
        if self.unannounced.remove(&session)
            && let Some(conn) = self.sessions.get(&session).and_then(|s| s.conn)
        {
            self.outputs.push_back(Output::Wake(conn));
        }
    }

    /// Whether `user` may start another session: under the cap, or after ending its oldest
    /// detached session (one that waits for a resume; its calls end with `peer_lost`).
    fn room_for_a_session(&mut self, user: &UserName) -> bool {
        let sessions = self.registry.sessions(user);
        if sessions.len() < self.settings.max_sessions_per_user {
            return true;
        }
        let oldest_detached = sessions
            .into_iter()
            .filter(|sid| self.sessions.get(sid).is_some_and(|s| s.conn.is_none()))
            .min();
        match oldest_detached {
            Some(sid) => {
                info!(user = %user, session = sid.0, "session cap: ending the oldest detached session");
                self.end_session(sid);
                true
            }
            None => {
                warn!(user = %user, "session cap reached: hello refused");
                false
            }
        }
    }

    fn start_session(&mut self, conn: ConnId, user: UserName, received: Option<u64>) -> SessionId {
        let sid = SessionId(self.next_id());
        let token = self.new_token();
        info!(user = %user, session = sid.0, "session started");
        self.registry.insert(&user, sid);
        if self.clustered {
            self.unannounced.insert(sid);
            self.outputs.push_back(Output::Registered {
                user: user.clone(),
                session: sid,
            });
        }
        self.by_token.insert(token.clone(), sid);
        self.by_conn.insert(conn, sid);
        self.sessions.insert(
            sid,
            Box::new(Session::new(
                user,
                token,
                conn,
                received.is_some(),
                self.now,
            )),
        );
        self.metrics.sessions().inc();
        sid
    }

    /// A fresh resume token: 18 random bytes; in a cluster prefixed with this node's name,
    /// where a resume on another node claims the session.
    fn new_token(&mut self) -> String {
        let mut bytes = [0u8; 18];
        self.rng.fill_bytes(&mut bytes);
        if self.clustered {
            format!("{}.{}", self.node, URL_SAFE_NO_PAD.encode(bytes))
        } else {
            URL_SAFE_NO_PAD.encode(bytes)
        }
    }

    fn reattach(&mut self, sid: SessionId, conn: ConnId, received: Option<u64>) {
        let now = self.now;
        let Some(missing) = self.on_session(sid, |s| s.rewind(received, now)) else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if let Some(old) = s.attach(conn, now) {
            self.by_conn.remove(&old);
            self.outputs.push_back(Output::Close {
                conn: old,
                code: CLOSE_TAKEN_OVER,
                reason: "session resumed elsewhere",
            });
        }
        if let Some(at) = s.expires.take() {
            self.deadlines.cancel(at, Timer::Resume(sid));
        }
        s.acks |= received.is_some();
        if missing > 0 {
            warn!(
                session = sid.0,
                missing, "resumed session missed messages beyond the replay buffer"
            );
        }
        info!(user = %s.user, session = sid.0, queued = s.queued(), "session resumed");
        self.by_conn.insert(conn, sid);
    }

    /// Any message but `hello` from a connection that has a session.
    pub fn message(&mut self, conn: ConnId, msg: ClientMessage, now: Instant) {
        self.now = now;
        let Some(&sid) = self.by_conn.get(&conn) else {
            return;
        };
        match msg {
            ClientMessage::Hello(_) => self.second_hello(sid),
            ClientMessage::Ping(ping) => {
                if let Some(n) = ping.received {
                    self.on_session(sid, |s| s.ack(n));
                }
                self.send(sid, ServerMessage::Pong);
            }
            ClientMessage::Invite(m) => self.invite(sid, m),
            msg @ (ClientMessage::Accept(_)
            | ClientMessage::Reject(_)
            | ClientMessage::Candidate(_)
            | ClientMessage::Renegotiate(_)
            | ClientMessage::Hangup(_)) => self.call_message(sid, msg),
        }
        self.settle();
    }

    /// Sends an `error` to the session on `conn` (for errors found by the I/O layer, such
    /// as `rate_limited`, so they stay in order with everything else).
    pub fn reject_message(
        &mut self,
        conn: ConnId,
        code: ErrorCode,
        message: &str,
        call_id: Option<CallId>,
    ) {
        if let Some(&sid) = self.by_conn.get(&conn) {
            self.error(sid, code, message, call_id);
            self.settle();
        }
    }

    /// Everything queued for the session on `conn`, to write in order.
    pub fn take_outbox(&mut self, conn: ConnId) -> Vec<Outgoing> {
        self.take_outbox_timed(conn).0
    }

    /// [`Self::take_outbox`], with when each message could first be written (the time of
    /// the input that queued it, or of the connection's attach): the I/O layer measures
    /// how long each waited until written ([`Metrics::delivered`]).
    pub fn take_outbox_timed(&mut self, conn: ConnId) -> (Vec<Outgoing>, Vec<Instant>) {
        let (keep, keep_bytes) = (self.settings.resume_queue, self.settings.queue_bytes);
        let Some(&sid) = self.by_conn.get(&conn) else {
            return (Vec::new(), Vec::new());
        };
        let batch = self
            .on_session(sid, |s| s.take_timed(keep, keep_bytes))
            .unwrap_or_default();
        self.settle();
        batch
    }

    /// `conn` is gone, as `how` says; `unwritten` are the last messages taken from the
    /// outbox that never reached the socket.
    pub fn disconnected(
        &mut self,
        conn: ConnId,
        how: Disconnect,
        unwritten: &[Outgoing],
        now: Instant,
    ) {
        self.now = now;
        let Some(sid) = self.by_conn.remove(&conn) else {
            return;
        };
        if let Some(claim) = self.claims.get_mut(&sid) {
            claim.conn = None;
            return;
        }
        if self.on_session(sid, |s| s.untake(unwritten, now)).is_none() {
            return;
        }
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        s.conn = None;
        if how == Disconnect::SignedOff {
            info!(user = %s.user, session = sid.0, "session signed off");
            self.end_session(sid);
        } else {
            let at = now + self.settings.resume_ttl;
            s.expires = Some(at);
            if over_detached_limits(&self.settings, s) {
                self.doomed.push(sid);
            }
            info!(user = %s.user, session = sid.0, "session detached, waiting for a resume");
            self.deadlines.insert(at, Timer::Resume(sid));
        }
        self.settle();
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        while let Some(timer) = self.deadlines.pop_due(now) {
            match timer {
                Timer::Ring(key) => self.ring_timeout(key),
                Timer::Claim(sid) => self.claim_timeout(sid),
                Timer::MovedOut(sid) => {
                    self.moved_out.remove(&sid);
                }
                Timer::Resume(sid) => {
                    if let Some(s) = self.sessions.get_mut(&sid) {
                        s.expires = None;
                        info!(user = %s.user, session = sid.0, "session expired");
                    }
                    self.end_session(sid);
                }
            }
        }
        self.settle();
    }

    /// The answer to [`Output::Lookup`] for `call`: the callee's sessions on every node
    /// (those of this node are taken from its own index, whatever the answer says), or
    /// `Err` when the lookup failed (Redis unreachable): then only this node's sessions
    /// ring.
    pub fn lookup_done(
        &mut self,
        call: CallKey,
        found: Result<Vec<SessionAddr>, ()>,
        now: Instant,
    ) {
        self.now = now;
        if found.is_err() {
            warn!(
                call = call.0,
                "lookup failed: ringing this node's sessions only"
            );
        }
        self.ring(call, &found.unwrap_or_default());
        self.settle();
    }

    /// What node `from`'s switchboard sent this one ([`Output::Node`] there).
    pub fn from_node(&mut self, from: NodeId, msg: NodeMessage, now: Instant) {
        self.now = now;
        debug!(from = %from, kind = msg.kind(), "from node");
        let msg = if self.rehomed.is_empty() {
            msg
        } else {
            match self.forward(from.clone(), msg) {
                Some(msg) => msg,
                None => return self.settle(),
            }
        };
        // For a session still on its way here: after it arrived (moves.rs).
        let claimed = match &msg {
            NodeMessage::Deliver(d) => Some(d.session),
            NodeMessage::CallMoved { sessions, .. } => sessions
                .iter()
                .copied()
                .find(|s| self.claims.contains_key(s)),
            _ => None,
        };
        if let Some(claim) = claimed.and_then(|sid| self.claims.get_mut(&sid)) {
            claim.early.push((from, msg));
            return self.settle();
        }
        self.node_message(from, msg);
        self.settle();
    }

    /// [`Self::from_node`], once the message is for this node to act on.
    fn node_message(&mut self, from: NodeId, msg: NodeMessage) {
        match msg {
            NodeMessage::Ring {
                call,
                session,
                caller,
                invite,
            } => self.rung(from, call, session, &caller, invite),
            NodeMessage::RingAnswer {
                call,
                session,
                answer,
            } => {
                let party = SessionAddr {
                    node: from,
                    session,
                };
                self.ring_answered(call, party, answer);
            }
            NodeMessage::Input { call, session, msg } => {
                self.call_input(
                    call,
                    SessionAddr {
                        node: from,
                        session,
                    },
                    msg,
                );
            }
            NodeMessage::Deliver(d) if self.moved_out.contains_key(&d.session) => {
                self.relay(from, d.session, NodeMessage::Deliver(d));
            }
            NodeMessage::Deliver(d) => self.delivered(&from, d, false),
            NodeMessage::Left { call, session } => {
                let party = SessionAddr {
                    node: from,
                    session,
                };
                match self.hold_mut(call, &party.node.clone()) {
                    Some(held) => held.push(rehome::HeldCall::Left(party)),
                    None => self.leave_call(call, &party),
                }
            }
            NodeMessage::Claim {
                token,
                user,
                session,
                received,
            } => self.claimed(from, &token, &user, session, received),
            NodeMessage::Handover {
                session,
                old,
                moved,
            } => self.handed_over(&from, session, old, moved),
            NodeMessage::Moved { call, old, new } => self.party_moved(from, call, old, new),
            NodeMessage::Fence { old, .. } => {
                self.relay(from, old, msg);
            }
            NodeMessage::Relayed { home, msg } => match *msg {
                NodeMessage::Deliver(d) => self.delivered(&home, d, true),
                NodeMessage::Fence { call, old } => self.release(old, call, &home),
                NodeMessage::CallMoved {
                    call,
                    home: to,
                    key,
                    sessions,
                } => self.switch_calls(&home, call, &to, key, &sessions),
                _ => {}
            },
            NodeMessage::Adopt { call, state } => self.adopt(from, call, *state),
            NodeMessage::Adopted { call, key } => self.call_adopted(&from, call, key),
            NodeMessage::CallMoved {
                call,
                home,
                key,
                sessions,
            } => self.call_moved(from, call, home, key, &sessions),
            NodeMessage::Forwarded { from: origin, msg } => self.forwarded(&from, origin, *msg),
            // Only a draining node takes fences for calls it handed over (above).
            NodeMessage::CallFence { .. } => {}
        }
    }

    /// The shell could not deliver `msg` to node `to` (not live, or Redis did not answer in
    /// time): a ring counts as answered `Gone` and a claim as failed, so neither waits for
    /// an answer that cannot come. Other messages are settled when the node is seen gone
    /// ([`Self::node_down`]).
    pub fn undeliverable(&mut self, to: NodeId, msg: NodeMessage, now: Instant) {
        self.now = now;
        match msg {
            NodeMessage::Ring { call, session, .. } if self.rehomed.contains_key(&call) => {
                // The call moved meanwhile: its new home counts the answer.
                let answer = NodeMessage::RingAnswer {
                    call,
                    session,
                    answer: RingAnswer::Gone,
                };
                let _ = self.forward(to, answer);
            }
            NodeMessage::Ring { call, session, .. } => {
                let party = SessionAddr { node: to, session };
                self.ring_answered(call, party, RingAnswer::Gone);
            }
            NodeMessage::Claim { session, .. } => self.claim_timeout(session),
            NodeMessage::Adopt { call, state } => self.adopt_failed(call, *state),
            _ => {}
        }
        self.settle();
    }

    /// A message from node `home` for one of this node's sessions: queued only if the
    /// session is in that call (or it is no call's: an `error`). `relayed`: it came through
    /// the session's old node, ahead of the home's fence; a direct one waits behind the
    /// fence (moves.rs).
    fn delivered(&mut self, home: &NodeId, d: Delivery, relayed: bool) {
        if let Some(claim) = self.claims.get_mut(&d.session) {
            // On its way here (a home that adopted its call heard of it first): once it is.
            claim.early.push((home.clone(), NodeMessage::Deliver(d)));
            return;
        }
        let Some(s) = self.sessions.get(&d.session) else {
            return;
        };
        match (d.call, &d.call_id) {
            (Some(key), Some(call_id)) => {
                let member = s.calls.get(call_id) == Some(&self.membership(home, key));
                // Behind the fence of a session that moved here; also when it does not know
                // yet that its call changed home (rehome.rs) and hears from the new home.
                if !relayed && let Some(held) = self.call_fence_mut(d.session, call_id, key, home) {
                    held.push(moves::Held::Deliver(d));
                    return;
                }
                if !member {
                    debug!(session = d.session.0, call = %call_id, "not in that call: dropped");
                    return;
                }
            }
            (None, None) => {}
            _ => return,
        }
        self.apply(d);
    }

    /// How a session of this node takes part in call `key` living on `home`.
    fn membership(&self, home: &NodeId, key: CallKey) -> Membership {
        if *home == self.node {
            Membership::Home(key)
        } else {
            Membership::Remote(CallRef {
                home: home.clone(),
                key,
            })
        }
    }

    /// Carries out a delivery that passed its checks: the session leaves the call if told
    /// to, and gets the message.
    fn apply(&mut self, d: Delivery) {
        if d.leave
            && let Some(call_id) = &d.call_id
            && let Some(s) = self.sessions.get_mut(&d.session)
        {
            s.calls.remove(call_id);
        }
        if let Some(msg) = d.msg {
            self.send(d.session, msg);
        }
    }

    /// Node `node` is gone (its lease expired, or it was seen to leave): its sessions leave
    /// the calls that live here, and this node's sessions in calls that lived there get
    /// `ended` `peer_lost`.
    pub fn node_down(&mut self, node: &NodeId, now: Instant) {
        self.now = now;
        if *node == self.node {
            return;
        }
        let mut keys: Vec<CallKey> = self.calls.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            let gone: Vec<SessionAddr> = self
                .calls
                .get(&key)
                .map(|c| {
                    c.parties()
                        .into_iter()
                        .filter(|p| p.node == *node)
                        .collect()
                })
                .unwrap_or_default();
            for party in gone {
                self.leave_call(key, &party);
            }
        }
        self.release_fences_of(node);
        self.release_holds_of(node);
        let mut sids: Vec<SessionId> = self.sessions.keys().copied().collect();
        sids.sort_unstable();
        for sid in sids {
            let lost: Vec<CallId> = self.sessions.get(&sid).map_or_else(Vec::new, |s| {
                let mut ids: Vec<CallId> = s
                    .calls
                    .iter()
                    .filter(|(_, m)| matches!(m, Membership::Remote(r) if r.home == *node))
                    .map(|(id, _)| id.clone())
                    .collect();
                ids.sort();
                ids
            });
            for call_id in lost {
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.calls.remove(&call_id);
                }
                self.send(sid, ServerMessage::ended(call_id, EndReason::PeerLost));
            }
        }
        self.settle();
    }

    /// This node drains (SIGTERM in a cluster): every client is told to resume elsewhere
    /// ([`CLOSE_MOVE`]); sessions move to the nodes their clients come back on (moves.rs),
    /// and each call follows its caller once no party is left here (rehome.rs). The shell
    /// stops taking connections first, and exits once [`Self::drained`] (or after a bound).
    pub fn drain(&mut self, now: Instant) {
        self.now = now;
        if !self.clustered || self.draining {
            return;
        }
        self.draining = true;
        info!(
            sessions = self.sessions.len(),
            calls = self.calls.len(),
            "draining"
        );
        let mut conns: Vec<ConnId> = self.by_conn.keys().copied().collect();
        conns.sort_unstable();
        for conn in conns {
            self.outputs.push_back(Output::Close {
                conn,
                code: CLOSE_MOVE,
                reason: "node draining: resume now",
            });
        }
        self.settle();
    }

    /// Whether this node drains ([`Self::drain`]): the shell refuses new sessions.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Whether a draining node holds nothing anyone needs any more: no session, no call,
    /// and every session and call that left has had its last message relayed.
    pub fn drained(&self) -> bool {
        self.sessions.is_empty()
            && self.claims.is_empty()
            && self.calls.is_empty()
            && self.rehomed.values().all(|r| r.waiting == 0)
            && self.moved_out.values().all(|m| m.fences == 0)
    }

    /// When [`Self::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.next()
    }

    /// The next thing the I/O layer must do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The connection has completed `hello`.
    pub fn has_session(&self, conn: ConnId) -> bool {
        self.by_conn.contains_key(&conn)
    }

    /// Live sessions, connected or waiting for a resume.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Calls ringing or connected.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Queues `msg` for `sid`, waking or dropping its connection as needed.
    fn send(&mut self, sid: SessionId, msg: ServerMessage) {
        self.send_shared(sid, Arc::new(msg));
    }

    /// Queues one message body for `sid`; fan-outs pass clones of one `Arc`.
    fn send_shared(&mut self, sid: SessionId, msg: Outgoing) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        debug!(session = sid.0, kind = msg.kind(), "queued");
        let before = s.held_bytes();
        let len = s.push(msg, self.now);
        self.held_bytes += s.held_bytes() - before;
        let (queue_bytes, total_bytes) =
            (self.settings.queue_bytes, self.settings.total_queue_bytes);
        // Over its byte budget, or the server over its own while this session has a backlog
        // (a reader that keeps up is spared): as if over its queue.
        let over_total = self.held_bytes > total_bytes;
        let over_bytes = s.unsent_bytes() > queue_bytes || (over_total && s.unsent() > 1);
        // Thresholds are crossed with `>`, not met with `==`: a queue that started above
        // one (after a resume's replay) must still stop growing (found by the fuzzer: a
        // resumed client that never read grew its queue without bound).
        let doom = match s.conn {
            Some(conn) => {
                if len == 1 {
                    self.outputs.push_back(Output::Wake(conn));
                }
                if (s.unsent() > self.settings.send_queue || over_bytes) && !s.closing {
                    s.closing = true;
                    warn!(user = %s.user, session = sid.0, "send queue full: dropping the slow reader");
                    self.outputs.push_back(Output::Close {
                        conn,
                        code: CLOSE_POLICY,
                        reason: "send queue full",
                    });
                }
                // Until the I/O layer has closed it: the backlog, the send queue, and as
                // much again as a detached session may hold.
                let cap = len - s.unsent() + self.settings.send_queue + self.settings.resume_queue;
                let cap_bytes = s.queued_bytes() - s.unsent_bytes() + 2 * queue_bytes;
                len > cap || s.queued_bytes() > cap_bytes
            }
            None => over_total || over_detached_limits(&self.settings, s),
        };
        if doom {
            self.doomed.push(sid);
        }
    }

    fn second_hello(&mut self, sid: SessionId) {
        self.error(sid, ErrorCode::BadState, "hello was already sent", None);
    }

    fn error(&mut self, sid: SessionId, code: ErrorCode, message: &str, call_id: Option<CallId>) {
        self.metrics.error(code);
        self.send(sid, ServerMessage::error(code, message, call_id));
    }

    /// Ends the sessions that overflowed while handling the last input.
    fn settle(&mut self) {
        if self.draining {
            self.hand_over_calls();
        }
        while let Some(sid) = self.doomed.pop() {
            if self.sessions.contains_key(&sid) {
                warn!(session = sid.0, "queue overflow: ending the session");
                self.end_session(sid);
            }
        }
        self.metrics
            .queued_bytes()
            .set(i64::try_from(self.held_bytes).unwrap_or(i64::MAX));
    }

    /// Ends a session: its calls end for the other parties with `peer_lost`.
    fn end_session(&mut self, sid: SessionId) {
        let Some(s) = self.sessions.remove(&sid) else {
            return;
        };
        self.held_bytes = self.held_bytes.saturating_sub(s.held_bytes());
        self.registry.remove(&s.user, sid);
        if self.clustered {
            self.outputs.push_back(Output::Unregistered {
                user: s.user.clone(),
                session: sid,
            });
        }
        self.by_token.remove(&s.token);
        self.unannounced.remove(&sid);
        self.early_fences.retain(|(s, _, _)| *s != sid);
        if let Some(at) = s.expires {
            self.deadlines.cancel(at, Timer::Resume(sid));
        }
        if let Some(conn) = s.conn {
            self.by_conn.remove(&conn);
            self.outputs.push_back(Output::Close {
                conn,
                code: CLOSE_POLICY,
                reason: "session ended",
            });
        }
        self.metrics.sessions().dec();
        let me = self.here(sid);
        let mut calls: Vec<Membership> = s.calls.into_values().collect();
        calls.sort_by_key(|m| m.home()); // one order on every run (HashMap's is random)
        for membership in calls {
            match membership {
                Membership::Home(key) => self.leave_call(key, &me),
                Membership::Remote(CallRef { home, key }) => self.send_node(
                    home,
                    NodeMessage::Left {
                        call: key,
                        session: sid,
                    },
                ),
            }
        }
    }
}
