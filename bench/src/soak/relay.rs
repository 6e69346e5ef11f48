//! A minimal TURN client over UDP for the soak: Allocate with the credentials of
//! `welcome.ice_servers`, ChannelBind to the other party's relayed address, numbered
//! ChannelData both ways, Refresh with lifetime 0 at the end. The requests are built and
//! signed by test-support's STUN helpers (stun-rs, independent of the relay's own code).

use std::net::SocketAddr;
use std::time::Duration;

use signaling_protocol::IceServer;
use stun_rs::attributes::stun::Realm;
use stun_rs::attributes::turn::{ChannelNumber, LifeTime, RequestedTrasport, XorPeerAddress};
use stun_rs::methods::{ALLOCATE, CHANNEL_BIND, REFRESH};
use stun_rs::{MessageClass, MessageDecoderBuilder, MessageMethod, StunAttribute, StunMessage};
use test_support::stun::{self as stun_msg, Integrity, LongTerm};
use tokio::net::UdpSocket;

use bench_support::BenchError;

/// The channel each client binds to the other party's relayed address.
const CHANNEL: u16 = 0x4000;
/// Bytes of each datagram's payload: its number (8 bytes, big endian), then zeros.
const PAYLOAD: usize = 100;
/// How long a request waits for its answer before it is sent again.
const REPLY_WAIT: Duration = Duration::from_millis(500);
/// How often a request is sent at most (challenges and retransmissions together).
const TRIES: usize = 6;

/// One allocation on the relay, with the socket that holds it.
pub struct RelayClient {
    socket: UdpSocket,
    server: SocketAddr,
    user: String,
    password: String,
    /// REALM and NONCE of the last challenge: what signs the next request.
    realm: String,
    nonce: Option<String>,
    relayed: SocketAddr,
}

impl RelayClient {
    /// Allocates a relayed UDP address on the relay that `ice_servers` offers over UDP,
    /// with its TURN REST credentials. The relay must be on 127.0.0.0/8.
    pub async fn allocate(ice_servers: &[IceServer]) -> Result<RelayClient, BenchError> {
        let (server, user, password) = turn_over_udp(ice_servers)?;
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let mut client = RelayClient {
            socket,
            server,
            user,
            password,
            realm: String::new(),
            nonce: None,
            relayed: server,
        };
        let udp = RequestedTrasport::new(stun_rs::protocols::UDP);
        let reply = client.request(ALLOCATE, vec![udp.into()]).await?;
        client.relayed = stun_msg::relayed_address(&reply);
        Ok(client)
    }

    /// The relayed address, where the other party's datagrams go.
    pub fn relayed(&self) -> SocketAddr {
        self.relayed
    }

    /// Binds the channel to `peer` (which also permits it to send here).
    pub async fn bind(&mut self, peer: SocketAddr) -> Result<(), BenchError> {
        let attrs = vec![
            ChannelNumber::new(CHANNEL).into(),
            XorPeerAddress::from(peer).into(),
        ];
        self.request(CHANNEL_BIND, attrs).await.map(drop)
    }

    /// Sends datagram number `n` to the bound peer as ChannelData.
    pub async fn send(&self, n: u64) -> Result<(), BenchError> {
        let mut frame = [0u8; 4 + PAYLOAD];
        frame[..2].copy_from_slice(&CHANNEL.to_be_bytes());
        frame[2..4].copy_from_slice(&(PAYLOAD as u16).to_be_bytes());
        frame[4..12].copy_from_slice(&n.to_be_bytes());
        self.socket.send_to(&frame, self.server).await?;
        Ok(())
    }

    /// The number of the next ChannelData datagram from the peer (anything else from the
    /// relay is skipped). Cancel-safe.
    pub async fn recv(&self) -> Result<u64, BenchError> {
        let mut buf = [0u8; 2048];
        loop {
            let (len, from) = self.socket.recv_from(&mut buf).await?;
            if from == self.server && len >= 12 && u16::from_be_bytes([buf[0], buf[1]]) == CHANNEL {
                let mut n = [0u8; 8];
                n.copy_from_slice(&buf[4..12]);
                return Ok(u64::from_be_bytes(n));
            }
        }
    }

