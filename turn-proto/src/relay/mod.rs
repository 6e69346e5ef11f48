//! The sans-IO TURN core: bytes and time in, bytes and decisions out.
//!
//! [`Relay`] owns every allocation. The shell (`turn-relay`'s `server.rs`) calls
//! [`Relay::handle_client`] with what a client sent, [`Relay::handle_peer`] with what
//! arrived on a relay socket, and [`Relay::handle_timeout`] when
//! [`Relay::poll_timeout`] says so; it executes what comes back. `H` is the shell's
//! handle for an allocation's relay socket, opaque here.

mod request;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::{Range, RangeInclusive};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stun_rs::attributes::turn::{Data, XorPeerAddress};
use stun_rs::methods::DATA;
use stun_rs::{MessageClass, MessageDecoder, MessageDecoderBuilder, TransactionId};

use crate::allocation::{AllocId, Allocation, HashMap};
use crate::answer_budget::AnswerBudget;
use crate::auth::{Nonces, Quota, Users};
use crate::five_tuple::FiveTuple;
use crate::framing::{self, CHANNEL_HEADER, Packet};
use crate::metrics::{Metrics, Way};
use crate::peer_policy::{PeerPolicy, Refusal};
use crate::ports::PortPool;
use crate::response;

/// Both clocks: monotonic for protocol timers, wall-clock seconds for TURN REST expiry.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic time: lifetimes, permissions, channels, nonces, rate limits.
    pub mono: Instant,
    /// Wall-clock Unix seconds: the expiry of TURN REST usernames.
    pub unix: u64,
}

/// What the core needs to know; the binaries build it from their configuration.
/// [`RelaySettings::new`] gives the defaults; every field can be changed after.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// The REALM of the long-term credentials.
    pub realm: String,
    /// Who may allocate.
    pub users: Users,
    /// Which peers clients may reach.
    pub policy: PeerPolicy,
    /// Where IPv4 relay sockets are bound; `None` refuses IPv4 allocations (440).
    pub relay_ipv4: Option<Ipv4Addr>,
    /// Where IPv6 relay sockets are bound; `None` refuses IPv6 allocations (440).
    pub relay_ipv6: Option<Ipv6Addr>,
    /// What XOR-RELAYED-ADDRESS advertises instead of the bound IPv4 (1:1 NAT).
    pub external_ipv4: Option<Ipv4Addr>,
    /// What XOR-RELAYED-ADDRESS advertises instead of the bound IPv6.
    pub external_ipv6: Option<Ipv6Addr>,
    /// The relay ports, chosen at random within this range.
    pub ports: RangeInclusive<u16>,
    /// The lifetime granted when none or a shorter one is requested (RFC 8656: 600 s).
    pub default_lifetime: Duration,
    /// The longest lifetime granted.
    pub max_lifetime: Duration,
    /// Allocations one username may hold (486 beyond).
    pub max_allocations_per_user: usize,
    /// Allocations in total (508 beyond).
    pub max_allocations: usize,
    /// Permissions per allocation (508 beyond).
    pub max_permissions: usize,
    /// Channel bindings per allocation (508 beyond).
    pub max_channels: usize,
    /// Bytes a second per allocation, both ways together; `None` for no cap.
    pub bandwidth_per_allocation: Option<u64>,
    /// How long a nonce stays valid (438 after).
    pub nonce_lifetime: Duration,
    /// Challenges (401/438/400) answered a second, all sources together.
    pub unauthenticated_per_s: u64,
    /// Of those, answered a second to one source IP (burst four times as many), so that one
    /// flooding source cannot spend everyone's budget.
    pub unauthenticated_per_source_per_s: u64,
}

