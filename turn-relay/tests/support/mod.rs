//! Shared helpers of the relay's integration tests: an in-process relay on loopback, a
//! small STUN/TURN test client built on stun-rs, child processes that die with the test,
//! and tool checks that fail loudly under `CI=true`.
#![allow(dead_code, clippy::disallowed_methods)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;

use std::time::Duration;

use stun_rs::attributes::stun::{ErrorCode, MessageIntegrity, Nonce, Realm, UserName};
use stun_rs::attributes::turn::{RequestedTrasport, XorRelayedAddress};
use stun_rs::methods::ALLOCATE;
use stun_rs::{
    Algorithm, AlgorithmId, HMACKey, MessageClass, MessageDecoderBuilder, MessageEncoderBuilder,
    MessageMethod, StunAttribute, StunMessage, StunMessageBuilder,
};
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

/// Whether `tool` is installed. Missing: a panic under `CI=true`, else a loud skip.
pub fn require(tool: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if found {
        return true;
    }
    let msg = format!("{tool} is not installed (Debian package {package}; .ci/run installs it)");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

/// A child process killed when the test ends, however it ends.
pub struct ChildGuard(pub tokio::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// A free UDP port on `ip` (bound, read, released).
pub fn free_udp_port(ip: &str) -> u16 {
    std::net::UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// coturn's echo peer on `ip`; returns its address.
pub async fn echo_peer(ip: &str) -> (ChildGuard, SocketAddr) {
    let port = free_udp_port(ip);
    let child = tokio::process::Command::new("turnutils_peer")
        .args(["-L", ip, "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // It binds at once; give it a moment before clients send.
    tokio::time::sleep(Duration::from_millis(300)).await;
    (ChildGuard(child), format!("{ip}:{port}").parse().unwrap())
}

/// What `turnutils_uclient` reported.
#[derive(Debug, Default)]
pub struct Totals {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub output: String,
}

/// Runs `turnutils_uclient` with `args` (server address last) within 120 s.
pub async fn uclient(args: &[String]) -> Totals {
    let run = tokio::process::Command::new("turnutils_uclient")
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("turnutils_uclient finished within 120 s")
        .unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut t = Totals::default();
    for line in output.lines() {
        if let Some(rest) = line.split("start_mclient: tot_send_msgs=").nth(1) {
            let mut parts = rest.split(", tot_recv_msgs=");
            t.sent = parts
                .next()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            t.received = parts
                .next()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
        }
        if let Some(rest) = line.split("Total lost packets ").nth(1) {
            t.lost = rest
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(u64::MAX);
        }
    }
    t.output = output;
    t
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
        let mut b = StunMessageBuilder::new(method, class);
        for a in attrs {
            b = b.with_attribute(a);
        }
        if let (Some(nonce), MessageClass::Request) = (&self.nonce, class) {
            let key = HMACKey::new_long_term(
                &self.user,
                REALM,
                &self.password,
                Algorithm::from(AlgorithmId::MD5),
            )
            .unwrap();
            b = b
                .with_attribute(UserName::new(&self.user).unwrap())
                .with_attribute(Realm::new(REALM).unwrap())
                .with_attribute(Nonce::new(nonce).unwrap())
                .with_attribute(MessageIntegrity::new(key));
        }
        let mut buf = vec![0u8; 2048];
        let n = MessageEncoderBuilder::default()
            .build()
            .encode(&mut buf, &b.build())
            .unwrap();
        buf.truncate(n);
        buf
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
        if let Some(n) = msg.get::<Nonce>() {
            self.nonce = Some(n.as_nonce().unwrap().as_str().to_owned());
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
        match error_code(&first) {
            Some(401) | Some(438) => self.exchange(method, attrs).await,
            _ => first,
        }
    }

    pub async fn allocate(&mut self) -> SocketAddr {
        let reply = self
            .request(
                ALLOCATE,
                vec![RequestedTrasport::new(stun_rs::protocols::UDP).into()],
            )
            .await;
        assert_eq!(reply.class(), MessageClass::SuccessResponse, "{reply:?}");
        *reply
            .get::<XorRelayedAddress>()
            .unwrap()
            .as_xor_relayed_address()
            .unwrap()
            .socket_address()
    }
}

pub fn decode(bytes: &[u8]) -> StunMessage {
    MessageDecoderBuilder::default()
        .build()
        .decode(bytes)
        .unwrap()
        .0
}

pub fn error_code(msg: &StunMessage) -> Option<u16> {
    msg.get::<ErrorCode>()
        .map(|e| e.as_error_code().unwrap().error_code().error_code())
}

/// Waits until `check` holds, polling for at most `within`.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}
