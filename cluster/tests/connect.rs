//! Connecting: errors name the URL without its password, come within the timeout, and
//! `rediss://` is understood.
#![allow(clippy::disallowed_methods)] // Instant::now to measure how long a failure takes

mod support;

use std::error::Error;
use std::time::{Duration, Instant};

use signaling_cluster::{Cluster, ClusterConfig, ClusterError, NodeId};
use support::{RedisServer, free_port, node};

/// The error and every source under it, as text.
fn chain(err: &ClusterError) -> String {
    let mut text = format!("{err} / {err:?}");
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(&format!(" / {s}"));
        source = s.source();
    }
    text
}

async fn connect_err(config: ClusterConfig) -> (ClusterError, Duration) {
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(10), Cluster::connect(config))
        .await
        .expect("connect returns");
    (outcome.err().expect("connect fails"), started.elapsed())
}

#[tokio::test]
async fn a_closed_port_fails_fast_naming_the_url_but_not_the_password() {
    let port = free_port();
    let mut config = ClusterConfig::new(
        format!("redis://:hunter2@127.0.0.1:{port}/0"),
        NodeId::random(),
    );
    config.connect_timeout = Duration::from_secs(2);
    let (err, took) = connect_err(config).await;
    let text = chain(&err);
    assert!(matches!(err, ClusterError::Connect { .. }), "{text}");
    assert!(
        text.contains(&format!("redis://:***@127.0.0.1:{port}/0")),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_within_connect_timeout() {
    // Accepts connections (the kernel does) but never replies to anything.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut config = ClusterConfig::new(
        format!("redis://user:hunter2@127.0.0.1:{port}"),
        NodeId::random(),
    );
    config.connect_timeout = Duration::from_millis(500);
    let (err, took) = connect_err(config).await;
    let text = chain(&err);
    assert!(matches!(err, ClusterError::ConnectTimeout { .. }), "{text}");
    assert!(
        text.contains(&format!("redis://user:***@127.0.0.1:{port}")) && !text.contains("hunter2"),
        "{text}"
    );
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(1500),
        "took {took:?}"
    );
}

#[tokio::test]
async fn a_wrong_password_is_a_connect_error_without_the_password() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = format!("redis://nosuchuser:hunter2@127.0.0.1:{}", server.port());
    let (err, _) = connect_err(ClusterConfig::new(url, NodeId::random())).await;
    let text = chain(&err);
    assert!(matches!(err, ClusterError::Connect { .. }), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn a_malformed_url_is_a_connect_error() {
    let (err, _) = connect_err(ClusterConfig::new(
        "http://:hunter2@example.com",
        NodeId::random(),
    ))
    .await;
    let text = chain(&err);
    assert!(matches!(err, ClusterError::Connect { .. }), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn rediss_urls_are_accepted_and_tried_over_tls() {
    // The URL parses with TLS support compiled in (without it redis-rs refuses it).
    redis::Client::open("rediss://:pw@redis.example.com:6380/0").expect("rediss:// is supported");
    // Against a closed port: a connection error, not a configuration one.
    let port = free_port();
    let (err, _) = connect_err(ClusterConfig::new(
        format!("rediss://127.0.0.1:{port}"),
        node("tls"),
    ))
    .await;
    match &err {
        ClusterError::Connect { url, source } => {
            assert_eq!(url, &format!("rediss://127.0.0.1:{port}"));
            assert!(
                source.is_connection_refusal() || source.is_io_error(),
                "{}",
                chain(&err)
            );
        }
        other => panic!("{}", chain(other)),
    }
    // Against a plain-text server: the TLS handshake fails, within the timeout.
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut config =
        ClusterConfig::new(format!("rediss://127.0.0.1:{}", server.port()), node("tls"));
    config.connect_timeout = Duration::from_secs(2);
    let (err, took) = connect_err(config).await;
    assert!(
        matches!(
            err,
            ClusterError::Connect { .. } | ClusterError::ConnectTimeout { .. }
        ),
        "{}",
        chain(&err)
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
}
