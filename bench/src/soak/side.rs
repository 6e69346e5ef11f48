//! One party of a soak call, caller or callee, as one loop: it sets the call up, sends
//! its numbered `candidate`s and datagrams, checks the other party's, drops its socket
//! at the planned moments and resumes, and ends the call.
//!
//! The order of things makes every loss visible. The caller allocates on the relay and
//! puts its relayed address in the offer; the callee binds its channel to it, then
//! accepts with its own in the answer; the caller binds on `accepted`. Each side sends
//! datagrams only once a `candidate` of the other arrived (so the other's channel is
//! bound), and sends `candidate: null` (number `messages`) only after all of its
//! candidates and datagrams: the caller hangs up once it has everything of the callee's,
//! the callee ends on `ended` (`hangup`), which the server queues behind the caller's
//! candidates.

use std::net::SocketAddr;
use std::time::Duration;

use signaling_protocol::{
    Accept, CallId, CallRef, Candidate, ClientMessage, EndReason, IceCandidate, Invite,
    ServerMessage, UserName,
};
use tokio::time::{Instant, sleep_until};

use super::relay::RelayClient;
use super::sequence::SequenceCheck;
use super::session::Session;
use bench_support::BenchError;

/// Between two `candidate`s of one side.
pub const MESSAGE_EVERY: Duration = Duration::from_millis(100);
/// Between two datagrams of one side.
pub const DATAGRAM_EVERY: Duration = Duration::from_millis(50);
/// Between two heartbeats (each carries the `received` count).
const PING_EVERY: Duration = Duration::from_secs(5);
/// How long a side that has all the other's messages waits for its last datagrams.
const LINGER: Duration = Duration::from_secs(2);

/// Which end of the call a side is.
#[derive(Debug, Clone)]
pub enum Role {
    /// Invites `callee` and hangs up at the end.
    Caller {
        /// Who is called.
        callee: UserName,
    },
    /// Accepts the invite and waits for `ended`.
    Callee,
}

/// What one side does: its role, what it sends, when it drops its socket.
#[derive(Debug, Clone)]
pub struct SidePlan {
    /// Caller or callee.
    pub role: Role,
    /// Its user name (unique to the call).
    pub user: String,
    /// The call's id.
    pub call_id: CallId,
    /// Numbered `candidate`s it sends (then `candidate: null`).
    pub messages: u64,
    /// Numbered datagrams it sends through the relay.
    pub datagrams: u64,
    /// When it drops its socket, in order.
    pub drops: Vec<SocketDrop>,
    /// When it gives up (a failed call).
    pub deadline: Instant,
}

/// One dropped socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketDrop {
    /// When, after the side's start.
    pub at: Duration,
    /// How long the side stops reading before (the server goes on writing).
    pub deaf: Duration,
    /// How long it waits after the drop before it resumes.
    pub pause: Duration,
}

/// What one side sent and received.
#[derive(Debug, Default)]
pub struct SideOutcome {
    /// Numbered `candidate`s sent (`null` not counted).
    pub messages_sent: u64,
    /// The other side's `candidate`s, `null` as number `messages`.
    pub messages: SequenceCheck,
    /// Datagrams sent through the relay.
    pub datagrams_sent: u64,
    /// The other side's datagrams.
    pub datagrams: SequenceCheck,
    /// Sockets dropped on purpose.
    pub drops: u64,
    /// Sessions resumed after a drop.
    pub resumes: u64,
    /// Messages thrown away unread with dropped sockets (the server replayed them).
    pub discarded: u64,
}

/// Where a side is in the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the invite (callee) or `accepted` (caller).
    Setup,
    /// Exchanging numbered messages and datagrams.
    Talking,
    /// All sent and all received (caller), or `ended` received (callee): only the last
    /// datagrams are awaited, until `until`.
    Lingering { until: Instant },
}

