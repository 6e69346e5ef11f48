//! Presence across nodes, and nodes that die or leave.

mod support;

use std::time::Duration;

use signaling_cluster::{Cluster, ClusterEvent, NodeWatch, SessionAddr};
use support::{RedisServer, config, eventually, node, peer_config};

const LEASE: Duration = Duration::from_millis(600);

fn addr(id: &str, session: u64) -> SessionAddr {
    SessionAddr {
        node: node(id),
        session,
    }
}

/// The next event that is about `id`, within `within`.
async fn next_event_about(watch: &mut NodeWatch, id: &str, within: Duration) -> ClusterEvent {
    tokio::time::timeout(within, async {
        loop {
            match watch.recv().await.expect("watch open") {
                ClusterEvent::NodeUp(n) | ClusterEvent::NodeDown(n) if n.as_str() != id => {}
                event => return event,
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no event about {id} within {within:?}"))
}

#[tokio::test]
async fn sessions_on_two_nodes_are_seen_by_both_oldest_first() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let config_a = config(&server, "a", Duration::from_secs(10));
    let (a, _inbox_a) = Cluster::connect(config_a.clone()).await.unwrap();
    let (b, _inbox_b) = Cluster::connect(peer_config(&config_a, "b")).await.unwrap();

    a.register("alice", 1).await.unwrap();
    b.register("alice", 7).await.unwrap();
    a.register("alice", 2).await.unwrap();
    b.register("bob", 1).await.unwrap();
    a.register("alice", 1).await.unwrap(); // again: keeps its place

    let want = [addr("a", 1), addr("b", 7), addr("a", 2)];
    assert_eq!(a.sessions("alice").await.unwrap(), want);
    assert_eq!(b.sessions("alice").await.unwrap(), want);
    assert_eq!(a.sessions("bob").await.unwrap(), [addr("b", 1)]);
    assert!(a.sessions("carol").await.unwrap().is_empty());

    b.unregister("alice", 7).await.unwrap();
    a.unregister("alice", 99).await.unwrap(); // never registered: fine
    assert_eq!(
        a.sessions("alice").await.unwrap(),
        [addr("a", 1), addr("a", 2)]
    );
    assert_eq!(a.live_nodes().await.unwrap(), [node("a"), node("b")]);
    assert!(a.is_ready() && b.is_ready());

    b.leave().await.unwrap();
    assert_eq!(a.sessions("bob").await.unwrap(), []);
    assert_eq!(a.live_nodes().await.unwrap(), [node("a")]);
    a.leave().await.unwrap();
}

#[tokio::test]
async fn a_node_that_stops_refreshing_disappears_within_its_lease_and_is_reported_down() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let config_a = config(&server, "a", LEASE);
    let (a, _inbox_a) = Cluster::connect(config_a.clone()).await.unwrap();
    let mut watch = a.watch_nodes();
    let (b, inbox_b) = Cluster::connect(peer_config(&config_a, "b")).await.unwrap();
    assert_eq!(
        next_event_about(&mut watch, "b", LEASE).await,
        ClusterEvent::NodeUp(node("b"))
    );
    b.register("alice", 1).await.unwrap();
    a.register("alice", 2).await.unwrap();
    assert_eq!(
        a.sessions("alice").await.unwrap(),
        [addr("b", 1), addr("a", 2)]
    );

    // A crash, as the others see it: no leave, no more refreshes.
    drop((b, inbox_b));
    let gone = |within| {
        let a = a.clone();
        eventually(within, "b gone from sessions and live nodes", move || {
            let a = a.clone();
            async move {
                let sessions = a.sessions("alice").await.unwrap();
                let live = a.live_nodes().await.unwrap();
                (sessions == [addr("a", 2)] && live == [node("a")]).then_some(())
            }
        })
    };
    gone(LEASE + Duration::from_millis(200)).await;
    // Reported once its lease has been missing for a whole lease (not a Redis restart).
    let event = next_event_about(&mut watch, "b", LEASE * 2).await;
    assert_eq!(event, ClusterEvent::NodeDown(node("b")));

    // b comes back with the same id: its old sessions are not resurrected.
    let (b, _inbox_b) = Cluster::connect(peer_config(&config_a, "b")).await.unwrap();
    assert_eq!(
        next_event_about(&mut watch, "b", LEASE).await,
        ClusterEvent::NodeUp(node("b"))
    );
    assert_eq!(b.sessions("alice").await.unwrap(), [addr("a", 2)]);
}

#[tokio::test]
async fn a_node_that_leaves_is_reported_down() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let config_a = config(&server, "a", LEASE);
    let (a, _inbox_a) = Cluster::connect(config_a.clone()).await.unwrap();
    let mut watch = a.watch_nodes();
    let (b, mut inbox_b) = Cluster::connect(peer_config(&config_a, "b")).await.unwrap();
    assert_eq!(
        next_event_about(&mut watch, "b", LEASE).await,
        ClusterEvent::NodeUp(node("b"))
    );
    b.register("bob", 3).await.unwrap();
    b.leave().await.unwrap();
    assert!(a.sessions("bob").await.unwrap().is_empty());
    assert_eq!(
        next_event_about(&mut watch, "b", LEASE * 2).await,
        ClusterEvent::NodeDown(node("b"))
    );
    let ended = tokio::time::timeout(Duration::from_secs(2), inbox_b.recv()).await;
    assert_eq!(ended.expect("inbox ends after leave"), None);
}
