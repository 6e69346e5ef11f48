//! A user's session: what survives a dropped socket until it resumes or expires.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use signaling_protocol::{CallId, ServerMessage, UserName};

use crate::call::CallKey;
use crate::node::CallRef;

/// Identity of a WebSocket connection, assigned by the I/O layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Identity of a session, assigned by the switchboard.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct SessionId(pub u64);

/// How a session takes part in a call: the call lives here, or on another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// The call lives on this node under this key.
    Home(CallKey),
    /// The call lives on another node.
    Remote(CallRef),
}

impl Membership {
    /// The key of a call that lives here.
    pub fn home(&self) -> Option<CallKey> {
        match self {
            Self::Home(key) => Some(*key),
            Self::Remote(_) => None,
        }
    }
}

/// A message on its way to a client, shared between the queue and the replay buffer.
pub type Outgoing = Arc<ServerMessage>;

/// About how many bytes a message holds in memory: its variable-length fields, plus its
/// fixed part and the queue slot. Byte budgets count with it (a message shared by several
/// sessions counts once for each: an overestimate of memory, never an underestimate).
pub fn weight(msg: &ServerMessage) -> usize {
    const FIXED: usize = 128;
    let variable = match msg {
        ServerMessage::Welcome(w) => {
            w.session.len()
                + w.ice_servers
                    .iter()
                    .map(|s| {
                        s.urls.iter().map(String::len).sum::<usize>()
                            + s.username.as_ref().map_or(0, String::len)
                            + s.credential.as_ref().map_or(0, String::len)
                    })
                    .sum::<usize>()
        }
        ServerMessage::Invite(i) => {
            i.call_id.as_str().len()
                + i.offer.len()
                + i.meta
                    .as_ref()
                    .map_or(0, |_| signaling_protocol::MAX_META_BYTES)
        }
        ServerMessage::Ringing(r) => r.call_id.as_str().len(),
        ServerMessage::Accepted(a) => a.call_id.as_str().len() + a.answer.len(),
        ServerMessage::Candidate(c) => {
            c.call_id.as_str().len()
                + c.candidate.as_ref().map_or(0, |c| {
                    c.candidate.len()
                        + c.sdp_mid.as_ref().map_or(0, String::len)
                        + c.username_fragment.as_ref().map_or(0, String::len)
                })
        }
        ServerMessage::Renegotiate(r) => r.call_id.as_str().len() + r.description.sdp.len(),
        ServerMessage::Ended(e) => e.call_id.as_str().len(),
        ServerMessage::Error(e) => {
            e.message.len() + e.call_id.as_ref().map_or(0, |c| c.as_str().len())
        }
        ServerMessage::Pong => 0,
    };
    FIXED + variable
}

#[derive(Debug)]
pub struct Session {
    pub user: UserName,
    /// The opaque resume token handed out in `welcome.session`.
    pub token: String,
    /// The connection the session is attached to, if any.
    pub conn: Option<ConnId>,
    /// When a detached session ends unless resumed.
    pub expires: Option<Instant>,
    /// Calls by the `call_id` this session knows them under.
    pub calls: HashMap<CallId, Membership>,
    /// Messages not yet taken for writing, in order, each with when it could first be
    /// written (queued, or the connection attached).
    outbox: VecDeque<(Outgoing, Instant)>,
    /// Their [`weight`].
    outbox_bytes: usize,
    /// Messages taken for writing and not yet acknowledged, oldest first; the last one has
    /// index `delivered`. Only kept beyond one batch when the client acknowledges.
    unacked: VecDeque<Outgoing>,
    /// Their [`weight`].
    unacked_bytes: usize,
    /// How many messages after `welcome` were taken for writing in this session.
    delivered: u64,
    /// The client sends `received` counts, so unacknowledged messages can be replayed.
    pub acks: bool,
    /// Messages queued when the connection attached (a resume's replay and what waited
    /// for it): the I/O layer was handed them at once, so they do not count against the
    /// slow-reader limit until the next [`Session::take`].
    backlog: usize,
    /// Their bytes.
    backlog_bytes: usize,
    /// The connection was told to close as a slow reader.
    pub closing: bool,
}

impl Session {
    pub fn new(user: UserName, token: String, conn: ConnId, acks: bool, now: Instant) -> Self {
        let mut s = Self::moved_in(user, token, acks, 0, Vec::new(), now);
        s.conn = Some(conn);
        s
    }

    /// What moves to another node with the session (after [`Session::rewind`] to the
    /// client's `received`): the queue in order (a stale `welcome` left out), and the count
    /// the replayed messages continue from.
    pub fn export(self) -> (Vec<ServerMessage>, u64) {
        let queue = self
            .outbox
            .iter()
            .filter(|(m, _)| !matches!(**m, ServerMessage::Welcome(_)))
            .map(|(m, _)| (**m).clone())
            .collect();
        (queue, self.delivered)
    }

