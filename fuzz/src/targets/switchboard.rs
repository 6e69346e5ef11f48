//! `switchboard`: the signaling core driven by a program read from the input: six devices
//! of three users say hello, resume (with honest `received` counts, or none), invite,
//! accept, reject, send candidates and renegotiations, hang up, ping, read part of what
//! was written to them, lose their sockets (with some of the last batch unwritten and some
//! written but never read), sign off; time passes and timers fire. A model of each client
//! checks what it reads.
//!
//! Checks:
//! - **no message to a session outside the call**: every call-scoped message (`ringing`,
//!   `accepted`, `candidate`, `renegotiate`, `ended`) is for a call the session is in (it
//!   invited under that `call_id`, or was invited and not told it ended), or was queued
//!   before the session left it; candidates and renegotiations come from the other party's
//!   user;
//! - **nothing lost or repeated on resume**: after a resume with an honest `received`
//!   count, the first messages are exactly those written but never read (the same
//!   messages, not copies), as many as the replay buffer holds, and no message is read
//!   twice in one session;
//! - **order**: candidates from one session arrive in the order it sent them;
//! - **memory bounded**: no batch is longer than the queues allow, sessions stay within
//!   the per-user cap, and once every socket is gone and the timers have run, no session,
//!   no call and no queued byte is left (the byte budgets' count returns to zero).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use signaling_protocol::{
    Accept, CallId, CallRef, Candidate, ClientMessage, ErrorCode, IceCandidate, Invite, Ping,
    Reject, RejectReason, Renegotiate, SdpType, ServerMessage, SessionDescription, UserName,
};
use switchboard::{
    ConnId, Disconnect, MemoryRegistry, Metrics, Outgoing, Output, SessionId, Settings, Switchboard,
};

use super::Target;
use crate::choices::Choices;

pub(super) const TARGET: Target = Target {
    name: "switchboard",
    about: "the signaling core under arbitrary message sequences, drops and resumes, with invariants",
    run,
    seeds,
    max_len: 2048,
};

const USERS: [&str; 3] = ["ann", "ben", "cat"];
const DEVICES: usize = 6;
const CALL_IDS: [&str; 3] = ["a", "b", "c"];
const MAX_SESSIONS_PER_USER: usize = 2;

fn settings() -> Settings {
    Settings {
        heartbeat: Duration::from_secs(20),
        resume_ttl: Duration::from_secs(30),
        ring_timeout: Duration::from_secs(45),
        max_calls_per_session: 2,
        max_sessions_per_user: MAX_SESSIONS_PER_USER,
        send_queue: 8,
        resume_queue: 16,
        queue_bytes: 4096,
        total_queue_bytes: 64 * 1024,
        rate: Some((50, 200)),
    }
}

fn name(s: &str) -> UserName {
    UserName::new(s).expect("a valid name")
}

fn call_id(s: &str) -> CallId {
    CallId::new(s).expect("a valid call id")
}

/// Identity of a message body: the switchboard shares one `Arc` between a session's queue
/// and its replay buffer, so a replayed message is the same allocation.
fn identity(m: &Outgoing) -> usize {
    Arc::as_ptr(m) as usize
}

/// A device's part in a call, as far as it knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// It invited.
    Caller,
    /// It was invited and has not answered.
    Ringing,
    /// It was invited and sent `accept`.
    Answered,
}

/// What one client knows, as its app would.
struct Device {
    user: usize,
    /// Whether it sends `received` counts (and so expects replays).
    acks: bool,
    conn: Option<ConnId>,
    /// The session the last hello got.
    sid: Option<SessionId>,
    /// What the next `welcome.resumed` must say.
    welcome: Option<bool>,
    token: Option<String>,
    /// Messages after `welcome` read in this session.
    received: u64,
    /// This session's number in the model (a new one for each new session).
    session: u64,
    /// Candidates sent by this session.
    sent: u64,
    /// Written to the socket, not read yet, in order.
    inflight: VecDeque<Outgoing>,
    /// The length of the last batch written (`unwritten` is a suffix of it).
    last_batch: usize,
    /// The unwritten messages of the last socket, which the switchboard queued again.
    requeued: Vec<Outgoing>,
    /// Whether this session lost messages it was owed (no `received` counts, or more than
    /// the replay buffer holds): then it may hear of calls it never heard begin.
    lossy: bool,
    /// Calls it sent `accept` for in this session.
    accepted: HashSet<CallId>,
    /// After a resume: the messages that must come first, in order.
    expect: VecDeque<Outgoing>,
    /// Calls it is in: per `call_id`, the other party's user and the stream position from
    /// which the call's messages come. There can be two: an invite sent again under the
    /// `call_id` of a call whose `ended` is still on its way starts a new call.
    calls: HashMap<CallId, Vec<(UserName, u64, Role)>>,
    /// Calls it left by hanging up or rejecting: the stream position from which nothing
    /// more may come, and who the other parties were (what was queued before still comes).
    left: HashMap<CallId, (u64, Vec<UserName>)>,
    /// Stream position of each message body taken for this session (first take).
    position: HashMap<usize, u64>,
    /// Bodies read in this session, kept alive so that an address is never reused.
    read: Vec<Outgoing>,
    read_ids: HashSet<usize>,
    /// Last candidate number read from each sending session.
    last_from: HashMap<u64, u64>,
}

