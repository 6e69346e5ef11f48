//! `ClusterError`: everything that can go wrong between this node and Redis.

use std::time::Duration;

use crate::NodeId;

/// An error of the cluster layer. URLs in it never carry a password.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The URL did not parse, or the connection, TLS handshake, AUTH or first PING failed.
    #[error("cannot connect to Redis at {url}: {source}")]
    Connect {
        /// The URL, password redacted.
        url: String,
        #[source]
        source: redis::RedisError,
    },
    /// Connecting took longer than `connect_timeout`.
    #[error("connecting to Redis at {url} timed out after {after:?}")]
    ConnectTimeout {
        /// The URL, password redacted.
        url: String,
        after: Duration,
    },
    /// A Redis command failed (connection lost, or an error reply).
    #[error("Redis {command} failed: {source}")]
    Redis {
        command: &'static str,
        #[source]
        source: redis::RedisError,
    },
    /// A Redis command got no answer in time.
    #[error("Redis {command} timed out after {after:?}")]
    Timeout {
        command: &'static str,
        after: Duration,
    },
    /// A `ClusterConfig` field out of range.
    #[error("bad cluster config {key}: {reason}")]
    BadConfig {
        key: &'static str,
        reason: &'static str,
    },
    /// Not a valid node id (`NodeId::new`).
    #[error("bad node id {id:?}: {reason}")]
    BadNodeId { id: String, reason: &'static str },
    /// `send` to a node whose lease is not current: nobody would read the message.
    #[error("node {0} is not live")]
    NodeNotLive(NodeId),
    /// Redis answered something this crate did not write (a foreign key under our prefix?).
    #[error("unexpected reply to {command}: {detail}")]
    UnexpectedReply {
        command: &'static str,
        detail: String,
    },
}

impl ClusterError {
    /// Whether this says Redis is unreachable (rather than that it refused one command).
    pub(crate) fn is_connectivity(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Connect { .. } | Self::ConnectTimeout { .. } => true,
            Self::Redis { source, .. } => {
                source.is_io_error()
                    || source.is_connection_dropped()
                    || source.is_connection_refusal()
                    || source.is_timeout()
                    || source.is_unrecoverable_error()
            }
            _ => false,
        }
    }
}
