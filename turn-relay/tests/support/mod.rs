//! Shared helpers of the relay's integration tests: an in-process relay on loopback and a
//! small STUN/TURN test client, whose requests test-support's `stun` builds and signs.
//! coturn's tools, the tool checks and the waits are test-support's too.
#![allow(dead_code, clippy::disallowed_methods)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use stun_rs::attributes::turn::RequestedTrasport;
use stun_rs::methods::ALLOCATE;
use stun_rs::{MessageClass, MessageMethod, StunAttribute, StunMessage};
#[allow(unused_imports)]
pub use test_support::coturn::{ChildGuard, Totals, echo_peer, free_udp_port, uclient};
#[allow(unused_imports)]
pub use test_support::require::require;
use test_support::stun::{Integrity, LongTerm};
#[allow(unused_imports)]
pub use test_support::stun::{decode, error_code};
#[allow(unused_imports)]
pub use test_support::wait::eventually;
use tokio::net::UdpSocket;
use turn_relay::{Listeners, RelaySettings, StreamLimits, TurnServer, Users};

pub const USER: &str = "user";
pub const PASSWORD: &str = "secret";
pub const REALM: &str = "test";
pub const REST_SECRET: &str = "rest-secret";

/// Which peers the test relay lets clients reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peers {
    /// The default policy: no special-purpose address, so no loopback peer.
    PublicOnly,
    /// 127.0.0.0/8 opened through the allow-list (except the relay's own 127.0.0.1), as
    /// an operator would: the peers of these tests live on loopback.
    AllowLoopback,
}

/// Which credentials the test relay accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// [`USER`]/[`PASSWORD`] as a fixed user, and TURN REST usernames with [`REST_SECRET`].
    FixedAndRest,
    /// Only TURN REST usernames with [`REST_SECRET`].
    RestOnly,
}

/// Relay settings for loopback tests.
pub fn settings(peers: Peers, credentials: Credentials) -> RelaySettings {
    let fixed = match credentials {
        Credentials::FixedAndRest => HashMap::from([(USER.to_owned(), PASSWORD.to_owned())]),
        Credentials::RestOnly => HashMap::new(),
    };
    let users = Users {
        fixed,
        rest_secret: Some(REST_SECRET.to_owned()),
    };
    let mut s = RelaySettings::new(REALM, users);
    s.ports = 40_000..=47_999;
    s.max_allocations_per_user = 1_000;
    s.policy.own = vec!["127.0.0.1".parse().unwrap()];
    if peers == Peers::AllowLoopback {
        s.policy.allow = vec!["127.0.0.0/8".parse().unwrap()];
    }
    s
}

/// Whether the test relay listens for TLS too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// UDP and TCP only.
    Off,
    /// UDP, TCP and TLS with a fresh self-signed certificate for `localhost`.
    SelfSigned,
}

pub struct TestRelay {
    pub server: TurnServer,
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    pub tls: Option<SocketAddr>,
    _dir: Option<TempDir>,
}

/// Starts a relay on 127.0.0.1: UDP and TCP, and TLS if asked.
pub async fn start(settings: RelaySettings, tls: Tls) -> TestRelay {
    start_with(settings, tls, StreamLimits::default()).await
}

/// [`start`] with limits on TCP/TLS connections.
pub async fn start_with(settings: RelaySettings, tls: Tls, limits: StreamLimits) -> TestRelay {
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (tls_config, dir) = if tls == Tls::SelfSigned {
        let dir = TempDir::new("turn-tls");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert_path, key_path) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
        let config = turn_relay::config::load_tls(&cert_path, &key_path).unwrap();
        (Some(config), Some(dir))
    } else {
        (None, None)
    };
    let listeners = Listeners {
        udp: vec![local],
        tcp: vec![local],
        tls: if tls == Tls::SelfSigned {
            vec![local]
        } else {
            Vec::new()
        },
        tls_config,
        streams: limits,
        // Two workers whatever the machine: clients spread over two SO_REUSEPORT sockets,
        // and relay sockets of TCP/TLS allocations over both workers.
        udp_threads: 2,
    };
    let server = TurnServer::start(settings, listeners).await.unwrap();
    TestRelay {
        udp: server.udp[0],
        tcp: server.tcp[0],
        tls: server.tls.first().copied(),
        server,
        _dir: dir,
    }
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let n: u64 = rand::random();
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{n:x}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A STUN/TURN client for tests, over UDP, with long-term credentials.
pub struct TestClient {
    pub socket: UdpSocket,
    pub server: SocketAddr,
    pub user: String,
    pub password: String,
    pub nonce: Option<String>,
}

impl TestClient {
    pub async fn new(server: SocketAddr, bind_ip: &str) -> Self {
        Self {
            socket: UdpSocket::bind((bind_ip, 0)).await.unwrap(),
            server,
            user: USER.into(),
            password: PASSWORD.into(),
            nonce: None,
        }
    }

    pub fn build(
        &self,
        method: MessageMethod,
        class: MessageClass,
        attrs: Vec<StunAttribute>,
    ) -> Vec<u8> {
        let signed = match (&self.nonce, class) {
            (Some(nonce), MessageClass::Request) => Some(LongTerm {
                user: &self.user,
                realm: REALM,
                password: &self.password,
                nonce,
            }),
            _ => None,
        };
        test_support::stun::message(method, class, attrs, signed.map(|c| (c, Integrity::Sha1)))
    }

    pub async fn send_raw(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.server).await.unwrap();
    }

    /// The next datagram within `wait`, if any.
    pub async fn recv(&self, wait: Duration) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65_536];
        match tokio::time::timeout(wait, self.socket.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
            _ => None,
        }
    }

    /// One request/response exchange (no retry on challenge).
    pub async fn exchange(
        &mut self,
        method: MessageMethod,
        attrs: Vec<StunAttribute>,
    ) -> StunMessage {
        let bytes = self.build(method, MessageClass::Request, attrs);
        self.send_raw(&bytes).await;
        let reply = self
            .recv(Duration::from_secs(5))
            .await
            .expect("a response within 5 s");
        let msg = decode(&reply);
        if let Some(nonce) = test_support::stun::nonce(&msg) {
            self.nonce = Some(nonce);
        }
        msg
    }

    /// A request, redone once after a 401/438 challenge.
    pub async fn request(
        &mut self,
        method: MessageMethod,
        attrs: Vec<StunAttribute>,
    ) -> StunMessage {
        let first = self.exchange(method, attrs.clone()).await;
        if test_support::stun::is_challenge(&first) {
            return self.exchange(method, attrs).await;
        }
        first
    }

    pub async fn allocate(&mut self) -> SocketAddr {
        let reply = self
            .request(
                ALLOCATE,
                vec![RequestedTrasport::new(stun_rs::protocols::UDP).into()],
            )
            .await;
        assert_eq!(reply.class(), MessageClass::SuccessResponse, "{reply:?}");
        test_support::stun::relayed_address(&reply)
    }
}