impl Device {
    fn new(index: usize, acks: bool) -> Self {
        Self {
            user: index % USERS.len(),
            acks,
            conn: None,
            sid: None,
            welcome: None,
            token: None,
            received: 0,
            // Numbers unique across devices: each device's are its index modulo DEVICES.
            session: index as u64,
            sent: 0,
            inflight: VecDeque::new(),
            last_batch: 0,
            requeued: Vec::new(),
            lossy: false,
            accepted: HashSet::new(),
            expect: VecDeque::new(),
            calls: HashMap::new(),
            left: HashMap::new(),
            position: HashMap::new(),
            read: Vec::new(),
            read_ids: HashSet::new(),
            last_from: HashMap::new(),
        }
    }

    fn new_session(&mut self) {
        self.received = 0;
        self.session += DEVICES as u64;
        self.sent = 0;
        self.lossy = false;
        self.accepted.clear();
        self.expect.clear();
        self.calls.clear();
        self.left.clear();
        self.position.clear();
        self.read.clear();
        self.read_ids.clear();
        self.last_from.clear();
    }

    /// A call-scoped message for `c`: the session must be in the call, or have left it
    /// after the message was queued.
    fn position_of(&self, m: &Outgoing) -> u64 {
        self.position.get(&identity(m)).copied().unwrap_or(u64::MAX)
    }

    fn check_in_call(&self, c: &CallId, m: &Outgoing) {
        let pos = self.position_of(m);
        let in_call = self.lossy
            || self.calls.contains_key(c)
            || self.left.get(c).is_some_and(|(p, _)| pos < *p);
        assert!(
            in_call,
            "{} (session {}) got {m:?} for a call it is not in",
            USERS[self.user], self.session
        );
    }

    /// The sender named in a candidate or SDP written by the model: `user/session/number`.
    fn check_origin(&mut self, c: &CallId, text: &str, m: &Outgoing) {
        let mut parts = text.split('/');
        let (Some(user), Some(session), Some(n)) = (parts.next(), parts.next(), parts.next())
        else {
            panic!("a message the model did not write: {m:?}");
        };
        let pos = self.position_of(m);
        let now = self.calls.get(c).into_iter().flatten().map(|(p, _, _)| p);
        let before = self
            .left
            .get(c)
            .filter(|(at, _)| pos < *at)
            .into_iter()
            .flat_map(|(_, peers)| peers);
        let mut parties = now.chain(before).peekable();
        // A session that lost messages may not have read the invite that began the call.
        if !self.lossy && parties.peek().is_some() {
            assert!(
                parties.any(|p| p.as_str() == user),
                "{m:?} from {user} at {pos} reached {} in a call with someone else: {:?}, left {:?}",
                USERS[self.user],
                self.calls.get(c),
                self.left.get(c)
            );
        }
        let (session, n): (u64, u64) = (
            session.parse().expect("model-written"),
            n.parse().expect("model-written"),
        );
        if let Some(&last) = self.last_from.get(&session) {
            assert!(
                n > last,
                "candidate {n} of session {session} after {last}: reordered or repeated"
            );
        }
        self.last_from.insert(session, n);
    }