/// Runs one side, signed in as `session`, to its end.
pub async fn run(session: Session, plan: SidePlan) -> Result<SideOutcome, BenchError> {
    let relay = RelayClient::allocate(&session.welcome.ice_servers).await?;
    let mut side = Side::new(session, relay, plan);
    if let Role::Caller { callee } = &side.plan.role {
        let invite = Invite {
            call_id: side.plan.call_id.clone(),
            to: callee.clone(),
            offer: offer(side.relay.relayed()),
            meta: None,
        };
        side.session.send(&ClientMessage::Invite(invite)).await?;
    }
    let never = side.plan.deadline;
    loop {
        let lingering = side.linger_until();
        let talking = side.phase == Phase::Talking;
        let sending = talking && side.out.messages_sent < side.plan.messages;
        let datagramming =
            talking && side.datagrams_started && side.out.datagrams_sent < side.plan.datagrams;
        let next_drop = side.next_drop();
        tokio::select! {
            _ = sleep_until(side.plan.deadline) => return Err(side.late()),
            _ = sleep_until(lingering.unwrap_or(never)), if lingering.is_some() => break,
            _ = sleep_until(next_drop.unwrap_or(never)), if next_drop.is_some() => {
                side.drop_socket().await?;
            }
            msg = side.session.next(), if lingering.is_none() => side.on_message(msg?).await?,
            n = side.relay.recv() => side.out.datagrams.record(n?),
            _ = sleep_until(side.next_message), if sending => side.send_candidate().await?,
            _ = sleep_until(side.next_datagram), if datagramming => side.send_datagram().await?,
            _ = sleep_until(side.next_ping), if lingering.is_none() => {
                side.session.ping().await?;
                side.next_ping += PING_EVERY;
            }
        }
        if side.progress().await? {
            break;
        }
    }
    side.end().await
}

/// One side's state between two events of its loop.
struct Side {
    session: Session,
    relay: RelayClient,
    plan: SidePlan,
    out: SideOutcome,
    phase: Phase,
    start: Instant,
    /// How many of the plan's drops happened.
    dropped: usize,
    /// Whether a `candidate` of the other side arrived: its channel is bound.
    datagrams_started: bool,
    /// Whether this side's closing `candidate: null` went out.
    null_sent: bool,
    next_message: Instant,
    next_datagram: Instant,
    next_ping: Instant,
}

impl Side {
    fn new(session: Session, relay: RelayClient, plan: SidePlan) -> Side {
        let start = Instant::now();
        Side {
            session,
            relay,
            plan,
            out: SideOutcome::default(),
            phase: Phase::Setup,
            start,
            dropped: 0,
            datagrams_started: false,
            null_sent: false,
            next_message: start,
            next_datagram: start,
            next_ping: start + PING_EVERY,
        }
    }

    /// When the next drop is due; none once lingering (the call is over).
    fn next_drop(&self) -> Option<Instant> {
        let due = self.plan.drops.get(self.dropped).map(|d| self.start + d.at);
        due.filter(|_| self.linger_until().is_none())
    }

    async fn drop_socket(&mut self) -> Result<(), BenchError> {
        let d = self.plan.drops[self.dropped];
        self.session.drop_and_resume(d.deaf, d.pause).await?;
        self.dropped += 1;
        Ok(())
    }

    async fn send_candidate(&mut self) -> Result<(), BenchError> {
        let n = Some(self.out.messages_sent);
        send_candidate(&mut self.session, &self.plan.call_id, n).await?;
        self.out.messages_sent += 1;
        self.next_message += MESSAGE_EVERY;
        Ok(())
    }

    async fn send_datagram(&mut self) -> Result<(), BenchError> {
        self.relay.send(self.out.datagrams_sent).await?;
        self.out.datagrams_sent += 1;
        self.next_datagram += DATAGRAM_EVERY;
        Ok(())
    }

    /// When lingering ends, once it began.
    fn linger_until(&self) -> Option<Instant> {
        match self.phase {
            Phase::Lingering { until } => Some(until),
            _ => None,
        }
    }