    /// A session that moved here from another node at `now`: detached until its connection
    /// attaches, with the moved `queue` to deliver and `delivered` messages already counted.
    pub fn moved_in(
        user: UserName,
        token: String,
        acks: bool,
        delivered: u64,
        queue: Vec<ServerMessage>,
        now: Instant,
    ) -> Self {
        let mut s = Self {
            user,
            token,
            conn: None,
            expires: None,
            calls: HashMap::new(),
            outbox: VecDeque::new(),
            outbox_bytes: 0,
            unacked: VecDeque::new(),
            unacked_bytes: 0,
            delivered,
            acks,
            backlog: 0,
            backlog_bytes: 0,
            closing: false,
        };
        for msg in queue {
            s.push(Arc::new(msg), now);
        }
        s
    }

    /// Queues `msg` at `now`, shared with every other session it goes to (a candidate for
    /// ten ringing devices is one allocation, not ten); returns the new queue length.
    pub fn push(&mut self, msg: Outgoing, now: Instant) -> usize {
        self.outbox_bytes += weight(&msg);
        self.outbox.push_back((msg, now));
        self.outbox.len()
    }

    /// Bytes queued for writing ([`weight`]).
    pub fn queued_bytes(&self) -> usize {
        self.outbox_bytes
    }

    /// Bytes this session holds: queued, and kept for replay.
    pub fn held_bytes(&self) -> usize {
        self.outbox_bytes + self.unacked_bytes
    }

    /// Puts `welcome` ahead of everything queued, in place of a `welcome` still queued for
    /// an earlier connection that closed before it was written (found by the fuzzer: the
    /// next connection read two, the stale one first).
    pub fn push_welcome(&mut self, msg: ServerMessage, now: Instant) {
        if let Some(i) = self
            .outbox
            .iter()
            .position(|(m, _)| matches!(**m, ServerMessage::Welcome(_)))
            && let Some((stale, _)) = self.outbox.remove(i)
        {
            self.outbox_bytes -= weight(&stale);
        }
        self.outbox_bytes += weight(&msg);
        self.outbox.push_front((Arc::new(msg), now));
    }

    pub fn queued(&self) -> usize {
        self.outbox.len()
    }

    /// Queued messages the I/O layer has not been given a chance to write: beyond the
    /// backlog of the attach.
    pub fn unsent(&self) -> usize {
        self.outbox.len().saturating_sub(self.backlog)
    }

    /// Bytes of [`Session::unsent`].
    pub fn unsent_bytes(&self) -> usize {
        self.outbox_bytes.saturating_sub(self.backlog_bytes)
    }

    /// A connection attaches at `now`: what is queued now is its backlog, which can be
    /// written from now on.
    pub fn attach(&mut self, conn: ConnId, now: Instant) -> Option<ConnId> {
        for (_, at) in &mut self.outbox {
            *at = now;
        }
        self.backlog = self.outbox.len();
        self.backlog_bytes = self.outbox_bytes;
        self.closing = false;
        self.conn.replace(conn)
    }

    /// Takes every queued message for writing. What the client does not acknowledge stays
    /// in the replay buffer (at most `keep` messages and `keep_bytes` bytes: the oldest go
    /// first).
    #[cfg(test)]
    pub fn take(&mut self, keep: usize, keep_bytes: usize) -> Vec<Outgoing> {
        self.take_timed(keep, keep_bytes).0
    }

    /// [`Session::take`], with when each message could first be written.
    pub fn take_timed(&mut self, keep: usize, keep_bytes: usize) -> (Vec<Outgoing>, Vec<Instant>) {
        self.backlog = 0;
        self.backlog_bytes = 0;
        // Taken whole, buffer and all: an idle session keeps no queue allocation.
        let (batch, times): (Vec<Outgoing>, Vec<Instant>) =
            std::mem::take(&mut self.outbox).into_iter().unzip();
        self.outbox_bytes = 0;
        if !self.acks {
            self.unacked.clear();
            self.unacked_bytes = 0;
        }
        for msg in &batch {
            if !matches!(**msg, ServerMessage::Welcome(_)) {
                self.delivered += 1;
                self.unacked_bytes += weight(msg);
                self.unacked.push_back(msg.clone());
            }
        }
        let (limit, limit_bytes) = if self.acks {
            (keep, keep_bytes)
        } else {
            (batch.len(), usize::MAX)
        };
        while self.unacked.len() > limit || self.unacked_bytes > limit_bytes {
            let Some(old) = self.unacked.pop_front() else {
                break;
            };
            self.unacked_bytes -= weight(&old);
        }
        (batch, times)
    }

    /// The last `unwritten` messages taken were never written: queue them again first (as
    /// of `now`).
    pub fn untake(&mut self, unwritten: &[Outgoing], now: Instant) {
        for msg in unwritten.iter().rev() {
            if !matches!(**msg, ServerMessage::Welcome(_)) {
                if let Some(m) = self.unacked.pop_back() {
                    self.unacked_bytes -= weight(&m);
                }
                self.delivered = self.delivered.saturating_sub(1);
                self.outbox_bytes += weight(msg);
                self.outbox.push_front((msg.clone(), now));
            }
        }
    }

