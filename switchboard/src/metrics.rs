//! Prometheus metrics (`GET /metrics`), named as in docs/protocol.md.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use signaling_protocol::ErrorCode;

type Labels = Vec<(&'static str, &'static str)>;

/// How a call's setup ended, for `signaling_call_outcomes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Accepted,
    Declined,
    Busy,
    Unavailable,
    Timeout,
    Cancelled,
    Glare,
    PeerLost,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Declined => "declined",
            Self::Busy => "busy",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
            Self::Glare => "glare",
            Self::PeerLost => "peer_lost",
        }
    }
}

/// The signaling server's Prometheus metrics. Cheap to clone; every clone updates the same
/// counters.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    connections: Gauge,
    sessions: Gauge,
    calls: Gauge,
    queued_bytes: Gauge,
    messages_in: Family<Labels, Counter>,
    messages_out: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    outcomes: Family<Labels, Counter>,
    delivery: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric at zero.
    pub fn new() -> Self {
        let (connections, sessions, calls) = (Gauge::default(), Gauge::default(), Gauge::default());
        let queued_bytes = Gauge::default();
        let (messages_in, messages_out) = (Family::default(), Family::default());
        let (errors, outcomes) = (Family::default(), Family::default());
        // 50 µs to 1.6 s.
        let delivery = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        let mut registry = Registry::with_prefix("signaling");
        registry.register(
            "connections",
            "Open WebSocket connections",
            connections.clone(),
        );
        registry.register(
            "sessions",
            "Live sessions, connected or waiting for a resume",
            sessions.clone(),
        );
        registry.register("calls", "Calls ringing or connected", calls.clone());
        registry.register(
            "queued_bytes",
            "Bytes queued for clients and kept for their replay, as the byte budgets count them",
            queued_bytes.clone(),
        );
        registry.register(
            "messages_in",
            "Messages received, by type",
            messages_in.clone(),
        );
        registry.register(
            "messages_out",
            "Messages written, by type",
            messages_out.clone(),
        );
        registry.register("errors", "Error messages sent, by code", errors.clone());
        registry.register(
            "call_outcomes",
            "How call setups ended, by outcome",
            outcomes.clone(),
        );
        registry.register(
            "message_delivery_seconds",
            "How long each message written to a client waited: from the input that queued it (a \
             client's frame read, another node's message, a timer) or its client's reconnect, \
             to the end of its write to the client's socket",
            delivery.clone(),
        );
        Self(Arc::new(Inner {
            registry,
            connections,
            sessions,
            calls,
            queued_bytes,
            messages_in,
            messages_out,
            errors,
            outcomes,
            delivery,
        }))
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.0.registry);
        out
    }

    /// `signaling_connections`: the I/O layer counts its open WebSockets.
    pub fn connections(&self) -> &Gauge {
        &self.0.connections
    }

    pub(crate) fn sessions(&self) -> &Gauge {
        &self.0.sessions
    }

    pub(crate) fn calls(&self) -> &Gauge {
        &self.0.calls
    }

    pub(crate) fn queued_bytes(&self) -> &Gauge {
        &self.0.queued_bytes
    }

    /// Counts a received message of type `kind` (`invalid`, `rate_limited` for those
    /// dropped before parsing).
    pub fn message_in(&self, kind: &'static str) {
        self.0
            .messages_in
            .get_or_create(&vec![("type", kind)])
            .inc();
    }

    /// Counts a written message of type `kind`.
    pub fn message_out(&self, kind: &'static str) {
        self.0
            .messages_out
            .get_or_create(&vec![("type", kind)])
            .inc();
    }

    /// `signaling_message_delivery_seconds`: a message written to its client's socket had
    /// waited `waited` ([`crate::Switchboard::take_outbox_timed`]).
    pub fn delivered(&self, waited: Duration) {
        self.0.delivery.observe(waited.as_secs_f64());
    }

    /// Counts an `error` sent with `code`.
    pub fn error(&self, code: ErrorCode) {
        self.0
            .errors
            .get_or_create(&vec![("code", code.as_str())])
            .inc();
    }

    pub(crate) fn outcome(&self, outcome: Outcome) {
        self.0
            .outcomes
            .get_or_create(&vec![("outcome", outcome.as_str())])
            .inc();
    }
}