impl RelaySettings {
    /// Defaults of RFC 8656 and of this relay, for `realm` and `users`.
    pub fn new(realm: &str, users: Users) -> Self {
        Self {
            realm: realm.to_owned(),
            users,
            policy: PeerPolicy::default(),
            relay_ipv4: Some(Ipv4Addr::LOCALHOST),
            relay_ipv6: None,
            external_ipv4: None,
            external_ipv6: None,
            ports: 49_152..=65_535,
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            max_allocations_per_user: 10,
            max_allocations: 10_000,
            max_permissions: 100,
            max_channels: 100,
            bandwidth_per_allocation: None,
            nonce_lifetime: Duration::from_secs(600),
            unauthenticated_per_s: 2_000,
            unauthenticated_per_source_per_s: 50,
        }
    }
}

/// Why the shell could not bind a relay socket ([`Relay::relay_failed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindFailure {
    /// The port is taken (`EADDRINUSE`): another port may work.
    PortInUse,
    /// Anything else (`EMFILE`, `ENOBUFS`, …): another port would fail the same way.
    Other,
}

/// What to do with a packet from a client.
#[derive(Debug)]
pub enum FromClient<H> {
    /// Nothing to send (dropped, counted).
    Drop,
    /// Send these bytes back to the client.
    Reply(Vec<u8>),
    /// Send `input[payload]` from the allocation's relay socket to `peer`.
    Forward {
        /// The allocation's relay socket.
        via: H,
        /// Where to send.
        peer: SocketAddr,
        /// The application data within the packet the client sent.
        payload: Range<usize>,
    },
    /// Bind a relay socket at `relay`, then call [`Relay::relay_opened`] or
    /// [`Relay::relay_failed`].
    Open {
        /// The new allocation.
        id: AllocId,
        /// The address to bind.
        relay: SocketAddr,
    },
    /// The allocation is gone: close its relay socket, then send `reply`.
    Close {
        /// The allocation's relay socket.
        handle: H,
        /// The Refresh response for the client.
        reply: Vec<u8>,
    },
}

/// What to do with a datagram a peer sent to a relay socket.
#[derive(Debug, PartialEq, Eq)]
pub enum FromPeer {
    /// Nothing to send (no allocation, no permission, over the bandwidth cap; counted).
    Drop,
    /// The ChannelData message was written in place: send `buf[..len]` to the client.
    ChannelData(usize),
    /// Send this Data indication to the client.
    Indication(Vec<u8>),
}

/// The TURN relay's state: every allocation with its permissions and channels, the
/// nonce key, the port pool and the quotas. `H` is the shell's handle for an
/// allocation's relay socket: the core stores it and hands it back, nothing more.
pub struct Relay<H> {
    settings: RelaySettings,
    nonces: Nonces,
    decoder: MessageDecoder,
    /// Nonce expiry is counted in seconds from here.
    epoch: Instant,
    rng: StdRng,
    ports: PortPool,
    allocations: HashMap<AllocId, Allocation<H>>,
    by_five_tuple: HashMap<FiveTuple, AllocId>,
    /// Bound and advertised relay addresses: peers on our own IPs must be one of these.
    by_relay: HashMap<SocketAddr, AllocId>,
    per_user: HashMap<Quota, usize>,
    deadlines: BTreeSet<(Instant, AllocId)>,
    next_id: u64,
    unauthenticated: AnswerBudget,
    next_sweep: Instant,
    metrics: Metrics,
}

/// Sources whose unauthenticated answers are counted one by one (about 50 bytes each);
/// beyond, new sources share the global budget only.
const MAX_TRACKED_SOURCES: usize = 10_000;

/// How often permissions and channels are pruned and counted.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// How many relay ports to try before answering 508.
const BIND_ATTEMPTS: u8 = 8;

