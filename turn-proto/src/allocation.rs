//! One allocation (RFC 8656 §2.2): a relayed transport address held for a client, its
//! permissions (§9) and channel bindings (§12). Plain state with injected time; the
//! [`crate::Relay`] core owns the allocations and the shell owns the sockets.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use stun_rs::TransactionId;

use crate::auth::Quota;
use crate::five_tuple::FiveTuple;
use crate::response::Signer;
use server_kit::TokenBucket;

/// Per-packet lookups use foldhash: fast, and seeded per process (keys come from the network).
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// How long a permission lives (RFC 8656 §9: 300 s, not negotiable).
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// How long a channel binding lives (RFC 8656 §12: 600 s).
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// After a binding expires, its number and peer stay reserved this long (§12).
pub const CHANNEL_COOLDOWN: Duration = Duration::from_secs(300);

/// An allocation's id, unique for the relay's lifetime: the shell passes it back to
/// [`Relay::handle_peer`](crate::Relay::handle_peer) with what a peer sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AllocId(
    /// The number, counted from 1 (for logs and spans).
    pub u64,
);

/// Why a permission or channel could not be installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindError {
    /// The number is bound to another peer, or the peer to another number (400).
    Conflict,
    /// The per-allocation cap on permissions or channels is reached (508).
    Full,
}

#[derive(Debug, Clone, Copy)]
struct Channel {
    peer: SocketAddr,
    expires: Instant,
}

/// One allocation's state; `H` is the shell's handle for its relay socket.
pub struct Allocation<H> {
    /// The client it belongs to (one allocation per five-tuple).
    pub five_tuple: FiveTuple,
    /// The authenticated USERNAME; later requests must carry the same one (441).
    pub username: String,
    /// Whose allocation quota it counts against.
    pub quota: Quota,
    /// Where the relay socket is bound.
    pub relay: SocketAddr,
    /// What XOR-RELAYED-ADDRESS says (the external address behind a 1:1 NAT).
    pub advertised: SocketAddr,
    /// When it expires unless refreshed.
    pub expires: Instant,
    /// The Allocate transaction, to recognise its retransmissions.
    pub allocate_transaction: TransactionId,
    /// The Allocate success response, sent again on a retransmission.
    pub allocate_response: Vec<u8>,
    /// The shell's handle of its relay socket; `None` until the socket is bound.
    pub handle: Option<H>,
    /// The per-allocation bandwidth cap, both ways together.
    pub bandwidth: Option<TokenBucket>,
    /// How to sign the Allocate success response and the lifetime it grants.
    pub pending: Option<(Signer, u32)>,
    /// Relay ports tried so far.
    pub bind_attempts: u8,
    permissions: HashMap<IpAddr, Instant>,
    channels: HashMap<u16, Channel>,
    channel_by_peer: HashMap<SocketAddr, u16>,
}

impl<H> Allocation<H> {
    /// A new allocation, without relay socket, response or bandwidth cap yet.
    pub fn new(
        five_tuple: FiveTuple,
        username: String,
        quota: Quota,
        relay: SocketAddr,
        advertised: SocketAddr,
        expires: Instant,
        allocate_transaction: TransactionId,
    ) -> Self {
        Self {
            five_tuple,
            username,
            quota,
            relay,
            advertised,
            expires,
            allocate_transaction,
            allocate_response: Vec::new(),
            handle: None,
            bandwidth: None,
            pending: None,
            bind_attempts: 0,
            permissions: HashMap::default(),
            channels: HashMap::default(),
            channel_by_peer: HashMap::default(),
        }
    }

    /// Counts `bytes` against the bandwidth cap, if any; `false` when over it.
    pub fn spend_bandwidth(&mut self, bytes: usize, now: Instant) -> bool {
        self.bandwidth
            .as_mut()
            .is_none_or(|bucket| bucket.allow_n(bytes as u64, now))
    }

    /// Installs or refreshes a permission for `ip` (ports are not part of permissions).
    pub fn permit(&mut self, ip: IpAddr, now: Instant, cap: usize) -> Result<(), BindError> {
        if !self.permissions.contains_key(&ip) && self.permissions.len() >= cap {
            self.permissions.retain(|_, expires| *expires > now);
            if self.permissions.len() >= cap {
                return Err(BindError::Full);
            }
        }
        self.permissions.insert(ip, now + PERMISSION_LIFETIME);
        Ok(())
    }

    /// Whether a live permission covers `ip`.
    pub fn permits(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions.get(&ip).is_some_and(|e| *e > now)
    }

    /// Binds `number` to `peer` or refreshes that binding, and refreshes the permission
    /// for the peer's IP (§11.2).
    pub fn bind_channel(
        &mut self,
        number: u16,
        peer: SocketAddr,
        now: Instant,
        cap: usize,
        permission_cap: usize,
    ) -> Result<(), BindError> {
        let reserved = |c: &Channel| c.expires + CHANNEL_COOLDOWN > now;
        if let Some(c) = self.channels.get(&number)
            && c.peer != peer
            && reserved(c)
        {
            return Err(BindError::Conflict);
        }
        if let Some(&other) = self.channel_by_peer.get(&peer)
            && other != number
            && self.channels.get(&other).is_some_and(reserved)
        {
            return Err(BindError::Conflict);
        }
        if !self.channels.contains_key(&number) && self.channels.len() >= cap {
            self.sweep_channels(now);
            if self.channels.len() >= cap {
                return Err(BindError::Full);
            }
        }
        self.permit(peer.ip(), now, permission_cap)?;
        if let Some(old) = self.channels.insert(
            number,
            Channel {
                peer,
                expires: now + CHANNEL_LIFETIME,
            },
        ) && old.peer != peer
        {
            self.channel_by_peer.remove(&old.peer);
        }
        if let Some(old_number) = self.channel_by_peer.insert(peer, number)
            && old_number != number
        {
            self.channels.remove(&old_number);
        }
        Ok(())
    }