    fn read_one(&mut self) {
        let Some(m) = self.inflight.pop_front() else {
            return;
        };
        if std::env::var_os("FUZZ_TRACE").is_some() {
            eprintln!("  {} reads {m:?}", USERS[self.user]);
        }
        if let ServerMessage::Welcome(w) = &*m {
            self.token = Some(w.session.clone());
            assert_eq!(
                Some(w.resumed),
                self.welcome.take(),
                "welcome.resumed says otherwise than the session the hello got"
            );
            return;
        }
        self.received += 1;
        if let Some(want) = self.expect.pop_front() {
            assert!(
                Arc::ptr_eq(&want, &m),
                "after a resume {} read {m:?} where {want:?} was owed",
                USERS[self.user]
            );
        }
        assert!(
            self.read_ids.insert(identity(&m)),
            "{} read {m:?} twice in one session",
            USERS[self.user]
        );
        self.read.push(m.clone());
        match &*m {
            ServerMessage::Invite(inv) => {
                let pos = self.position_of(&m);
                self.calls.entry(inv.call_id.clone()).or_default().push((
                    inv.from.clone(),
                    pos,
                    Role::Ringing,
                ));
            }
            ServerMessage::Ringing(r) => self.check_in_call(&r.call_id, &m),
            ServerMessage::Accepted(a) => {
                self.check_in_call(&a.call_id, &m);
                self.check_origin(&a.call_id, &a.answer, &m);
            }
            ServerMessage::Candidate(cand) => {
                self.check_in_call(&cand.call_id, &m);
                let text = cand.candidate.as_ref().map(|c| c.candidate.as_str());
                self.check_origin(&cand.call_id, text.unwrap_or(""), &m);
            }
            ServerMessage::Renegotiate(r) => {
                self.check_in_call(&r.call_id, &m);
                self.check_origin(&r.call_id, &r.description.sdp, &m);
            }
            ServerMessage::Ended(e) => {
                self.check_in_call(&e.call_id, &m);
                // It ends the calls under this id that began before it was queued.
                let pos = self.position_of(&m);
                if let Some(calls) = self.calls.get_mut(&e.call_id) {
                    calls.retain(|&(_, since, _)| since > pos);
                    if calls.is_empty() {
                        self.calls.remove(&e.call_id);
                    }
                }
            }
            _ => {}
        }
    }
}

struct World {
    board: Switchboard,
    now: Instant,
    devices: Vec<Device>,
    next_conn: u64,
}

impl World {
    fn new(acks: u8) -> Self {
        let now = server_kit::clock::now();
        Self {
            board: Switchboard::new(
                settings(),
                MemoryRegistry::default(),
                Metrics::new(),
                [4; 32],
                now,
            ),
            now,
            devices: (0..DEVICES)
                .map(|i| Device::new(i, acks & (1 << i) == 0))
                .collect(),
            next_conn: 1,
        }
    }

    fn device_of(&self, conn: ConnId) -> Option<usize> {
        self.devices.iter().position(|d| d.conn == Some(conn))
    }

    fn hello(&mut self, i: usize, c: &mut Choices) {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        let d = &mut self.devices[i];
        if let Some(open) = d.conn {
            // A second hello on an open connection: an error, nothing else.
            let msg = ClientMessage::Hello(signaling_protocol::Hello {
                version: signaling_protocol::PROTOCOL_VERSION,
                user: USERS[d.user].into(),
                token: None,
                resume: None,
                received: None,
            });
            self.board.message(open, msg, self.now);
            return;
        }
        let resume = match c.byte() % 4 {
            0 => Some("not-a-token".to_owned()),
            1 => None,
            _ => d.token.clone(),
        };
        let received = d.acks.then_some(d.received);
        // Written but not read, then never written: what a resume owes, in order.
        let mut owed: VecDeque<Outgoing> = std::mem::take(&mut d.inflight);
        owed.extend(d.requeued.drain(..));
        // A `welcome` is never replayed: each connection gets its own.
        owed.retain(|m| !matches!(**m, ServerMessage::Welcome(_)));
        let keep = settings().resume_queue;
        let user = name(USERS[d.user]);
        let Some(sid) = self.board.hello(
            conn,
            user,
            resume.as_deref(),
            received,
            Vec::new(),
            self.now,
        ) else {
            let others = self.board.session_count();
            assert!(others > 0, "a hello refused with no session open");
            return;
        };
        let d = &mut self.devices[i];
        if std::env::var_os("FUZZ_TRACE").is_some() {
            eprintln!(
                "  device {i}: hello {conn:?} with {resume:?}: {sid:?}, was {:?}",
                d.sid
            );
        }
        d.conn = Some(conn);
        let resumed = d.sid == Some(sid);
        d.welcome = Some(resumed);
        d.sid = Some(sid);
        if !resumed {
            // A client forgets the old session's token once a new one starts; the new
            // token comes in the `welcome`.
            d.token = None;
            d.new_session();
        } else if d.acks {
            // The owed messages come first, as many as the replay buffer keeps.
            let skip = owed.len().saturating_sub(keep);
            d.lossy |= skip > 0;
            d.expect = owed.into_iter().skip(skip).collect();
        } else {
            // Without `received` counts nothing is replayed: what was owed is lost, and
            // the client may hear of a call's end without its start.
            d.lossy |= !owed.is_empty();
            d.expect.clear();
        }
    }

