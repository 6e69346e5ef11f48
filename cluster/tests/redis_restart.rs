//! Redis restarted empty under two live nodes: readiness drops and returns, presence is
//! rebuilt, messages flow again.

mod support;

use std::time::Duration;

use signaling_cluster::{Cluster, Envelope, Inbox, SessionAddr};
use support::{RedisServer, config, eventually, node, peer_config};

const LEASE: Duration = Duration::from_millis(600);
/// Bound on recovery: reconnect backoff (at most 2 s) plus a lease refresh and a read.
const RECOVERY: Duration = Duration::from_secs(10);

async fn next(inbox: &mut Inbox) -> Envelope {
    tokio::time::timeout(Duration::from_secs(5), inbox.recv())
        .await
        .expect("a message within 5 s")
        .expect("inbox open")
}

#[tokio::test]
async fn presence_and_messages_recover_after_redis_restarts_empty() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let config_a = config(&server, "a", LEASE);
    let (a, mut inbox_a) = Cluster::connect(config_a.clone()).await.unwrap();
    let (b, mut inbox_b) = Cluster::connect(peer_config(&config_a, "b")).await.unwrap();
    a.register("alice", 1).await.unwrap();
    b.register("alice", 2).await.unwrap();
    b.register("bob", 3).await.unwrap();
    a.send(b.node(), b"before").await.unwrap();
    assert_eq!(next(&mut inbox_b).await.payload, b"before");

    server.stop();
    eventually(RECOVERY, "a and b not ready", || async {
        (!a.is_ready() && !b.is_ready()).then_some(())
    })
    .await;
    // Meanwhile: calls fail (bounded), and the local copy still changes.
    assert!(a.sessions("alice").await.is_err());
    let _ = b.unregister("bob", 3).await;
    let _ = a.register("alice", 4).await;

    server.restart();
    eventually(RECOVERY, "a and b ready again", || async {
        (a.is_ready() && b.is_ready()).then_some(())
    })
    .await;
    let want = [1, 2, 4];
    let sessions = eventually(RECOVERY, "alice's sessions re-registered", || async {
        let mut s = a.sessions("alice").await.ok()?;
        s.sort_by_key(|s| s.session);
        (s.len() == want.len()).then_some(s)
    })
    .await;
    let nodes = ["a", "b", "a"];
    for ((got, session), id) in sessions.iter().zip(want).zip(nodes) {
        assert_eq!(
            got,
            &SessionAddr {
                node: node(id),
                session
            }
        );
    }
    assert!(
        b.sessions("bob").await.unwrap().is_empty(),
        "bob unregistered while Redis was down"
    );
    assert_eq!(a.live_nodes().await.unwrap(), [node("a"), node("b")]);

    // Messages flow both ways again, each once.
    eventually(RECOVERY, "a can send to b", || async {
        a.send(b.node(), b"after").await.ok()
    })
    .await;
    assert_eq!(next(&mut inbox_b).await.payload, b"after");
    b.send(a.node(), b"back").await.unwrap();
    assert_eq!(next(&mut inbox_a).await.payload, b"back");
    let extra = tokio::time::timeout(Duration::from_millis(1500), inbox_b.recv()).await;
    assert!(extra.is_err(), "unexpected message: {extra:?}");

    assert!(a.metrics().redis_reconnects() > 0 && b.metrics().redis_reconnects() > 0);
    assert!(a.metrics().redis_errors() > 0);
}
