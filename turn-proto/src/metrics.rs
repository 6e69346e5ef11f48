//! Prometheus metrics of the relay (prefix `turn_`). No usernames in labels: label sets
//! stay bounded however many users there are.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The label of the relayed-traffic counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Direction {
    /// `to_peer` (client → relay → peer) or `to_client`.
    direction: &'static str,
}

/// The label of the counters of refusals and drops.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

/// Which way relayed data went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// Client → relay → peer.
    ToPeer,
    /// Peer → relay → client.
    ToClient,
}

impl Way {
    fn label(self) -> Direction {
        Direction {
            direction: match self {
                Way::ToPeer => "to_peer",
                Way::ToClient => "to_client",
            },
        }
    }
}

/// The two counters of one direction, resolved once: the hot path does no label lookup.
struct WayCounters {
    packets: Counter,
    bytes: Counter,
}

/// The relay's Prometheus metrics: gauges of allocations, permissions and channels,
/// counters of relayed traffic, authentication failures, refused peers and drops.
/// Cheap to clone; every clone updates the same metrics.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    allocations: Gauge,
    permissions: Gauge,
    channels: Gauge,
    auth_failures: Family<Reason, Counter>,
    refused_peers: Family<Reason, Counter>,
    dropped: Family<Reason, Counter>,
    to_peer: WayCounters,
    to_client: WayCounters,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics in their own registry.
    pub fn new() -> Self {
        let (allocations, permissions, channels) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        let (packets, bytes): (Family<Direction, Counter>, Family<Direction, Counter>) =
            (Family::default(), Family::default());
        let (auth_failures, refused_peers, dropped): (
            Family<Reason, Counter>,
            Family<Reason, Counter>,
            Family<Reason, Counter>,
        ) = (Family::default(), Family::default(), Family::default());
        let mut registry = Registry::with_prefix("turn");
        registry.register("allocations", "Live allocations", allocations.clone());
        registry.register(
            "permissions",
            "Live permissions (counted at each sweep)",
            permissions.clone(),
        );
        registry.register(
            "channels",
            "Live channel bindings (counted at each sweep)",
            channels.clone(),
        );
        registry.register("relayed_packets", "Packets relayed", packets.clone());
        registry.register("relayed_bytes", "Application bytes relayed", bytes.clone());
        registry.register(
            "auth_failures",
            "Requests refused by authentication, by reason",
            auth_failures.clone(),
        );
        registry.register(
            "refused_peers",
            "Peer addresses refused by the peer policy, by reason",
            refused_peers.clone(),
        );
        registry.register(
            "dropped_packets",
            "Packets dropped without an answer, by reason",
            dropped.clone(),
        );
        let way = |w: Way| WayCounters {
            packets: packets.get_or_create(&w.label()).clone(),
            bytes: bytes.get_or_create(&w.label()).clone(),
        };
        let (to_peer, to_client) = (way(Way::ToPeer), way(Way::ToClient));
        Self(Arc::new(Inner {
            to_peer,
            to_client,
            registry,
            allocations,
            permissions,
            channels,
            auth_failures,
            refused_peers,
            dropped,
        }))
    }

    pub(crate) fn set_allocations(&self, n: usize) {
        self.0.allocations.set(n as i64);
    }

    pub(crate) fn set_permissions_and_channels(&self, permissions: usize, channels: usize) {
        self.0.permissions.set(permissions as i64);
        self.0.channels.set(channels as i64);
    }

    pub(crate) fn relayed(&self, way: Way, bytes: usize) {
        let c = self.way(way);
        c.packets.inc();
        c.bytes.inc_by(bytes as u64);
    }

    fn way(&self, way: Way) -> &WayCounters {
        match way {
            Way::ToPeer => &self.0.to_peer,
            Way::ToClient => &self.0.to_client,
        }
    }

    pub(crate) fn auth_failure(&self, reason: &'static str) {
        self.0.auth_failures.get_or_create(&Reason { reason }).inc();
    }

    pub(crate) fn refused_peer(&self, reason: &'static str) {
        self.0.refused_peers.get_or_create(&Reason { reason }).inc();
    }

    /// Counts a packet dropped without an answer (`turn_dropped_packets_total`); the
    /// shell counts its own drops (a full stream queue, a failed send) here too.
    pub fn dropped(&self, reason: &'static str) {
        self.0.dropped.get_or_create(&Reason { reason }).inc();
    }

    /// Packets or connections dropped so far for `reason` (tests read this).
    pub fn dropped_count(&self, reason: &'static str) -> u64 {
        self.0.dropped.get_or_create(&Reason { reason }).get()
    }

    /// Bytes relayed so far one way (tests read this).
    pub fn relayed_bytes(&self, way: Way) -> u64 {
        self.way(way).bytes.get()
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.0.registry);
        out
    }
}