    /// The I/O layer writes what is queued: it goes in flight.
    fn write(&mut self, i: usize) {
        let Some(conn) = self.devices[i].conn else {
            return;
        };
        let batch = self.board.take_outbox(conn);
        let s = settings();
        assert!(
            batch.len() <= 3 * s.resume_queue + s.send_queue + 1,
            "a batch of {} messages: a queue grew past its bound",
            batch.len()
        );
        let d = &mut self.devices[i];
        d.last_batch = batch.len();
        for m in batch {
            let next = d.position.len() as u64;
            d.position.entry(identity(&m)).or_insert(next);
            d.inflight.push_back(m);
        }
    }

    /// The socket is gone; `unwritten` of the last batch never reached it.
    fn lose(&mut self, i: usize, how: Disconnect, unwritten: usize) {
        let d = &mut self.devices[i];
        let Some(conn) = d.conn.take() else {
            return;
        };
        let u = unwritten.min(d.last_batch).min(d.inflight.len());
        // Never written: the client cannot read them; the switchboard queues them again.
        let tail: Vec<Outgoing> = d.inflight.drain(d.inflight.len() - u..).collect();
        d.requeued = tail.clone();
        d.last_batch = 0;
        if how == Disconnect::SignedOff {
            d.inflight.clear();
            d.token = None;
        }
        self.board.disconnected(conn, how, &tail, self.now);
    }

    fn send(&mut self, i: usize, msg: ClientMessage) {
        if let Some(conn) = self.devices[i].conn {
            self.board.message(conn, msg, self.now);
        }
    }

    fn origin(&mut self, i: usize) -> String {
        let d = &mut self.devices[i];
        d.sent += 1;
        format!("{}/{}/{}", USERS[d.user], d.session, d.sent)
    }

    /// Hanging up or rejecting: nothing queued after this may be for the call.
    fn leave(&mut self, i: usize, c: &CallId) {
        self.write(i);
        let d = &mut self.devices[i];
        let at = d.position.len() as u64;
        let left = d.left.entry(c.clone()).or_default();
        left.0 = at;
        left.1
            .extend(d.calls.remove(c).into_iter().flatten().map(|(p, _, _)| p));
    }

    fn step(&mut self, c: &mut Choices, trace: bool) {
        let i = c.below(DEVICES);
        let cid = call_id(CALL_IDS[c.below(CALL_IDS.len())]);
        let op = c.byte() % 16;
        if trace {
            eprintln!(
                "device {i} ({}) call {cid}: op {op}",
                USERS[self.devices[i].user]
            );
        }
        match op {
            0 | 1 => self.hello(i, c),
            2 => {
                let to = name(USERS[c.below(USERS.len())]);
                if trace {
                    eprintln!("  invites {to}");
                }
                if self.devices[i].conn.is_some() {
                    // What is queued now was queued before the invite.
                    self.write(i);
                    let d = &mut self.devices[i];
                    let since = d.position.len() as u64;
                    d.calls
                        .entry(cid.clone())
                        .or_default()
                        .push((to.clone(), since, Role::Caller));
                }
                let offer = self.origin(i);
                self.send(
                    i,
                    ClientMessage::Invite(Invite {
                        call_id: cid,
                        to,
                        offer,
                        meta: None,
                    }),
                );
            }
            3 => {
                let d = &mut self.devices[i];
                // The fuzzer may accept before the invite is read: remember the attempt.
                d.accepted.insert(cid.clone());
                if let Some(calls) = d.calls.get_mut(&cid) {
                    for call in calls.iter_mut().filter(|c| c.2 == Role::Ringing) {
                        call.2 = Role::Answered;
                    }
                }
                let answer = self.origin(i);
                self.send(
                    i,
                    ClientMessage::Accept(Accept {
                        call_id: cid,
                        answer,
                    }),
                );
            }
            4 => {
                // Only a callee still ringing leaves by rejecting (the caller hangs up; an
                // accepted callee too): the others get `bad_state` and stay.
                let d = &self.devices[i];
                let ringing = !d.accepted.contains(&cid)
                    && d.calls.get(&cid).is_some_and(|calls| {
                        calls.iter().all(|&(_, _, role)| role == Role::Ringing)
                    });
                if d.conn.is_some() && ringing {
                    self.leave(i, &cid);
                }
                let reason = if c.flag() {
                    RejectReason::Busy
                } else {
                    RejectReason::Declined
                };
                self.send(
                    i,
                    ClientMessage::Reject(Reject {
                        call_id: cid,
                        reason,
                    }),
                );
            }
            5 | 6 => {
                let candidate = self.origin(i);
                let msg = Candidate {
                    call_id: cid,
                    candidate: Some(IceCandidate {
                        candidate,
                        sdp_mid: Some("0".into()),
                        sdp_m_line_index: Some(0),
                        username_fragment: None,
                    }),
                };
                self.send(i, ClientMessage::Candidate(msg));
            }
            7 => {
                let sdp = self.origin(i);
                let description = SessionDescription {
                    kind: SdpType::Offer,
                    sdp,
                };
                self.send(
                    i,
                    ClientMessage::Renegotiate(Renegotiate {
                        call_id: cid,
                        description,
                    }),
                );
            }
            8 => {
                if self.devices[i].conn.is_some() {
                    self.leave(i, &cid);
                }
                self.send(i, ClientMessage::Hangup(CallRef { call_id: cid }));
            }
            9 => {
                let received = self.devices[i].acks.then_some(self.devices[i].received);
                self.send(i, ClientMessage::Ping(Ping { received }));
            }
            10 | 11 => {
                let n = 1 + c.below(8);
                for _ in 0..n {
                    self.devices[i].read_one();
                }
            }
            12 => self.write(i),
            13 => {
                let unwritten = c.below(4);
                let how = if c.byte().is_multiple_of(8) {
                    Disconnect::SignedOff
                } else {
                    Disconnect::Dropped
                };
                self.lose(i, how, unwritten);
            }
            14 => {
                let secs = [1, 10, 31, 46][c.below(4)];
                self.now += Duration::from_secs(secs);
                self.board.handle_timeout(self.now);
            }
            _ => {
                if let Some(conn) = self.devices[i].conn {
                    self.board
                        .reject_message(conn, ErrorCode::RateLimited, "slow down", Some(cid));
                }
            }
        }
        self.outputs();
        assert!(self.board.session_count() <= USERS.len() * MAX_SESSIONS_PER_USER);
    }

