//! `wss://` against the signaling server's own TLS listener, with a CA this test makes:
//! a call between two SDK clients, and each certificate check that can fail, as the typed
//! error an app can act on.
#![allow(clippy::unwrap_used)]

mod support;

use std::error::Error as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use peer_sdk::{Argument, Client, ClientOptions, ConnectErrorKind, Error, TlsFailure};
use signaling::{ListenerTls, Server};
use support::{chat_call, options, round_trip, server_with, within};
use test_support::pki::{CertFiles, Leaf, TestCa};

fn pki_dir(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("wss-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn tls_server(files: &CertFiles) -> Server {
    let tls = ListenerTls::load(&files.cert, &files.key).unwrap();
    server_with(|c| c.tls = Some(tls)).await
}

fn wss(addr: SocketAddr) -> String {
    format!("wss://{addr}/ws")
}

/// Loopback client options that trust `ca` too.
fn trusting(ca: &TestCa) -> ClientOptions {
    ClientOptions {
        extra_ca_pem: Some(ca.pem().as_bytes().to_vec()),
        ..options()
    }
}

async fn connect_as(url: &str, user: &str, options: ClientOptions) -> Result<Client, Error> {
    within("connect", Client::connect_with(url, user, None, options)).await
}

#[tokio::test]
async fn two_clients_call_each_other_over_wss() {
    let ca = TestCa::new(&pki_dir("call"), "wss-call");
    let server = tls_server(&ca.issue("server", &Leaf::default())).await;
    let url = wss(server.local_addr());
    let alice = connect_as(&url, "alice", trusting(&ca)).await.unwrap();
    let bob = connect_as(&url, "bob", trusting(&ca)).await.unwrap();
    let (_call, _bob_call, chat, bob_chat) = chat_call(&alice, &bob).await;
    round_trip(&chat, &bob_chat, "hello over wss").await;
    round_trip(&bob_chat, &chat, "and back").await;
    // The same server does not speak plain WebSocket.
    let plain = format!("ws://{}/ws", server.local_addr());
    let Err(Error::Connect(e)) = connect_as(&plain, "carol", options()).await else {
        panic!("ws:// to a TLS listener connected");
    };
    assert!(
        matches!(e.kind(), ConnectErrorKind::Handshake { .. }),
        "{e:?}"
    );
    alice.close().await;
    bob.close().await;
    server.shutdown().await;
}

/// The connect error, which must be a TLS one, and its failure.
async fn tls_error(url: &str, options: ClientOptions) -> (TlsFailure, String) {
    let e = match connect_as(url, "alice", options).await {
        Err(Error::Connect(e)) => e,
        other => panic!("{url}: expected a TLS error, got {other:?}"),
    };
    assert_eq!(e.kind(), ConnectErrorKind::Tls, "{e:?}");
    // rustls's error is the source, for logs.
    let source = e
        .source()
        .expect("rustls's error as the source")
        .to_string();
    assert!(source.contains("certificate"), "{source}");
    (e.tls_failure().unwrap(), e.to_string())
}

#[tokio::test]
async fn each_certificate_check_that_fails_is_a_typed_error() {
    let dir = pki_dir("errors");
    let ca = TestCa::new(&dir, "wss-errors");
    let other_ca = TestCa::new(&dir, "wss-other");

    // Signed by a CA the client does not trust: neither by default nor as its extra CA.
    let good = tls_server(&ca.issue("good", &Leaf::default())).await;
    let url = wss(good.local_addr());
    for options in [options(), trusting(&other_ca)] {
        let (failure, message) = tls_error(&url, options).await;
        assert_eq!(failure, TlsFailure::UnknownIssuer, "{message}");
        assert!(message.contains("extra_ca_pem"), "{message}");
    }

    let expired = Leaf {
        expired: true,
        ..Leaf::default()
    };
    let expired = tls_server(&ca.issue("expired", &expired)).await;
    let (failure, message) = tls_error(&wss(expired.local_addr()), trusting(&ca)).await;
    assert_eq!(failure, TlsFailure::Expired, "{message}");
    assert!(message.contains("expired"), "{message}");

    let elsewhere = Leaf {
        names: &["signaling.example.test"],
        ..Leaf::default()
    };
    let elsewhere = tls_server(&ca.issue("elsewhere", &elsewhere)).await;
    let (failure, message) = tls_error(&wss(elsewhere.local_addr()), trusting(&ca)).await;
    assert_eq!(failure, TlsFailure::NameMismatch, "{message}");
    assert!(message.contains("is not for 127.0.0.1"), "{message}");

    for server in [good, expired, elsewhere] {
        server.shutdown().await;
    }
}

#[tokio::test]
async fn an_extra_ca_that_is_no_certificate_is_an_invalid_argument() {
    let options = ClientOptions {
        extra_ca_pem: Some(b"-----BEGIN CERTIFICATE-----\nnot base64\n".to_vec()),
        ..options()
    };
    // Refused before any connection is tried.
    let e = connect_as("wss://127.0.0.1:1/ws", "alice", options)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            e,
            Error::Invalid {
                what: Argument::ExtraCa,
                ..
            }
        ),
        "{e:?}"
    );
}