impl<H: Clone> Relay<H> {
    /// A relay whose randomness (nonce key, ports, transaction ids) comes from `seed`.
    pub fn new(settings: RelaySettings, seed: [u8; 32], metrics: Metrics, now: Instant) -> Self {
        let mut rng = StdRng::from_seed(seed);
        let nonce_key: [u8; 32] = rng.random();
        Self {
            nonces: Nonces::new(nonce_key, settings.nonce_lifetime.as_secs()),
            decoder: MessageDecoderBuilder::default().build(),
            epoch: now,
            rng,
            ports: PortPool::new(settings.ports.clone()),
            allocations: HashMap::default(),
            by_five_tuple: HashMap::default(),
            by_relay: HashMap::default(),
            per_user: HashMap::default(),
            deadlines: BTreeSet::new(),
            next_id: 1,
            unauthenticated: AnswerBudget::new(
                settings.unauthenticated_per_s,
                settings.unauthenticated_per_source_per_s,
                4 * settings.unauthenticated_per_source_per_s,
                MAX_TRACKED_SOURCES,
                now,
            ),
            next_sweep: now + SWEEP_EVERY,
            metrics,
            settings,
        }
    }

    /// The metrics it updates.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Allocations held, expired ones not yet swept included.
    pub fn allocation_count(&self) -> usize {
        self.allocations.len()
    }

    /// Whether `five_tuple` holds an allocation (live or not yet swept).
    pub fn has_allocation(&self, five_tuple: &FiveTuple) -> bool {
        self.by_five_tuple.contains_key(five_tuple)
    }

    /// Handles one datagram (UDP) or one frame (TCP/TLS, padding included) from a client.
    pub fn handle_client(&mut self, from: FiveTuple, buf: &[u8], now: Now) -> FromClient<H> {
        match framing::classify_datagram(buf) {
            Ok(Packet::ChannelData { channel, data_len }) => {
                self.channel_data(from, channel, data_len, now.mono)
            }
            Ok(Packet::Stun { .. }) => self.stun(from, buf, now),
            Err(_) => self.drop("malformed"),
        }
    }

    fn channel_data(
        &mut self,
        from: FiveTuple,
        channel: u16,
        data_len: usize,
        now: Instant,
    ) -> FromClient<H> {
        let Some(a) = live(&mut self.allocations, &self.by_five_tuple, &from, now) else {
            return self.drop("no_allocation");
        };
        let Some(peer) = a.channel_peer(channel, now) else {
            return self.drop("unbound_channel");
        };
        if !a.permits(peer.ip(), now) {
            return self.drop("no_permission");
        }
        let payload = CHANNEL_HEADER..CHANNEL_HEADER + data_len;
        forward(a, &self.metrics, peer, payload, now)
    }

    fn stun(&mut self, from: FiveTuple, buf: &[u8], now: Now) -> FromClient<H> {
        if !crate::integrity::fingerprint_ok(buf) {
            return self.drop("bad_fingerprint");
        }
        let msg = match self.decoder.decode(buf) {
            Ok((msg, _)) => msg,
            Err(_) => return self.malformed_request(from, buf, now.mono),
        };
        match msg.class() {
            MessageClass::Request => self.request(from, &msg, buf, now),
            MessageClass::Indication if msg.method() == stun_rs::methods::SEND => {
                self.send_indication(from, &msg, buf, now.mono)
            }
            _ => self.drop("unexpected_message"),
        }
    }

    /// A request stun-rs could not decode (bad attribute value, truncated attribute…):
    /// 400, within the unauthenticated answer budget.
    fn malformed_request(&mut self, from: FiveTuple, buf: &[u8], now: Instant) -> FromClient<H> {
        let kind = stun_rs::MessageType::from(&[buf[0], buf[1]]);
        if kind.class() != MessageClass::Request || !self.may_answer_unauthenticated(from, now) {
            return self.drop("malformed");
        }
        let mut tid = [0u8; 12];
        tid.copy_from_slice(&buf[8..20]);
        FromClient::Reply(response::unauthenticated_error(
            kind.method(),
            &TransactionId::from(tid),
            response::StunError::BadRequest,
        ))
    }