    /// Closes what the switchboard says to close, as the I/O layer does.
    fn outputs(&mut self) {
        while let Some(out) = self.board.poll_output() {
            if let Output::Close { conn, .. } = out
                && let Some(i) = self.device_of(conn)
            {
                // The socket is closed under the client: nothing in flight is read.
                self.lose(i, Disconnect::Dropped, 0);
            }
        }
    }
}

fn run(data: &[u8]) {
    let mut c = Choices::new(data);
    let mut world = World::new(c.byte());
    // `FUZZ_TRACE=1 fuzz replay switchboard <dir>` prints the program.
    let trace = std::env::var_os("FUZZ_TRACE").is_some();
    let mut steps = 0;
    while !c.is_empty() && steps < 128 {
        world.step(&mut c, trace);
        steps += 1;
    }
    // Everyone reads what is left, then every socket goes; after the timers, nothing stays.
    for i in 0..DEVICES {
        world.write(i);
        while !world.devices[i].inflight.is_empty() {
            world.devices[i].read_one();
        }
        world.lose(i, Disconnect::Dropped, 0);
    }
    world.outputs();
    world.now += Duration::from_secs(31);
    world.board.handle_timeout(world.now);
    world.now += Duration::from_secs(46);
    world.board.handle_timeout(world.now);
    assert_eq!(
        world.board.session_count(),
        0,
        "sessions outlived resume_ttl"
    );
    assert_eq!(world.board.call_count(), 0, "calls outlived their sessions");
    assert_eq!(
        world.board.held_bytes(),
        0,
        "queued bytes counted for sessions that are gone"
    );
}

fn seeds() -> Vec<Vec<u8>> {
    // device, call id, operation, operands…
    vec![vec![
        0, 0, 0, 0, 1, 0, 0, 1, 0, 2, 1, // ann and ben say hello
        0, 0, 12, 1, 0, 12, 0, 0, 10, 7, 1, 0, 10, 7, // both read welcome
        0, 0, 2, 1, // ann invites ben
        1, 0, 12, 1, 0, 10, 7, 1, 0, 3, // ben reads, accepts
        0, 0, 5, 1, 0, 5, 0, 0, 5, // candidates both ways
        1, 0, 12, 1, 0, 13, 1, 1, // ben's socket drops with one unwritten
        1, 0, 0, 2, 1, 0, 12, 1, 0, 10, 7, // ben resumes and reads
        0, 0, 8, 1, 0, 12, 1, 0, 10, 7, // ann hangs up
    ]]
}
