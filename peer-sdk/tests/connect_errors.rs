//! A failed connection to the signaling server says at which step it failed, over real
//! sockets on loopback, and keeps the error underneath as its source.
#![allow(clippy::unwrap_used)]

use std::error::Error as _;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use peer_sdk::{Client, ClientOptions, ConnectError, ConnectErrorKind, Error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite;

/// Fails the test rather than hang: the SDK's own timeout is shorter than this.
const WAIT: Duration = Duration::from_secs(15);

/// Connects as alice, with a connect timeout well under [`WAIT`].
async fn connect(url: &str) -> Result<Client, Error> {
    let options = ClientOptions {
        connect_timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    };
    tokio::time::timeout(WAIT, Client::connect_with(url, "alice", None, options))
        .await
        .expect("connect gave up in time")
}

/// The connect error of a connect that must fail.
async fn connect_error(url: &str) -> ConnectError {
    match connect(url).await {
        Err(Error::Connect(e)) => e,
        other => panic!("{url}: expected a connect error, got {other:?}"),
    }
}

/// Every error in the source chain of `e`, outermost first.
fn chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |&e| e.source()).collect()
}

/// A TCP server on loopback that reads one request and answers `response`, then closes.
async fn answer_once(response: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        // Read the whole request first: closing with unread data would reset the
        // connection and could take the answer with it.
        while !request.ends_with(b"\r\n\r\n") {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let _ = socket.write_all(response).await;
        let _ = socket.shutdown().await;
    });
    addr
}

#[tokio::test]
async fn a_closed_port_is_a_tcp_error_with_connection_refused_underneath() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/ws", closed.local_addr().unwrap());
    drop(closed);
    let error = connect(&url).await.unwrap_err();
    let Error::Connect(e) = &error else {
        panic!("{error:?}");
    };
    assert_eq!(e.kind(), ConnectErrorKind::Tcp);
    assert_eq!(e.io_kind(), Some(io::ErrorKind::ConnectionRefused));
    // The app's view: walk the chain from the SDK's error down to the io::Error.
    let io = chain(&error)
        .into_iter()
        .find_map(|e| e.downcast_ref::<io::Error>())
        .expect("an io::Error in the chain");
    assert_eq!(io.kind(), io::ErrorKind::ConnectionRefused);
    assert!(error.to_string().contains("TCP"), "{error}");
}

/// A name that cannot be resolved, and whose lookup never leaves the machine: its first
/// label is 64 bytes, over DNS's 63 (RFC 1035 §2.3.4), so the system resolver refuses it
/// before asking any server (checked with strace: no packet to the nameserver), and it is
/// under `.invalid` (RFC 6761) in case a resolver ever did ask.
#[tokio::test]
async fn an_unresolvable_host_is_a_dns_error() {
    let host = format!("{}.peer-sdk-test.invalid", "a".repeat(64));
    let e = connect_error(&format!("ws://{host}:8080/ws")).await;
    assert_eq!(e.kind(), ConnectErrorKind::Dns, "{e}");
    assert!(e.io_kind().is_some(), "{e:?}");
    assert!(e.to_string().contains("peer-sdk-test.invalid"), "{e}");
}

#[tokio::test]
async fn an_http_401_is_a_handshake_error_with_the_status() {
    let addr = answer_once(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n").await;
    let e = connect_error(&format!("ws://{addr}/ws")).await;
    assert_eq!(e.kind(), ConnectErrorKind::Handshake { status: Some(401) });
    let ws = e
        .source()
        .and_then(|s| s.downcast_ref::<tungstenite::Error>());
    assert!(matches!(ws, Some(tungstenite::Error::Http(_))), "{e:?}");
}

#[tokio::test]
async fn a_server_that_does_not_speak_http_is_a_handshake_error_without_status() {
    let addr = answer_once(b"SSH-2.0-OpenSSH_9.2\r\n").await;
    let e = connect_error(&format!("ws://{addr}/ws")).await;
    assert_eq!(
        e.kind(),
        ConnectErrorKind::Handshake { status: None },
        "{e:?}"
    );
}

#[tokio::test]
async fn the_signaling_server_at_a_wrong_path_answers_404() {
    let config = signaling::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..signaling::Config::default()
    };
    let server = signaling::Server::start(config).await.unwrap();
    let e = connect_error(&format!("ws://{}/no-such-path", server.local_addr())).await;
    assert_eq!(e.kind(), ConnectErrorKind::Handshake { status: Some(404) });
    let ok = connect(&format!("ws://{}/ws", server.local_addr())).await;
    assert!(ok.is_ok(), "{ok:?}");
}

/// A WebSocket server that sends `first` (if any) after the handshake, then closes.
async fn websocket_once(first: Option<&'static str>) -> SocketAddr {
    use futures_util::SinkExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(socket).await.unwrap();
        if let Some(text) = first {
            let _ = ws.send(tungstenite::Message::text(text)).await;
        }
        let _ = ws.close(None).await;
    });
    addr
}

#[tokio::test]
async fn a_websocket_that_does_not_speak_the_protocol_is_a_protocol_error() {
    let addr = websocket_once(Some(r#"{"hello":"world"}"#)).await;
    let e = connect_error(&format!("ws://{addr}/ws")).await;
    assert_eq!(e.kind(), ConnectErrorKind::Protocol, "{e:?}");
    assert!(e.source().is_some(), "{e:?}");

    let addr = websocket_once(None).await;
    let e = connect_error(&format!("ws://{addr}/ws")).await;
    assert_eq!(e.kind(), ConnectErrorKind::Lost, "{e:?}");
}