    fn send_indication(
        &mut self,
        from: FiveTuple,
        msg: &stun_rs::StunMessage,
        buf: &[u8],
        now: Instant,
    ) -> FromClient<H> {
        let peer = msg.attributes().iter().find_map(|a| match a {
            stun_rs::StunAttribute::XorPeerAddress(p) => Some(*p.socket_address()),
            _ => None,
        });
        let (Some(peer), Some(data)) = (
            peer,
            crate::integrity::find_attr(buf, crate::integrity::ATTR_DATA),
        ) else {
            return self.drop("bad_send");
        };
        let Some(a) = live(&mut self.allocations, &self.by_five_tuple, &from, now) else {
            return self.drop("no_allocation");
        };
        if !a.permits(peer.ip(), now) {
            return self.drop("no_permission");
        }
        if let Err(r) = peer_allowed(&self.settings.policy, &self.by_relay, peer) {
            self.metrics.refused_peer(r.as_str());
            self.metrics.dropped("refused_peer");
            return FromClient::Drop;
        }
        forward(a, &self.metrics, peer, data.value, now)
    }

    /// Handles a datagram a peer sent to allocation `id`'s relay socket. The shell reads
    /// it into `buf[4..4 + data_len]`, leaving room for a ChannelData header in front and
    /// 3 bytes of padding behind (ChannelData to a TCP/TLS client is padded).
    pub fn handle_peer(
        &mut self,
        id: AllocId,
        peer: SocketAddr,
        buf: &mut [u8],
        data_len: usize,
        now: Instant,
    ) -> FromPeer {
        let Some(a) = self.allocations.get_mut(&id).filter(|a| a.expires > now) else {
            self.metrics.dropped("no_allocation");
            return FromPeer::Drop;
        };
        if !a.permits(peer.ip(), now) {
            self.metrics.dropped("no_permission");
            return FromPeer::Drop;
        }
        if !a.spend_bandwidth(data_len, now) {
            self.metrics.dropped("bandwidth");
            return FromPeer::Drop;
        }
        self.metrics.relayed(Way::ToClient, data_len);
        if let Some(channel) = a.channel_for(peer, now) {
            let pad = a.five_tuple.transport.is_stream();
            return FromPeer::ChannelData(framing::write_channel_header(
                buf, channel, data_len, pad,
            ));
        }
        let data = &buf[CHANNEL_HEADER..CHANNEL_HEADER + data_len];
        let tid = TransactionId::from(self.rng.random::<[u8; 12]>());
        FromPeer::Indication(response::encode(
            DATA,
            MessageClass::Indication,
            &tid,
            vec![XorPeerAddress::from(peer).into(), Data::new(data).into()],
            None,
        ))
    }

    /// The relay socket of `id` is bound; returns the Allocate success response.
    pub fn relay_opened(&mut self, id: AllocId, handle: H) -> Vec<u8> {
        let Some(a) = self.allocations.get_mut(&id) else {
            return Vec::new();
        };
        a.handle = Some(handle);
        let reply = a.allocate_response.clone();
        self.metrics.set_allocations(self.allocations.len());
        reply
    }

    /// Binding the relay socket of `id` failed: another address to try (when the port was
    /// taken by someone else), or the 508 response (out of attempts, or a failure another
    /// port would meet too, such as running out of file descriptors). The failed port goes
    /// back to the pool either way: whoever held it may let it go, and a failure that was
    /// not about the port says nothing about it.
    pub fn relay_failed(&mut self, id: AllocId, why: BindFailure) -> Result<SocketAddr, Vec<u8>> {
        self.metrics.dropped(match why {
            BindFailure::PortInUse => "relay_port_in_use",
            BindFailure::Other => "relay_bind_failed",
        });
        request::retry_bind(self, id, why)
    }

    /// A TCP/TLS connection closed: its allocation goes with it (RFC 8656 §3.1).
    pub fn client_closed(&mut self, five_tuple: &FiveTuple) -> Option<H> {
        let id = *self.by_five_tuple.get(five_tuple)?;
        self.free(id)
    }

