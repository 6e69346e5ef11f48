//! The HTTP side: health, metrics, the web demo, Origin allow-list, connection limit.
#![allow(clippy::unwrap_used)]

mod support;

use signaling_protocol::ErrorCode;
use support::*;

/// The headers of a WebSocket upgrade (RFC 6455's example key).
const UPGRADE: [(&str, &str); 4] = [
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Version", "13"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
];

#[tokio::test]
#[allow(clippy::disallowed_methods)] // bounded polling of /metrics
async fn health_demo_and_metrics() {
    let server = server_with(|c| c.metrics_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let addr = server.local_addr();
    let health = http_get(addr, "/healthz", &[]).await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let page = http_get(addr, "/", &[]).await;
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("text/html"),
        "{page}"
    );
    // ES modules load only with a JavaScript MIME type.
    for module in ["/app.js", "/call.js", "/signaling-client.js"] {
        let js = http_get(addr, module, &[]).await;
        assert!(
            js.starts_with("HTTP/1.1 200") && js.contains("javascript"),
            "{module}: {js}"
        );
    }
    assert!(
        http_get(addr, "/no-such-file.js", &[])
            .await
            .starts_with("HTTP/1.1 404")
    );
    // Plain GET /ws without an upgrade is refused clearly.
    assert!(http_get(addr, "/ws", &[]).await.starts_with("HTTP/1.1 400"));

    let mut alice = Client::join(addr, "alice").await;
    let mut bob = Client::join(addr, "bob").await;
    connected_call(&mut alice, &mut bob, "c1", "alice", "bob").await;
    bob.send_raw("nope").await;
    bob.expect_error(ErrorCode::BadMessage).await;
    // Metrics are not on the user-facing listener (issue 16, item 9), only on their own.
    let public = http_get(addr, "/metrics", &[]).await;
    assert!(
        public.starts_with("HTTP/1.1 404") && !public.contains("signaling_"),
        "{public}"
    );
    let metrics = http_get(server.metrics_addr().unwrap(), "/metrics", &[]).await;
    for line in [
        "signaling_connections 2",
        "signaling_sessions 2",
        "signaling_calls 1",
        "signaling_messages_in_total{type=\"hello\"} 2",
        "signaling_messages_in_total{type=\"invite\"} 1",
        "signaling_messages_in_total{type=\"invalid\"} 1",
        "signaling_messages_out_total{type=\"accepted\"} 1",
        "signaling_errors_total{code=\"bad_message\"} 1",
        "signaling_call_outcomes_total{outcome=\"accepted\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    // Each of the 6 messages written (2 welcomes, invite, ringing, accepted, error) had its
    // wait measured, once it was written (just after the client could read it: polled).
    let delivered = "signaling_message_delivery_seconds_count 6";
    let deadline = tokio::time::Instant::now() + WAIT;
    let metrics = loop {
        let metrics = http_get(server.metrics_addr().unwrap(), "/metrics", &[]).await;
        if metrics.contains(delivered) || tokio::time::Instant::now() > deadline {
            break metrics;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    for line in [
        delivered,
        "signaling_message_delivery_seconds_bucket{le=\"+Inf\"} 6",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn origin_allow_list() {
    let server = server_with(|c| c.allowed_origins = vec!["https://call.example.com".into()]).await;
    let addr = server.local_addr();
    let with = |origin: &'static str| {
        let mut h = UPGRADE.to_vec();
        h.push(("Origin", origin));
        h
    };
    let refused = http_get(addr, "/ws", &with("https://evil.example.com")).await;
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    let allowed = http_get_head(addr, &with("https://call.example.com")).await;
    assert!(allowed.starts_with("HTTP/1.1 101"), "{allowed}");
    assert!(
        allowed.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "RFC 6455 accept key: {allowed}"
    );
    // Native apps send no Origin.
    Client::join(addr, "native").await;
    server.shutdown().await;
}

#[tokio::test]
async fn connections_over_the_limit_get_503() {
    let server = server_with(|c| c.max_connections = 2).await;
    let addr = server.local_addr();
    let _a = Client::join(addr, "a").await;
    let _b = Client::join(addr, "b").await;
    let third = http_get(addr, "/ws", &UPGRADE).await;
    assert!(third.starts_with("HTTP/1.1 503"), "{third}");
    server.shutdown().await;
}

#[tokio::test]
async fn websockets_that_never_say_hello_are_closed_and_free_their_slot() {
    // Two sockets that answer every ping but never say hello used to hold both slots of
    // `max_connections` forever (issue 16, item 4).
    let server = server_with(|c| {
        c.max_connections = 2;
        c.heartbeat = std::time::Duration::from_secs(1);
        c.hello_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    let addr = server.local_addr();
    let mut squatters = [Client::open(addr).await, Client::open(addr).await];
    for squatter in &mut squatters {
        // Reading answers the server's pings, as a live client would.
        assert_eq!(
            squatter.recv_close().await,
            Some(1008),
            "closed for no hello"
        );
    }
    // Their slots are free again (once their tasks have finished closing).
    let mut answer = String::new();
    for _ in 0..100 {
        answer = http_get_head(addr, &UPGRADE).await;
        if answer.starts_with("HTTP/1.1 101") {
            break;
        }
        #[allow(clippy::disallowed_methods)] // a test polling the real server
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    let (_, welcome) = Client::join_with(addr, hello("alice")).await;
    assert_eq!(welcome.user.as_str(), "alice");
    server.shutdown().await;
}

#[tokio::test]
async fn slow_and_idle_http_connections_are_closed_and_capped() {
    // Slowloris: headers sent a byte now and then were read with no deadline, and
    // connections that had not upgraded were not counted (issue 16, item 3).
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = server_with(|c| {
        c.http_header_timeout = std::time::Duration::from_secs(1);
        c.max_http_connections = 3;
    })
    .await;
    let addr = server.local_addr();
    // A request whose headers trickle in is closed after the header timeout.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut closed = false;
    for _ in 0..30 {
        if slow.write_all(b"X").await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(std::time::Duration::from_millis(200), slow.read(&mut buf)).await
        {
            // Closed (hyper may say 408 first).
            Ok(Ok(0) | Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => assert!(
                String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
                "{}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(_) => {}
        }
    }
    assert!(
        closed,
        "a trickling request kept for {:?}",
        started.elapsed()
    );
    // Three silent connections fill the HTTP stage; a fourth is closed at once.
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    #[allow(clippy::disallowed_methods)] // a test: let the server accept the three
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut fourth = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(std::time::Duration::from_secs(2), fourth.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "fourth: {read:?}");
    // The silent ones are closed by the header timeout, and the server serves again.
    for conn in &mut silent {
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(_)) | Ok(Err(_))), "silent: {read:?}");
    }
    let health = http_get(addr, "/healthz", &[]).await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    server.shutdown().await;
}

/// Sends a GET /ws upgrade and returns what arrives first (a 101 keeps the socket open).
async fn http_get_head(addr: std::net::SocketAddr, headers: &[(&str, &str)]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET /ws HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}