    /// The peer a live channel `number` is bound to.
    pub fn channel_peer(&self, number: u16, now: Instant) -> Option<SocketAddr> {
        self.channels
            .get(&number)
            .filter(|c| c.expires > now)
            .map(|c| c.peer)
    }

    /// The live channel bound to `peer`, if any.
    pub fn channel_for(&self, peer: SocketAddr, now: Instant) -> Option<u16> {
        let number = *self.channel_by_peer.get(&peer)?;
        self.channel_peer(number, now).map(|_| number)
    }

    /// Live permissions (for the gauge).
    pub fn permission_count(&self, now: Instant) -> usize {
        self.permissions.values().filter(|e| **e > now).count()
    }

    /// Live channel bindings (for the gauge).
    pub fn channel_count(&self, now: Instant) -> usize {
        self.channels.values().filter(|c| c.expires > now).count()
    }

    /// Forgets expired permissions and channels past their cooldown.
    pub fn sweep(&mut self, now: Instant) {
        self.permissions.retain(|_, expires| *expires > now);
        self.sweep_channels(now);
    }

    fn sweep_channels(&mut self, now: Instant) {
        let by_peer = &mut self.channel_by_peer;
        self.channels.retain(|_, c| {
            let keep = c.expires + CHANNEL_COOLDOWN > now;
            if !keep {
                by_peer.remove(&c.peer);
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::five_tuple::Transport;

    fn alloc(now: Instant) -> Allocation<()> {
        let addr: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        Allocation::new(
            FiveTuple {
                client: addr,
                server: "192.0.2.9:3478".parse().unwrap(),
                transport: Transport::Udp,
            },
            "alice".into(),
            Quota::Fixed("alice".into()),
            "192.0.2.9:50000".parse().unwrap(),
            "192.0.2.9:50000".parse().unwrap(),
            now + Duration::from_secs(600),
            TransactionId::default(),
        )
    }

    fn peer(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn permissions_expire_after_300_s_and_refresh() {
        let t0 = server_kit::clock::now();
        let mut a = alloc(t0);
        let ip = peer("198.51.100.1:1").ip();
        assert!(!a.permits(ip, t0));
        a.permit(ip, t0, 10).unwrap();
        assert!(a.permits(ip, t0 + Duration::from_secs(299)));
        assert!(!a.permits(ip, t0 + Duration::from_secs(300)));
        a.permit(ip, t0 + Duration::from_secs(200), 10).unwrap();
        assert!(a.permits(ip, t0 + Duration::from_secs(499)));
    }

    #[test]
    fn permission_cap_counts_only_live_ones() {
        let t0 = server_kit::clock::now();
        let mut a = alloc(t0);
        a.permit(peer("198.51.100.1:1").ip(), t0, 2).unwrap();
        a.permit(peer("198.51.100.2:1").ip(), t0, 2).unwrap();
        assert_eq!(
            a.permit(peer("198.51.100.3:1").ip(), t0, 2),
            Err(BindError::Full)
        );
        // Refreshing an existing one is not a new one.
        a.permit(peer("198.51.100.2:1").ip(), t0, 2).unwrap();
        let later = t0 + PERMISSION_LIFETIME;
        a.permit(peer("198.51.100.3:1").ip(), later, 2).unwrap();
    }

    #[test]
    fn channels_bind_refresh_conflict_and_cool_down() {
        let t0 = server_kit::clock::now();
        let mut a = alloc(t0);
        let p1 = peer("198.51.100.1:1000");
        let p2 = peer("198.51.100.2:2000");
        a.bind_channel(0x4000, p1, t0, 10, 10).unwrap();
        assert_eq!(a.channel_peer(0x4000, t0), Some(p1));
        assert_eq!(a.channel_for(p1, t0), Some(0x4000));
        assert!(a.permits(p1.ip(), t0), "a binding installs a permission");
        // Same number, other peer; same peer, other number: both refused.
        assert_eq!(
            a.bind_channel(0x4000, p2, t0, 10, 10),
            Err(BindError::Conflict)
        );
        assert_eq!(
            a.bind_channel(0x4001, p1, t0, 10, 10),
            Err(BindError::Conflict)
        );
        // Refresh extends it.
        let t1 = t0 + Duration::from_secs(500);
        a.bind_channel(0x4000, p1, t1, 10, 10).unwrap();
        assert_eq!(a.channel_peer(0x4000, t0 + CHANNEL_LIFETIME), Some(p1));
        // Expired, but still reserved during the cooldown.
        let expired = t1 + CHANNEL_LIFETIME;
        assert_eq!(a.channel_peer(0x4000, expired), None);
        assert_eq!(
            a.bind_channel(0x4000, p2, expired, 10, 10),
            Err(BindError::Conflict)
        );
        // After the cooldown the number can go to another peer.
        let free = expired + CHANNEL_COOLDOWN;
        a.bind_channel(0x4000, p2, free, 10, 10).unwrap();
        assert_eq!(a.channel_for(p2, free), Some(0x4000));
        assert_eq!(a.channel_for(p1, free), None);
        a.bind_channel(0x4001, p1, free, 10, 10).unwrap();
        assert_eq!(a.channel_count(free), 2);
    }

    #[test]
    fn channel_cap() {
        let t0 = server_kit::clock::now();
        let mut a = alloc(t0);
        a.bind_channel(0x4000, peer("198.51.100.1:1"), t0, 1, 10)
            .unwrap();
        assert_eq!(
            a.bind_channel(0x4001, peer("198.51.100.1:2"), t0, 1, 10),
            Err(BindError::Full)
        );
    }
}
