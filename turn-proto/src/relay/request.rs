//! STUN/TURN requests: Binding, then authentication (RFC 8489 §9.2.4) and Allocate,
//! Refresh, CreatePermission and ChannelBind (RFC 8656 §7–§11).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use stun_rs::attributes::stun::XorMappedAddress;
use stun_rs::attributes::turn::{LifeTime, XorRelayedAddress};
use stun_rs::methods::{ALLOCATE, BINDING, CHANNEL_BIND, CREATE_PERMMISSION, REFRESH};
use stun_rs::{
    AddressFamily, Algorithm, AlgorithmId, HMACKey, MessageMethod, StunAttribute, StunMessage,
};

use super::{BIND_ATTEMPTS, BindFailure, FromClient, Now, Relay};
use crate::allocation::{AllocId, Allocation, BindError};
use crate::auth::{AuthFailure, Quota};
use crate::five_tuple::FiveTuple;
use crate::framing::{CHANNEL_MAX, CHANNEL_MIN};
use crate::integrity;
use crate::response::{self, Signer, StunError};
use server_kit::TokenBucket;

/// UDP in REQUESTED-TRANSPORT (the only relayed transport, RFC 8656 §7.2).
const PROTOCOL_UDP: u8 = 17;

/// A request that passed authentication.
struct Authenticated {
    username: String,
    quota: Quota,
    signer: Signer,
}

/// The attributes the relay reads, collected in one pass (the first of each counts,
/// except XOR-PEER-ADDRESS, which CreatePermission may repeat).
#[derive(Default)]
struct Fields<'a> {
    username: Option<&'a str>,
    realm: Option<&'a str>,
    nonce: Option<&'a str>,
    lifetime: Option<u32>,
    transport: Option<u8>,
    family: Option<AddressFamily>,
    even_port: bool,
    reservation: bool,
    channel: Option<u16>,
    peers: Vec<SocketAddr>,
    unknown_required: Vec<u16>,
}

fn fields(msg: &StunMessage) -> Fields<'_> {
    let mut f = Fields::default();
    for attr in msg.attributes() {
        match attr {
            StunAttribute::UserName(a) => _ = f.username.get_or_insert(a.as_str()),
            StunAttribute::Realm(a) => _ = f.realm.get_or_insert(a.as_str()),
            StunAttribute::Nonce(a) => _ = f.nonce.get_or_insert(a.as_str()),
            StunAttribute::LifeTime(a) => _ = f.lifetime.get_or_insert(*a.as_ref()),
            StunAttribute::RequestedTrasport(a) => {
                _ = f.transport.get_or_insert(a.protocol().as_u8())
            }
            StunAttribute::RequestedAddressFamily(a) => _ = f.family.get_or_insert(a.family()),
            StunAttribute::EvenPort(_) => f.even_port = true,
            StunAttribute::ReservationToken(_) => f.reservation = true,
            StunAttribute::ChannelNumber(a) => _ = f.channel.get_or_insert(a.number()),
            StunAttribute::XorPeerAddress(a) => f.peers.push(*a.socket_address()),
            StunAttribute::Unknown(u) if u.attribute_type().is_comprehension_required() => {
                f.unknown_required.push(u.attribute_type().as_u16())
            }
            _ => {}
        }
    }
    f
}

