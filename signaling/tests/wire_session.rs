//! Sessions over real WebSockets: hello/welcome, auth, heartbeat, ICE servers.

#![allow(clippy::unwrap_used)]
// a test that cannot set up must fail loudly
// Where a real timeout must pass (the idle drop), the test configures it short and waits
// for the event (the ping, the close frame); nothing sleeps (shared/TESTING.md).
#![allow(clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use signaling::{Auth, JwtAlgorithm, JwtAuth};
use signaling_protocol::{ClientMessage, ErrorCode, Hello, Ping, ServerMessage};
use support::*;

const SECRET: &[u8] = b"a-test-secret-of-32-bytes-length";

fn unix_now() -> u64 {
    #[allow(clippy::disallowed_methods)] // tokens are minted against the real clock
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn hs256(sub: &str, exp: u64, secret: &[u8]) -> String {
    let claims = serde_json::json!({ "sub": sub, "exp": exp });
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn with_token(user: &str, token: Option<String>) -> Hello {
    Hello {
        token,
        ..hello(user)
    }
}

#[tokio::test]
async fn hello_welcome_and_heartbeat() {
    let server = server().await;
    let addr = server.local_addr();
    let (mut alice, welcome) = Client::join_with(addr, hello("alice@example.com")).await;
    assert_eq!(welcome.user.as_str(), "alice@example.com");
    assert!(!welcome.resumed);
    assert_eq!(
        (welcome.version, welcome.heartbeat_s, welcome.resume_ttl_s),
        (1, 20, 30)
    );
    assert!(
        welcome.session.len() >= 20,
        "an unguessable token: {}",
        welcome.session
    );
    assert!(welcome.ice_servers.is_empty());
    alice.send(&ClientMessage::Ping(Ping::default())).await;
    assert_eq!(alice.recv().await, ServerMessage::Pong);
    // A second hello on the same socket.
    alice.send(&ClientMessage::Hello(hello("alice"))).await;
    alice.expect_error(ErrorCode::BadState).await;
    // Two sessions of one user get different tokens.
    let (_, other) = Client::join_with(addr, hello("alice@example.com")).await;
    assert_ne!(other.session, welcome.session);
    server.shutdown().await;
}

#[tokio::test]
async fn not_ready_version_and_invalid_user() {
    let server = server().await;
    let addr = server.local_addr();
    let mut c = Client::open(addr).await;
    c.send_raw(r#"{"type":"invite","call_id":"c1","to":"bob","offer":"x"}"#)
        .await;
    c.expect_error(ErrorCode::NotReady).await;
    c.send_raw(r#"{"type":"hello","version":2,"user":"alice"}"#)
        .await;
    c.expect_error(ErrorCode::BadMessage).await;
    for bad in ["", "al ice", "ålice", &"x".repeat(65)] {
        let mut c = Client::open(addr).await;
        c.send(&ClientMessage::Hello(hello(bad))).await;
        c.expect_error(ErrorCode::InvalidUser).await;
        assert_eq!(c.recv_close().await, Some(1008), "user {bad:?}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn jwt_hs256() {
    let server = server_with(|c| c.auth = Auth::Jwt(JwtAuth::hs256(SECRET))).await;
    let addr = server.local_addr();
    let later = unix_now() + 600;
    let (_, w) = Client::join_with(
        addr,
        with_token("alice", Some(hs256("alice", later, SECRET))),
    )
    .await;
    assert_eq!(w.user.as_str(), "alice");
    for (name, token) in [
        ("missing", None),
        ("wrong sub", Some(hs256("mallory", later, SECRET))),
        ("expired", Some(hs256("alice", unix_now() - 10, SECRET))),
        (
            "bad signature",
            Some(hs256("alice", later, b"another-secret-of-enough-length!")),
        ),
        ("garbage", Some("not.a.jwt".to_string())),
    ] {
        let mut c = Client::open(addr).await;
        c.send(&ClientMessage::Hello(with_token("alice", token)))
            .await;
        c.expect_error(ErrorCode::Unauthorized).await;
        assert_eq!(c.recv_close().await, Some(1008), "{name}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn jwt_audience_issuer_and_not_before_are_checked() {
    // A token minted for another service of the same identity provider (another `aud`),
    // by another issuer, or not valid yet must not open a session (issue 16, item 11).
    let jwt = JwtAuth::hs256(SECRET).restricted_to(Some("calls"), Some("https://id.example"));
    let server = server_with(|c| c.auth = Auth::Jwt(jwt)).await;
    let addr = server.local_addr();
    let (now, later) = (unix_now(), unix_now() + 600);
    let token = |claims: serde_json::Value| {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    };
    let good = serde_json::json!({
        "sub": "alice", "exp": later, "aud": "calls", "iss": "https://id.example", "nbf": now,
    });
    let (_, w) = Client::join_with(addr, with_token("alice", Some(token(good.clone())))).await;
    assert_eq!(w.user.as_str(), "alice");
    let with = |field: &str, value: serde_json::Value| {
        let mut claims = good.clone();
        claims[field] = value;
        token(claims)
    };
    let without = |field: &str| {
        let mut claims = good.clone();
        claims.as_object_mut().unwrap().remove(field);
        token(claims)
    };
    for (name, bad) in [
        ("another audience", with("aud", "chat".into())),
        ("no audience", without("aud")),
        ("another issuer", with("iss", "https://evil.example".into())),
        ("no issuer", without("iss")),
        ("not valid for an hour", with("nbf", (now + 3600).into())),
    ] {
        let mut c = Client::open(addr).await;
        c.send(&ClientMessage::Hello(with_token("alice", Some(bad))))
            .await;
        c.expect_error(ErrorCode::Unauthorized).await;
        assert_eq!(c.recv_close().await, Some(1008), "{name}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn jwt_eddsa_public_key() {
    let public = include_bytes!("fixtures/ed25519-public.pem");
    let private = include_bytes!("fixtures/ed25519-private.pem");
    let jwt = JwtAuth::from_public_key_pem(JwtAlgorithm::EdDsa, public).unwrap();
    let server = server_with(|c| c.auth = Auth::Jwt(jwt)).await;
    let addr = server.local_addr();
    let claims = serde_json::json!({ "sub": "bob", "exp": unix_now() + 600 });
    let key = EncodingKey::from_ed_pem(private).unwrap();
    let token = encode(&Header::new(Algorithm::EdDSA), &claims, &key).unwrap();
    let (_, w) = Client::join_with(addr, with_token("bob", Some(token))).await;
    assert_eq!(w.user.as_str(), "bob");
    // An HS256 token cannot pass for EdDSA.
    let mut c = Client::open(addr).await;
    c.send(&ClientMessage::Hello(with_token(
        "bob",
        Some(hs256("bob", unix_now() + 600, SECRET)),
    )))
    .await;
    c.expect_error(ErrorCode::Unauthorized).await;
    server.shutdown().await;
}

#[tokio::test]
async fn welcome_carries_turn_rest_credentials() {
    let server = server_with(|c| {
        c.ice_urls = vec![
            "stun:127.0.0.1:3478".into(),
            "turn:127.0.0.1:3478?transport=udp".into(),
        ];
        c.turn_secret = Some("turn-shared-secret".into());
        c.turn_credential_ttl = Duration::from_secs(3600);
    })
    .await;
    let (_, w) = Client::join_with(server.local_addr(), hello("alice")).await;
    let [ice] = w.ice_servers.as_slice() else {
        panic!("{:?}", w.ice_servers)
    };
    assert_eq!(ice.urls.len(), 2);
    let username = ice.username.clone().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, "alice");
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        (unix_now() + 3590..=unix_now() + 3610).contains(&expiry),
        "{expiry}"
    );
    let expected = turn_relay::credentials::password_for(b"turn-shared-secret", &username);
    assert_eq!(ice.credential.as_deref(), Some(expected.as_str()));
    server.shutdown().await;
}

#[tokio::test]
async fn a_silent_connection_is_pinged_then_dropped_and_a_pong_keeps_it() {
    // Long enough that the first ping is not overtaken by the close (the policy's unit tests
    // pin the exact times), short enough for a quick test.
    const HEARTBEAT: Duration = Duration::from_millis(500);
    let server = server_with(|c| c.heartbeat = HEARTBEAT).await;
    let addr = server.local_addr();
    let before_hello = std::time::Instant::now();
    let (mut idle, w) = Client::join_with(addr, hello("idle")).await;
    assert_eq!(w.heartbeat_s, 1, "whole seconds, at least 1");
    // The client still reads, but its pongs never arrive: the server pings, then closes.
    idle.mute_uplink();
    idle.expect_ping().await;
    assert_eq!(idle.recv_close().await, Some(1001));
    assert!(
        before_hello.elapsed() >= 2 * HEARTBEAT,
        "not before 2 heartbeats of silence"
    );
    // A client that only answers the pings stays: the third ping comes 3 heartbeats after
    // the socket opened, a heartbeat past the close it would have got without its pongs.
    let mut live = Client::join(addr, "live").await;
    for _ in 0..3 {
        live.expect_ping().await;
    }
    live.send(&ClientMessage::Ping(Ping::default())).await;
    assert_eq!(live.recv().await, ServerMessage::Pong);
    server.shutdown().await;
}

#[tokio::test]
async fn sessions_per_user_are_capped() {
    // Any number of sessions per user, each queueing up to resume_queue messages, let one
    // user grow the server without bound (issue 16, item 2).
    let server = server_with(|c| c.max_sessions_per_user = 2).await;
    let addr = server.local_addr();
    let first = Client::join(addr, "bob").await;
    let _second = Client::join(addr, "bob").await;
    let mut third = Client::open(addr).await;
    third.send(&ClientMessage::Hello(hello("bob"))).await;
    third.expect_error(ErrorCode::RateLimited).await;
    assert_eq!(third.recv_close().await, Some(1008));
    // A dropped socket leaves a session waiting for a resume: a new one takes its place.
    drop(first);
    let mut joined = None;
    for _ in 0..50 {
        let mut c = Client::open(addr).await;
        c.send(&ClientMessage::Hello(hello("bob"))).await;
        match c.recv_close_or_message().await {
            Ok(ServerMessage::Welcome(w)) => {
                joined = Some(w);
                break;
            }
            _ => {
                #[allow(clippy::disallowed_methods)] // a test polling the real server
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    assert!(joined.is_some(), "a new session once the old one dropped");
    server.shutdown().await;
}

#[tokio::test]
async fn detached_sessions_cannot_hold_more_than_their_byte_budget() {
    // Issue 16, item 2: 24 MB of candidates for a user's 20 detached, ringing sessions grew
    // the server by 460 MiB. Bodies are shared now, and each session holds at most
    // `queue_bytes` (4 MiB by default): past it the session ends, and with it the call.
    let server = server_with(|c| {
        c.rate_per_s = 100_000;
        c.rate_burst = 100_000;
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let addr = server.local_addr();
    let mut alice = Client::join(addr, "alice").await;
    let mut devices = Vec::new();
    for _ in 0..16 {
        devices.push(Client::join(addr, "bob").await);
    }
    alice.invite("c1", "bob").await;
    alice.expect_ringing("c1").await;
    for d in &mut devices {
        d.expect_invite("c1", "alice").await;
    }
    // Every device loses its network: 16 sessions wait for a resume, ringing.
    for d in devices {
        d.cut();
    }
    let payload = "x".repeat(60 * 1024);
    let mut ended_after = None;
    for i in 1..=400 {
        alice.send(&candidate("c1", &payload)).await;
        if let Ok(msg) = tokio::time::timeout(Duration::from_millis(2), alice.recv()).await {
            match msg {
                ServerMessage::Ended(e) if e.call_id.as_str() == "c1" => {
                    assert_eq!(e.reason, signaling_protocol::EndReason::PeerLost);
                    ended_after = Some(i);
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    let n = ended_after.expect("24 MB of candidates queued and the call still rings");
    // 4 MiB of 60 KiB candidates is 68 of them; the rest is the time the ended takes.
    assert!(n <= 120, "the sessions ended after {n} candidates");
    let metrics = http_get(server.metrics_addr().unwrap(), "/metrics", &[]).await;
    let queued: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("signaling_queued_bytes "))
        .expect("the queued_bytes gauge")
        .trim()
        .parse()
        .unwrap();
    assert!(queued < 64 * 1024, "{queued} bytes still queued");
    // Alice's session is untouched: candidates sent before she read the `ended` are
    // refused (`unknown_call`), then her ping is answered.
    alice.send(&ClientMessage::Ping(Ping::default())).await;
    loop {
        match alice.recv().await {
            ServerMessage::Pong => break,
            ServerMessage::Error(e) if e.code == ErrorCode::UnknownCall => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn shutting_down_closes_every_connection_with_1001() {
    let server = server_with(|_| {}).await;
    let addr = server.local_addr();
    // One in a session, one that has not said hello yet, one with messages queued for it.
    let mut alice = Client::join(addr, "alice").await;
    let mut early = Client::open(addr).await;
    let mut bob = Client::join(addr, "bob").await;
    alice.invite("c1", "bob").await;
    let stopping = tokio::spawn(server.shutdown());
    for client in [&mut alice, &mut early, &mut bob] {
        assert_eq!(client.recv_close().await, Some(1001));
    }
    // Every connection answered, so shutdown needs none of its 5-second grace periods.
    tokio::time::timeout(Duration::from_secs(4), stopping)
        .await
        .expect("shutdown finished")
        .unwrap();
}