    /// The index of the oldest message in the replay buffer (or of the next one to come).
    fn first_unacked(&self) -> u64 {
        self.delivered - self.unacked.len() as u64 + 1
    }

    /// The client has received `count` messages after `welcome`: forget those.
    pub fn ack(&mut self, count: u64) {
        self.acks = true;
        let first = self.first_unacked();
        let done = count
            .saturating_add(1)
            .saturating_sub(first)
            .min(self.unacked.len() as u64);
        for m in self.unacked.drain(..done as usize) {
            self.unacked_bytes -= weight(&m);
        }
    }

    /// On resume: the client got `received` messages. Everything after that which is still
    /// in the replay buffer goes back to the head of the queue. Returns how many messages
    /// the client missed that could not be replayed (beyond the buffer).
    pub fn rewind(&mut self, received: Option<u64>, now: Instant) -> u64 {
        let Some(received) = received.filter(|_| self.acks) else {
            self.unacked.clear();
            self.unacked_bytes = 0;
            return 0;
        };
        let received = received.min(self.delivered);
        let first = self.first_unacked();
        let missing = first.saturating_sub(received + 1);
        let replay: Vec<Outgoing> = self.unacked.drain(..).collect();
        self.unacked_bytes = 0;
        let skip = (received + 1).saturating_sub(first) as usize;
        for msg in replay.into_iter().skip(skip).rev() {
            self.outbox_bytes += weight(&msg);
            self.outbox.push_front((msg, now));
        }
        // Replayed messages are numbered again from what the client counted.
        self.delivered = received;
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signaling_protocol::{EndReason, Welcome};

    fn ended(n: u64) -> Outgoing {
        Arc::new(ServerMessage::ended(
            CallId::new(format!("c{n}")).unwrap(),
            EndReason::Hangup,
        ))
    }

    fn now() -> Instant {
        server_kit::clock::now()
    }

    fn welcome() -> ServerMessage {
        ServerMessage::Welcome(Welcome {
            version: 1,
            user: UserName::new("a").unwrap(),
            session: "t".into(),
            resumed: false,
            heartbeat_s: 20,
            resume_ttl_s: 30,
            ice_servers: vec![],
            rate_per_s: None,
            rate_burst: None,
        })
    }

    fn ids(msgs: &[Outgoing]) -> Vec<String> {
        msgs.iter()
            .map(|m| match &**m {
                ServerMessage::Ended(e) => e.call_id.to_string(),
                other => other.kind().to_string(),
            })
            .collect()
    }

    fn session(acks: bool) -> Session {
        Session::new(
            UserName::new("a").unwrap(),
            "t".into(),
            ConnId(1),
            acks,
            now(),
        )
    }

    #[test]
    fn untake_requeues_in_order() {
        let mut s = session(false);
        s.push_welcome(welcome(), now());
        for n in 1..=3 {
            s.push(ended(n), now());
        }
        let batch = s.take(100, usize::MAX);
        assert_eq!(ids(&batch), ["welcome", "c1", "c2", "c3"]);
        s.untake(&batch[2..], now());
        s.push(ended(4), now());
        assert_eq!(ids(&s.take(100, usize::MAX)), ["c2", "c3", "c4"]);
    }

    #[test]
    fn rewind_replays_what_the_client_missed() {
        let mut s = session(true);
        s.push_welcome(welcome(), now());
        for n in 1..=5 {
            s.push(ended(n), now());
        }
        s.take(100, usize::MAX);
        s.ack(2);
        s.push(ended(6), now());
        // The socket died; the client got 3 messages, and c6 was never taken.
        assert_eq!(s.rewind(Some(3), now()), 0);
        s.push_welcome(welcome(), now());
        assert_eq!(ids(&s.take(100, usize::MAX)), ["welcome", "c4", "c5", "c6"]);
        // Indices continue: the client now counts 6.
        s.ack(6);
        assert_eq!(s.unacked.len(), 0);
    }

    #[test]
    fn rewind_reports_what_fell_out_of_the_buffer() {
        let mut s = session(true);
        for n in 1..=5 {
            s.push(ended(n), now());
        }
        s.take(2, usize::MAX);
        assert_eq!(s.rewind(Some(1), now()), 2, "c2 and c3 are gone");
        assert_eq!(ids(&s.take(100, usize::MAX)), ["c4", "c5"]);
    }

    #[test]
    fn an_unwritten_welcome_is_replaced_not_repeated() {
        let mut s = session(true);
        s.push_welcome(welcome(), now());
        s.push(ended(1), now());
        // The connection closed before anything was written; the next one says hello.
        s.push_welcome(welcome(), now());
        assert_eq!(ids(&s.take(100, usize::MAX)), ["welcome", "c1"]);
    }

    #[test]
    fn without_acks_nothing_is_replayed() {
        let mut s = session(false);
        for n in 1..=3 {
            s.push(ended(n), now());
        }
        s.take(100, usize::MAX);
        assert_eq!(s.rewind(None, now()), 0);
        assert!(s.take(100, usize::MAX).is_empty());
    }
}
