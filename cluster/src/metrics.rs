//! Prometheus metrics of the cluster layer, each labelled with this node's id.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::NodeId;

/// The `node` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabel {
    node: String,
}

/// Upper bounds of the round-trip histogram, 100 µs to 1 s.
const ROUNDTRIP_BUCKETS: [f64; 13] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// The cluster layer's counters. Cheap to clone; clones update the same values.
///
/// Names (registered as given, so pass a registry without a prefix of its own):
/// `signaling_cluster_messages_sent_total`, `signaling_cluster_messages_received_total`,
/// `signaling_cluster_redis_errors_total`, `signaling_cluster_redis_reconnects_total` and
/// the histogram `signaling_cluster_redis_roundtrip_seconds`, all with label `node`.
#[derive(Clone, Debug)]
pub struct ClusterMetrics {
    messages_sent: Family<NodeLabel, Counter>,
    messages_received: Family<NodeLabel, Counter>,
    redis_errors: Family<NodeLabel, Counter>,
    redis_reconnects: Family<NodeLabel, Counter>,
    roundtrip: Family<NodeLabel, Histogram>,
    label: NodeLabel,
}

impl ClusterMetrics {
    /// Every metric at zero for `node`.
    pub fn new(node: &NodeId) -> Self {
        let metrics = Self {
            messages_sent: Family::default(),
            messages_received: Family::default(),
            redis_errors: Family::default(),
            redis_reconnects: Family::default(),
            roundtrip: Family::new_with_constructor(|| {
                Histogram::new(ROUNDTRIP_BUCKETS.iter().copied())
            }),
            label: NodeLabel {
                node: node.to_string(),
            },
        };
        // Exposed at zero from the start, not from their first change.
        let label = &metrics.label;
        for family in [
            &metrics.messages_sent,
            &metrics.messages_received,
            &metrics.redis_errors,
            &metrics.redis_reconnects,
        ] {
            drop(family.get_or_create(label));
        }
        drop(metrics.roundtrip.get_or_create(label));
        metrics
    }

    /// Adds every metric to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "signaling_cluster_messages_sent",
            "Messages this node sent to other nodes' inboxes",
            self.messages_sent.clone(),
        );
        registry.register(
            "signaling_cluster_messages_received",
            "Messages read from this node's inbox",
            self.messages_received.clone(),
        );
        registry.register(
            "signaling_cluster_redis_errors",
            "Redis commands that failed or timed out",
            self.redis_errors.clone(),
        );
        registry.register(
            "signaling_cluster_redis_reconnects",
            "Times a connection to Redis was re-established after a failure",
            self.redis_reconnects.clone(),
        );
        registry.register(
            "signaling_cluster_redis_roundtrip_seconds",
            "Round-trip time of successful Redis commands",
            self.roundtrip.clone(),
        );
    }

    /// Messages sent so far.
    pub fn messages_sent(&self) -> u64 {
        self.messages_sent.get_or_create(&self.label).get()
    }

    /// Messages received so far.
    pub fn messages_received(&self) -> u64 {
        self.messages_received.get_or_create(&self.label).get()
    }

    /// Failed Redis commands so far.
    pub fn redis_errors(&self) -> u64 {
        self.redis_errors.get_or_create(&self.label).get()
    }

    /// Reconnects so far.
    pub fn redis_reconnects(&self) -> u64 {
        self.redis_reconnects.get_or_create(&self.label).get()
    }

    pub(crate) fn sent(&self) {
        self.messages_sent.get_or_create(&self.label).inc();
    }

    pub(crate) fn received(&self) {
        self.messages_received.get_or_create(&self.label).inc();
    }

    pub(crate) fn error(&self) {
        self.redis_errors.get_or_create(&self.label).inc();
    }

    pub(crate) fn reconnected(&self) {
        self.redis_reconnects.get_or_create(&self.label).inc();
    }

    pub(crate) fn roundtrip(&self, seconds: f64) {
        self.roundtrip.get_or_create(&self.label).observe(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn metrics_are_exposed_with_the_node_label() {
        let metrics = ClusterMetrics::new(&NodeId::new("n1").unwrap());
        metrics.sent();
        metrics.roundtrip(0.0002);
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("signaling_cluster_messages_sent_total{node=\"n1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "signaling_cluster_redis_roundtrip_seconds_bucket{le=\"0.00025\",node=\"n1\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("signaling_cluster_redis_reconnects_total{node=\"n1\"} 0"),
            "{text}"
        );
        assert_eq!(metrics.messages_sent(), 1);
    }
}