    /// A message from the server: the call's setup, the other's numbered `candidate`s,
    /// the callee's `ended`. Anything else fails the call.
    async fn on_message(&mut self, msg: ServerMessage) -> Result<(), BenchError> {
        match (&self.plan.role, msg) {
            (_, ServerMessage::Pong | ServerMessage::Ringing(_)) => {}
            (_, ServerMessage::Candidate(c)) => {
                self.out.messages.record(number(&c, self.plan.messages)?);
                if !self.datagrams_started {
                    self.datagrams_started = true;
                    self.next_datagram = Instant::now();
                }
            }
            (Role::Caller { .. }, ServerMessage::Accepted(a)) if self.phase == Phase::Setup => {
                self.relay.bind(peer_address(&a.answer)?).await?;
                self.talk();
            }
            (Role::Callee, ServerMessage::Invite(i)) if self.phase == Phase::Setup => {
                self.relay.bind(peer_address(&i.offer)?).await?;
                let accept = Accept {
                    call_id: i.call_id,
                    answer: offer(self.relay.relayed()),
                };
                self.session.send(&ClientMessage::Accept(accept)).await?;
                self.talk();
            }
            (Role::Callee, ServerMessage::Ended(e)) if e.reason == EndReason::Hangup => {
                self.linger();
            }
            (_, other) => {
                return Err(BenchError::Protocol(format!(
                    "{} in call {} ({:?}) got {other:?}",
                    self.plan.user, self.plan.call_id, self.phase
                )));
            }
        }
        Ok(())
    }

    fn talk(&mut self) {
        self.phase = Phase::Talking;
        self.next_message = Instant::now();
    }

    fn linger(&mut self) {
        self.phase = Phase::Lingering {
            until: Instant::now() + LINGER,
        };
    }

    /// What follows an event: the closing `null` once everything is sent, the caller's
    /// hangup once it has everything of the callee's. True when the side is done.
    async fn progress(&mut self) -> Result<bool, BenchError> {
        let all_sent = self.out.messages_sent == self.plan.messages
            && self.out.datagrams_sent == self.plan.datagrams;
        if self.phase == Phase::Talking && !self.null_sent && all_sent {
            send_candidate(&mut self.session, &self.plan.call_id, None).await?;
            self.null_sent = true;
        }
        let is_caller = matches!(self.plan.role, Role::Caller { .. });
        let all_received = self.out.messages.complete(self.plan.messages + 1);
        if self.phase == Phase::Talking && is_caller && self.null_sent && all_received {
            let hangup = CallRef {
                call_id: self.plan.call_id.clone(),
            };
            self.session.send(&ClientMessage::Hangup(hangup)).await?;
            self.linger();
        }
        let lingering = self.linger_until().is_some();
        Ok(lingering && self.out.datagrams.complete(self.plan.datagrams))
    }

    /// The error of a call not over by its deadline.
    fn late(&self) -> BenchError {
        BenchError::Protocol(format!(
            "{}: call {} not over by its deadline ({:?})",
            self.plan.user, self.plan.call_id, self.phase
        ))
    }

    /// Signs off and frees the allocation.
    async fn end(mut self) -> Result<SideOutcome, BenchError> {
        self.out.drops = self.session.drops;
        self.out.resumes = self.session.resumes;
        self.out.discarded = self.session.discarded;
        self.session.close().await?;
        self.relay.release().await?;
        Ok(self.out)
    }
}

/// The offer or answer: the relayed address the other side binds its channel to.
fn offer(relayed: SocketAddr) -> String {
    format!("soak relay {relayed}")
}

fn peer_address(sdp: &str) -> Result<SocketAddr, BenchError> {
    sdp.strip_prefix("soak relay ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| BenchError::Protocol(format!("no relayed address in {sdp:?}")))
}

/// Sends `candidate` number `n`, or `candidate: null` for `None`.
async fn send_candidate(
    session: &mut Session,
    call_id: &CallId,
    n: Option<u64>,
) -> Result<(), BenchError> {
    let candidate = n.map(|n| IceCandidate {
        candidate: format!("soak {n}"),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: None,
    });
    let msg = ClientMessage::Candidate(Candidate {
        call_id: call_id.clone(),
        candidate,
    });
    session.send(&msg).await
}

/// The number a `candidate` carries; `null` is number `messages`, the last.
fn number(c: &Candidate, messages: u64) -> Result<u64, BenchError> {
    match &c.candidate {
        None => Ok(messages),
        Some(ice) => ice
            .candidate
            .strip_prefix("soak ")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| BenchError::Protocol(format!("not a soak candidate: {ice:?}"))),
    }
}