impl<H: Clone> Relay<H> {
    pub(super) fn request(
        &mut self,
        from: FiveTuple,
        msg: &StunMessage,
        buf: &[u8],
        now: Now,
    ) -> FromClient<H> {
        let method = msg.method();
        if method == BINDING {
            let mapped: StunAttribute = XorMappedAddress::from(from.client).into();
            return FromClient::Reply(response::success(
                BINDING,
                msg.transaction_id(),
                vec![mapped],
                None,
            ));
        }
        let f = fields(msg);
        if let Some(code) = self.refused_unsigned(from, method, &f, buf) {
            // Cannot succeed, whoever sent it: the small error instead of a challenge.
            if !self.may_answer_unauthenticated(from, now.mono) {
                return self.drop("unauthenticated_budget");
            }
            let tid = msg.transaction_id();
            return FromClient::Reply(response::unauthenticated_error(method, tid, code));
        }
        let auth = match self.authenticate(from, msg, &f, buf, now) {
            Ok(auth) => auth,
            Err(reply) => return reply,
        };
        let tid = msg.transaction_id();
        if !f.unknown_required.is_empty() {
            return FromClient::Reply(response::unknown_attributes(
                method,
                tid,
                &f.unknown_required,
            ));
        }
        let reply = |code: StunError| {
            FromClient::Reply(response::error(
                method,
                tid,
                code,
                Vec::new(),
                Some(&auth.signer),
            ))
        };
        if method == ALLOCATE {
            return self.allocate(from, msg, &f, auth, now.mono);
        }
        if ![REFRESH, CREATE_PERMMISSION, CHANNEL_BIND].contains(&method) {
            return reply(StunError::BadRequest);
        }
        let Some(&id) = self.by_five_tuple.get(&from) else {
            return reply(StunError::AllocationMismatch);
        };
        let Some(a) = self.allocations.get(&id) else {
            return reply(StunError::AllocationMismatch);
        };
        if a.username != auth.username {
            return reply(StunError::WrongCredentials);
        }
        let outcome = match method {
            m if m == REFRESH => return self.refresh(id, msg, &f, &auth.signer, now.mono),
            m if m == CREATE_PERMMISSION => self.create_permission(id, &f, now.mono),
            _ => self.channel_bind(id, &f, now.mono),
        };
        match outcome {
            Ok(()) => FromClient::Reply(response::success(
                method,
                tid,
                Vec::new(),
                Some(&auth.signer),
            )),
            Err(code) => {
                tracing::debug!(method = method.as_u16(), code = code.code(), request = ?msg, "request refused");
                reply(code)
            }
        }
    }

    /// An unsigned request that no credential could make succeed: an Allocate without
    /// REQUESTED-TRANSPORT (400), a Refresh, CreatePermission or ChannelBind from a 5-tuple
    /// without an allocation (437), another method (400). It gets a 36-byte error rather
    /// than the larger challenge, so that a spoofed 20-byte request is not amplified 5 times
    /// (issue 16, item 10). Signed requests take the usual path and get signed answers.
    fn refused_unsigned(
        &self,
        from: FiveTuple,
        method: MessageMethod,
        f: &Fields<'_>,
        buf: &[u8],
    ) -> Option<StunError> {
        if integrity::integrity_of(buf).is_some() {
            return None;
        }
        if method == ALLOCATE {
            return f.transport.is_none().then_some(StunError::BadRequest);
        }
        if ![REFRESH, CREATE_PERMMISSION, CHANNEL_BIND].contains(&method) {
            return Some(StunError::BadRequest);
        }
        (!self.by_five_tuple.contains_key(&from)).then_some(StunError::AllocationMismatch)
    }

    /// RFC 8489 §9.2.4, in its order; every answer before the key is known is a
    /// challenge within the unauthenticated budget.
    fn authenticate(
        &mut self,
        from: FiveTuple,
        msg: &StunMessage,
        f: &Fields<'_>,
        buf: &[u8],
        clock: Now,
    ) -> Result<Authenticated, FromClient<H>> {
        let refusal = match self.check_credentials(from, f, buf, clock) {
            Ok(auth) => return Ok(auth),
            Err(refusal) => refusal,
        };
        let failure = refusal.unwrap_or(AuthFailure::Missing);
        self.metrics.auth_failure(failure.as_str());
        if !self.may_answer_unauthenticated(from, clock.mono) {
            return Err(self.drop("unauthenticated_budget"));
        }
        let tid = msg.transaction_id();
        let reply = match refusal {
            // Integrity without USERNAME, REALM or NONCE: malformed, not a challenge.
            None => response::unauthenticated_error(msg.method(), tid, StunError::BadRequest),
            Some(failure) => {
                let code = match failure {
                    AuthFailure::StaleNonce => StunError::StaleNonce,
                    _ => StunError::Unauthenticated,
                };
                let nonce = self
                    .nonces
                    .mint(from.client.ip(), self.nonce_clock(clock.mono));
                response::challenge(msg.method(), tid, code, &self.settings.realm, &nonce)
            }
        };
        Err(FromClient::Reply(reply))
    }