    /// Ends the allocation (Refresh with LIFETIME 0), so the relay frees it now rather
    /// than when it expires.
    pub async fn release(mut self) -> Result<(), BenchError> {
        let zero = LifeTime::from(0);
        self.request(REFRESH, vec![zero.into()]).await.map(drop)
    }

    /// Sends `method` with `attrs`, signed once a challenge gave a nonce; answers a 401 or
    /// 438 by signing again with the new nonce, and a lost datagram by sending again.
    async fn request(
        &mut self,
        method: MessageMethod,
        attrs: Vec<StunAttribute>,
    ) -> Result<StunMessage, BenchError> {
        for _ in 0..TRIES {
            let signed = self.nonce.as_deref().map(|nonce| {
                let creds = LongTerm {
                    user: &self.user,
                    realm: &self.realm,
                    password: &self.password,
                    nonce,
                };
                (creds, Integrity::Sha1)
            });
            let request = stun_msg::message(method, MessageClass::Request, attrs.clone(), signed);
            let Some(reply) = self.exchange(&request).await? else {
                continue;
            };
            if stun_msg::is_challenge(&reply) {
                self.nonce = stun_msg::nonce(&reply);
                if let Some(realm) = reply.get::<Realm>().and_then(|r| r.as_realm().ok()) {
                    self.realm = realm.as_str().to_owned();
                }
                continue;
            }
            return match stun_msg::error_code(&reply) {
                Some(code) => Err(BenchError::Protocol(format!(
                    "TURN {method:?} refused with {code}"
                ))),
                None => Ok(reply),
            };
        }
        Err(BenchError::Protocol(format!(
            "TURN {method:?}: no answer in {TRIES} tries"
        )))
    }

    /// Sends `request` and waits [`REPLY_WAIT`] for the response of the same transaction;
    /// `None` when none came.
    async fn exchange(&self, request: &[u8]) -> Result<Option<StunMessage>, BenchError> {
        self.socket.send_to(request, self.server).await?;
        let transaction = &request[8..20];
        let mut buf = [0u8; 2048];
        let answer = async {
            loop {
                let (len, from) = self.socket.recv_from(&mut buf).await?;
                let reply = &buf[..len];
                if from != self.server || len < 20 || &reply[8..20] != transaction {
                    continue;
                }
                let decoded = MessageDecoderBuilder::default().build().decode(reply);
                return match decoded {
                    Ok((msg, _)) => Ok(msg),
                    Err(e) => Err(BenchError::Protocol(format!("TURN answer: {e:?}"))),
                };
            }
        };
        match tokio::time::timeout(REPLY_WAIT, answer).await {
            Ok(reply) => reply.map(Some),
            Err(_) => Ok(None),
        }
    }
}

/// The relay's UDP address and the credentials from the `turn:…?transport=udp` URL of
/// `ice_servers`.
fn turn_over_udp(ice_servers: &[IceServer]) -> Result<(SocketAddr, String, String), BenchError> {
    for server in ice_servers {
        let (Some(user), Some(password)) = (&server.username, &server.credential) else {
            continue;
        };
        for url in &server.urls {
            let Some(rest) = url.strip_prefix("turn:") else {
                continue;
            };
            let Some(addr) = rest.strip_suffix("?transport=udp") else {
                continue;
            };
            let addr: SocketAddr = addr
                .parse()
                .map_err(|e| BenchError::Setup(format!("TURN URL {url}: {e}")))?;
            if !addr.ip().is_loopback() {
                return Err(BenchError::Setup(format!(
                    "TURN URL {url} is not on 127.0.0.0/8; the soak stays on loopback"
                )));
            }
            return Ok((addr, user.clone(), password.clone()));
        }
    }
    Err(BenchError::Protocol(format!(
        "welcome offers no turn:…?transport=udp with credentials: {ice_servers:?}"
    )))
}