    /// When [`Relay::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Instant {
        match self.deadlines.first() {
            Some((at, _)) => (*at).min(self.next_sweep),
            None => self.next_sweep,
        }
    }

    /// Frees expired allocations (their handles are returned for the shell to close) and
    /// prunes permissions and channels.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<H> {
        let mut closed = Vec::new();
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(h) = self.free(id) {
                closed.push(h);
            }
        }
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_EVERY;
            self.unauthenticated.prune(now);
            let (mut permissions, mut channels) = (0, 0);
            for a in self.allocations.values_mut() {
                a.sweep(now);
                permissions += a.permission_count(now);
                channels += a.channel_count(now);
            }
            self.metrics
                .set_permissions_and_channels(permissions, channels);
        }
        closed
    }

    fn peer_allowed(&self, peer: SocketAddr) -> Result<(), Refusal> {
        peer_allowed(&self.settings.policy, &self.by_relay, peer)
    }

    /// Removes an allocation everywhere; returns its handle if its socket was open.
    fn free(&mut self, id: AllocId) -> Option<H> {
        let a = self.allocations.remove(&id)?;
        self.by_five_tuple.remove(&a.five_tuple);
        self.by_relay.remove(&a.relay);
        self.by_relay.remove(&a.advertised);
        self.deadlines.remove(&(a.expires, id));
        self.ports.release(a.relay.port());
        if let Some(n) = self.per_user.get_mut(&a.quota) {
            *n -= 1;
            if *n == 0 {
                self.per_user.remove(&a.quota);
            }
        }
        self.metrics.set_allocations(self.allocations.len());
        tracing::info!(allocation = id.0, client = %a.five_tuple.client, relay = %a.relay, "allocation freed");
        a.handle
    }

    /// Whether an answer to an unauthenticated request from `from` fits the budget. A
    /// 5-tuple that holds an allocation is not counted: its owner's refreshes must get their
    /// 438 even while someone floods the relay, and it cannot be a spoofed reflector source
    /// without guessing a live client's address and port.
    fn may_answer_unauthenticated(&mut self, from: FiveTuple, now: Instant) -> bool {
        self.by_five_tuple.contains_key(&from) || self.unauthenticated.allow(from.client.ip(), now)
    }

    fn drop(&self, reason: &'static str) -> FromClient<H> {
        self.metrics.dropped(reason);
        FromClient::Drop
    }

    fn nonce_clock(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }
}

/// The unexpired allocation of `from`. A function over the two maps rather than a method,
/// so the caller can still use the relay's other fields while holding the allocation.
fn live<'a, H>(
    allocations: &'a mut HashMap<AllocId, Allocation<H>>,
    by_five_tuple: &HashMap<FiveTuple, AllocId>,
    from: &FiveTuple,
    now: Instant,
) -> Option<&'a mut Allocation<H>> {
    let id = by_five_tuple.get(from)?;
    allocations.get_mut(id).filter(|a| a.expires > now)
}

/// Relays `payload` to `peer` through `a` if it has a socket and bandwidth left.
fn forward<H: Clone>(
    a: &mut Allocation<H>,
    metrics: &Metrics,
    peer: SocketAddr,
    payload: Range<usize>,
    now: Instant,
) -> FromClient<H> {
    if !a.spend_bandwidth(payload.len(), now) {
        metrics.dropped("bandwidth");
        return FromClient::Drop;
    }
    let Some(via) = a.handle.clone() else {
        metrics.dropped("relay_not_open");
        return FromClient::Drop;
    };
    metrics.relayed(Way::ToPeer, payload.len());
    FromClient::Forward { via, peer, payload }
}

/// The peer policy, plus: a peer on one of our own IPs must be a live relay address
/// (two clients of this relay talking relay to relay), never another port of ours.
fn peer_allowed(
    policy: &PeerPolicy,
    by_relay: &HashMap<SocketAddr, AllocId>,
    peer: SocketAddr,
) -> Result<(), Refusal> {
    match policy.check(peer.ip()) {
        Err(Refusal::OwnAddress) if by_relay.contains_key(&canonical(peer)) => Ok(()),
        other => other,
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`, so relay addresses compare equal in either form.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}
