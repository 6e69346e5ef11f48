//! Node-to-node messages: in order, exactly once, per sender.

mod support;

use std::time::Duration;

use signaling_cluster::{Cluster, ClusterError, Envelope, Inbox};
use support::{RedisServer, config, eventually, node, peer_config};

/// The next `n` envelopes, within `within`.
async fn receive(inbox: &mut Inbox, n: usize, within: Duration) -> Vec<Envelope> {
    tokio::time::timeout(within, async {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            got.push(inbox.recv().await.expect("inbox open"));
        }
        got
    })
    .await
    .unwrap_or_else(|_| panic!("{n} messages not received within {within:?}"))
}

/// Nothing more arrives for a while.
async fn nothing_more(inbox: &mut Inbox) {
    let extra = tokio::time::timeout(Duration::from_millis(1500), inbox.recv()).await;
    assert!(extra.is_err(), "unexpected message: {extra:?}");
}

#[tokio::test]
async fn a_thousand_messages_arrive_in_order_exactly_once_singly_or_in_batches() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let config_a = config(&server, "a", Duration::from_secs(10));
    let (a, _inbox_a) = Cluster::connect(config_a.clone()).await.unwrap();
    let (b, mut inbox_b) = Cluster::connect(peer_config(&config_a, "b")).await.unwrap();
    // One at a time, then in batches of 100 (one round trip each), in one order.
    for i in 0..500u32 {
        a.send(b.node(), &i.to_be_bytes()).await.unwrap();
    }
    for batch in (500..1000u32).collect::<Vec<_>>().chunks(100) {
        let payloads: Vec<Vec<u8>> = batch.iter().map(|i| i.to_be_bytes().to_vec()).collect();
        a.send_many(b.node(), &payloads).await.unwrap();
    }
    let got = receive(&mut inbox_b, 1000, Duration::from_secs(20)).await;
    for (i, envelope) in got.iter().enumerate() {
        assert_eq!(envelope.from, node("a"));
        assert_eq!(envelope.payload, (i as u32).to_be_bytes(), "message {i}");
    }
    nothing_more(&mut inbox_b).await;
    assert_eq!(a.metrics().messages_sent(), 1000);
    assert_eq!(b.metrics().messages_received(), 1000);
}

#[tokio::test]
async fn two_senders_each_keep_their_order() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let config_r = config(&server, "r", Duration::from_secs(10));
    let (receiver, mut inbox) = Cluster::connect(config_r.clone()).await.unwrap();
    let (s1, _i1) = Cluster::connect(peer_config(&config_r, "s1"))
        .await
        .unwrap();
    let (s2, _i2) = Cluster::connect(peer_config(&config_r, "s2"))
        .await
        .unwrap();
    let to = receiver.node().clone();
    let send_all = |sender: Cluster, to| async move {
        for i in 0..300u32 {
            sender.send(&to, &i.to_be_bytes()).await.unwrap();
        }
    };
    tokio::join!(send_all(s1, to.clone()), send_all(s2, to));
    let got = receive(&mut inbox, 600, Duration::from_secs(20)).await;
    for sender in ["s1", "s2"] {
        let seq: Vec<Vec<u8>> = got
            .iter()
            .filter(|e| e.from == node(sender))
            .map(|e| e.payload.clone())
            .collect();
        let want: Vec<Vec<u8>> = (0..300u32).map(|i| i.to_be_bytes().to_vec()).collect();
        assert_eq!(seq, want, "from {sender}");
    }
    nothing_more(&mut inbox).await;
}

#[tokio::test]
async fn sending_to_a_node_without_a_lease_fails_and_a_new_process_gets_no_old_messages() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let config_a = config(&server, "a", Duration::from_secs(10));
    let (a, _inbox_a) = Cluster::connect(config_a.clone()).await.unwrap();
    let err = a.send(&node("nobody"), b"hello").await.unwrap_err();
    assert!(
        matches!(&err, ClusterError::NodeNotLive(n) if n == &node("nobody")),
        "{err}"
    );

    // b's first process gets a message but dies before reading it (its reader is gone).
    let (b, inbox_b) = Cluster::connect(peer_config(&config_a, "b")).await.unwrap();
    drop(inbox_b);
    a.send(b.node(), b"for the old b").await.unwrap();
    drop(b);
    // Its successor with the same id starts clean, and gets what is sent from now on.
    let (b, mut inbox_b) = Cluster::connect(peer_config(&config_a, "b")).await.unwrap();
    a.send(b.node(), b"for the new b").await.unwrap();
    let got = receive(&mut inbox_b, 1, Duration::from_secs(5)).await;
    assert_eq!(got[0].payload, b"for the new b");
    nothing_more(&mut inbox_b).await;
}

#[tokio::test]
async fn a_slow_consumer_loses_nothing() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let config_a = config(&server, "a", Duration::from_secs(10));
    let (a, _inbox_a) = Cluster::connect(config_a.clone()).await.unwrap();
    let (b, mut inbox_b) = Cluster::connect(peer_config(&config_a, "b")).await.unwrap();
    // More than the channel holds, sent before anyone reads.
    for i in 0..3000u32 {
        a.send(b.node(), &i.to_be_bytes()).await.unwrap();
    }
    let got = receive(&mut inbox_b, 3000, Duration::from_secs(30)).await;
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, e)| e.payload == (i as u32).to_be_bytes())
    );
    // What was read does not stay in Redis: the stream is trimmed down to its newest entry
    // (at the latest when a read finds nothing new, after a second).
    let client = redis::Client::open(server.url()).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}inbox:b", config_a.key_prefix);
    let len = eventually(Duration::from_secs(5), "the inbox trimmed", || {
        let (mut conn, key) = (conn.clone(), key.clone());
        async move {
            let len: u64 = redis::cmd("XLEN")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            (len <= 1).then_some(len)
        }
    })
    .await;
    assert!(len <= 1);
}
