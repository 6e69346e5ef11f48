//! The cluster tests' fixture: a private `redis-server` per test (test-support's), configs
//! with a key prefix of their own, and bounded polling.
//!
//! Test code: it reads the clock and sleeps in its poll loops, and panics on what a test
//! must not meet.
#![allow(clippy::disallowed_methods, dead_code, unused_imports)]

use std::future::Future;
use std::time::{Duration, Instant};

use signaling_cluster::{ClusterConfig, NodeId};
pub use test_support::redis_server::{RedisServer, free_port, unique};

/// A node id.
pub fn node(id: &str) -> NodeId {
    NodeId::new(id).expect("valid node id")
}

/// A config for `server` with a key prefix of its own and a short lease.
pub fn config(server: &RedisServer, id: &str, lease: Duration) -> ClusterConfig {
    let mut config = ClusterConfig::new(server.url(), node(id));
    config.lease = lease;
    config.key_prefix = format!("test{}:", unique());
    config
}

/// Same prefix as `other`, for a second node of the same cluster.
pub fn peer_config(other: &ClusterConfig, id: &str) -> ClusterConfig {
    let mut config = other.clone();
    config.node = node(id);
    config
}

/// Polls `check` every 20 ms until it returns `Some`, for at most `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