    /// The user and key of a request, or why not: `None` when MESSAGE-INTEGRITY comes
    /// without USERNAME, REALM or NONCE (400), else the failure to challenge (401/438).
    fn check_credentials(
        &self,
        from: FiveTuple,
        f: &Fields<'_>,
        buf: &[u8],
        clock: Now,
    ) -> Result<Authenticated, Option<AuthFailure>> {
        let (kind, span) = integrity::integrity_of(buf).ok_or(Some(AuthFailure::Missing))?;
        let (Some(username), Some(realm), Some(nonce)) = (f.username, f.realm, f.nonce) else {
            return Err(None);
        };
        if realm != self.settings.realm {
            return Err(Some(AuthFailure::WrongRealm));
        }
        let nonce_now = self.nonce_clock(clock.mono);
        self.nonces
            .check(nonce, from.client.ip(), nonce_now)
            .map_err(Some)?;
        let password = self
            .settings
            .users
            .password(username, clock.unix)
            .map_err(Some)?;
        let md5 = Algorithm::from(AlgorithmId::MD5);
        let key = HMACKey::new_long_term(username, realm, password, md5)
            .map_err(|_| Some(AuthFailure::UnknownUser))?;
        if !integrity::verify(buf, kind, &span, key.as_bytes()) {
            return Err(Some(AuthFailure::BadIntegrity));
        }
        Ok(Authenticated {
            username: username.to_owned(),
            quota: self.settings.users.quota(username),
            signer: Signer { kind, key },
        })
    }

    fn allocate(
        &mut self,
        from: FiveTuple,
        msg: &StunMessage,
        f: &Fields<'_>,
        auth: Authenticated,
        now: Instant,
    ) -> FromClient<H> {
        let tid = msg.transaction_id();
        let fail = |code: StunError| {
            FromClient::Reply(response::error(
                ALLOCATE,
                tid,
                code,
                Vec::new(),
                Some(&auth.signer),
            ))
        };
        if let Some(id) = self.by_five_tuple.get(&from) {
            // A retransmission gets the same answer; anything else is a mismatch.
            return match self.allocations.get(id) {
                Some(a) if a.allocate_transaction == *tid && !a.allocate_response.is_empty() => {
                    FromClient::Reply(a.allocate_response.clone())
                }
                _ => fail(StunError::AllocationMismatch),
            };
        }
        let Some(transport) = f.transport else {
            return fail(StunError::BadRequest);
        };
        if transport != PROTOCOL_UDP {
            return fail(StunError::UnsupportedTransport);
        }
        if f.reservation && (f.even_port || f.family.is_some()) {
            return fail(StunError::BadRequest);
        }
        if f.reservation {
            // This relay makes no reservations, so no token can match.
            return fail(StunError::InsufficientCapacity);
        }
        let bound_ip: Option<IpAddr> = match f.family.unwrap_or(AddressFamily::IPv4) {
            AddressFamily::IPv4 => self.settings.relay_ipv4.map(IpAddr::V4),
            AddressFamily::IPv6 => self.settings.relay_ipv6.map(IpAddr::V6),
        };
        let Some(bound_ip) = bound_ip else {
            return fail(StunError::AddressFamilyNotSupported);
        };
        let per_user = self.per_user.get(&auth.quota).copied().unwrap_or(0);
        if per_user >= self.settings.max_allocations_per_user {
            return fail(StunError::AllocationQuotaReached);
        }
        if self.allocations.len() >= self.settings.max_allocations {
            return fail(StunError::InsufficientCapacity);
        }
        let Some(port) = self.ports.take(&mut self.rng, f.even_port) else {
            return fail(StunError::InsufficientCapacity);
        };
        let lifetime = self.lifetime(f.lifetime);
        let id = AllocId(self.next_id);
        self.next_id += 1;
        let relay = SocketAddr::new(bound_ip, port);
        let mut a = Allocation::new(
            from,
            auth.username.clone(),
            auth.quota.clone(),
            relay,
            self.advertised(relay),
            now + lifetime,
            *tid,
        );
        a.bandwidth = self
            .settings
            .bandwidth_per_allocation
            .map(|rate| TokenBucket::new(rate, rate, now));
        a.pending = Some((auth.signer, lifetime.as_secs() as u32));
        self.by_five_tuple.insert(from, id);
        self.by_relay.insert(a.relay, id);
        self.by_relay.insert(a.advertised, id);
        self.deadlines.insert((a.expires, id));
        *self.per_user.entry(auth.quota).or_default() += 1;
        self.allocations.insert(id, a);
        self.finish_allocate_response(id);
        tracing::info!(allocation = id.0, client = %from.client, transport = from.transport.as_str(), %relay, "allocation created");
        FromClient::Open { id, relay }
    }

    /// (Re)builds the stored Allocate success response for the allocation's relay address.
    fn finish_allocate_response(&mut self, id: AllocId) {
        let Some(a) = self.allocations.get_mut(&id) else {
            return;
        };
        let Some((signer, lifetime)) = &a.pending else {
            return;
        };
        let attributes: Vec<StunAttribute> = vec![
            XorRelayedAddress::from(a.advertised).into(),
            LifeTime::from(*lifetime).into(),
            XorMappedAddress::from(a.five_tuple.client).into(),
        ];
        a.allocate_response =
            response::success(ALLOCATE, &a.allocate_transaction, attributes, Some(signer));
    }

    fn advertised(&self, relay: SocketAddr) -> SocketAddr {
        let external = match relay.ip() {
            IpAddr::V4(_) => self.settings.external_ipv4.map(IpAddr::V4),
            IpAddr::V6(_) => self.settings.external_ipv6.map(IpAddr::V6),
        };
        SocketAddr::new(external.unwrap_or(relay.ip()), relay.port())
    }

    /// The requested lifetime within [default, max] (RFC 8656 §7.2).
    fn lifetime(&self, requested: Option<u32>) -> Duration {
        let s = &self.settings;
        requested
            .map(|r| Duration::from_secs(r.into()))
            .unwrap_or(s.default_lifetime)
            .clamp(s.default_lifetime, s.max_lifetime)
    }

    fn refresh(
        &mut self,
        id: AllocId,
        msg: &StunMessage,
        f: &Fields<'_>,
        signer: &Signer,
        now: Instant,
    ) -> FromClient<H> {
        let tid = msg.transaction_id();
        let lifetime = self.lifetime(f.lifetime);
        let Some(a) = self.allocations.get_mut(&id) else {
            return FromClient::Drop;
        };
        if let Some(family) = f.family
            && family_of(a.relay.ip()) != family
        {
            let reply = response::error(
                REFRESH,
                tid,
                StunError::PeerAddressFamilyMismatch,
                Vec::new(),
                Some(signer),
            );
            return FromClient::Reply(reply);
        }
        if f.lifetime == Some(0) {
            let reply =
                response::success(REFRESH, tid, vec![LifeTime::from(0).into()], Some(signer));
            return match self.free(id) {
                Some(handle) => FromClient::Close { handle, reply },
                None => FromClient::Reply(reply),
            };
        }
        self.deadlines.remove(&(a.expires, id));
        a.expires = now + lifetime;
        self.deadlines.insert((a.expires, id));
        let attrs = vec![LifeTime::from(lifetime.as_secs() as u32).into()];
        FromClient::Reply(response::success(REFRESH, tid, attrs, Some(signer)))
    }

    fn create_permission(
        &mut self,
        id: AllocId,
        f: &Fields<'_>,
        now: Instant,
    ) -> Result<(), StunError> {
        if f.peers.is_empty() {
            return Err(StunError::BadRequest);
        }
        for peer in &f.peers {
            self.check_peer(id, *peer)?;
        }
        let cap = self.settings.max_permissions;
        let a = self
            .allocations
            .get_mut(&id)
            .ok_or(StunError::AllocationMismatch)?;
        for peer in &f.peers {
            a.permit(peer.ip(), now, cap).map_err(bind_error)?;
        }
        Ok(())
    }

    fn channel_bind(&mut self, id: AllocId, f: &Fields<'_>, now: Instant) -> Result<(), StunError> {
        let (Some(number), Some(&peer)) = (f.channel, f.peers.first()) else {
            return Err(StunError::BadRequest);
        };
        if !(CHANNEL_MIN..=CHANNEL_MAX).contains(&number) {
            return Err(StunError::BadRequest);
        }
        self.check_peer(id, peer)?;
        let (cap, permission_cap) = (self.settings.max_channels, self.settings.max_permissions);
        let a = self
            .allocations
            .get_mut(&id)
            .ok_or(StunError::AllocationMismatch)?;
        a.bind_channel(number, peer, now, cap, permission_cap)
            .map_err(bind_error)
    }

    /// A peer must match the relay's family (443) and pass the peer policy (403).
    fn check_peer(&self, id: AllocId, peer: SocketAddr) -> Result<(), StunError> {
        let a = self
            .allocations
            .get(&id)
            .ok_or(StunError::AllocationMismatch)?;
        if family_of(a.relay.ip()) != family_of(peer.ip()) {
            return Err(StunError::PeerAddressFamilyMismatch);
        }
        self.peer_allowed(peer).map_err(|refusal| {
            self.metrics.refused_peer(refusal.as_str());
            tracing::debug!(allocation = id.0, %peer, reason = refusal.as_str(), "peer refused");
            StunError::Forbidden
        })
    }
}

/// After a failed bind: another port, or 508 once [`BIND_ATTEMPTS`] are spent or when
/// the failure was not about the port. The failed port goes back to the pool (after the
/// next one is taken, so that this allocation does not draw it again): holding it for good
/// lost a port per failure, and a relay out of file descriptors for a moment lost eight per
/// Allocate and answered 508 to everyone afterwards.
pub(super) fn retry_bind<H: Clone>(
    relay: &mut Relay<H>,
    id: AllocId,
    why: BindFailure,
) -> Result<SocketAddr, Vec<u8>> {
    let Some(a) = relay.allocations.get_mut(&id) else {
        return Err(Vec::new());
    };
    a.bind_attempts += 1;
    let (old, attempts) = (a.relay, a.bind_attempts);
    let port = if attempts < BIND_ATTEMPTS && why == BindFailure::PortInUse {
        relay
            .ports
            .take(&mut relay.rng, old.port().is_multiple_of(2))
    } else {
        None
    };
    let Some(port) = port else {
        let tid = a.allocate_transaction;
        let signer = a.pending.as_ref().map(|(s, _)| s.clone());
        // Frees the allocation and its (failed) port.
        relay.free(id);
        return Err(response::error(
            ALLOCATE,
            &tid,
            StunError::InsufficientCapacity,
            Vec::new(),
            signer.as_ref(),
        ));
    };
    relay.ports.release(old.port());
    let new = SocketAddr::new(old.ip(), port);
    let advertised = relay.advertised(new);
    relay.by_relay.retain(|_, owner| *owner != id);
    relay.by_relay.insert(new, id);
    relay.by_relay.insert(advertised, id);
    if let Some(a) = relay.allocations.get_mut(&id) {
        a.relay = new;
        a.advertised = advertised;
    }
    relay.finish_allocate_response(id);
    Ok(new)
}

fn family_of(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::IPv4,
        IpAddr::V6(_) => AddressFamily::IPv6,
    }
}

fn bind_error(e: BindError) -> StunError {
    match e {
        BindError::Conflict => StunError::BadRequest,
        BindError::Full => StunError::InsufficientCapacity,
    }
}
