//! The load generator's TURN client: Binding, Allocate with long-term credentials,
//! ChannelBind. Built on stun-rs, like the relay, but independent of its code.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stun_rs::attributes::stun::{ErrorCode, MessageIntegrity, Nonce, Realm, UserName};
use stun_rs::attributes::turn::{
    ChannelNumber, RequestedTrasport, XorPeerAddress, XorRelayedAddress,
};
use stun_rs::methods::{ALLOCATE, BINDING, CHANNEL_BIND};
use stun_rs::{
    Algorithm, AlgorithmId, HMACKey, MessageClass, MessageDecoderBuilder, MessageEncoderBuilder,
    MessageMethod, StunAttribute, StunMessage, StunMessageBuilder,
};
use tokio::net::UdpSocket;

use bench_support::BenchError;

use crate::servers::{PASSWORD, REALM, USER};

/// The channel every client binds to its sink.
pub const CHANNEL: u16 = 0x4000;

/// A ChannelData frame on [`CHANNEL`] with `payload` zero bytes (at most 65,535), for the
/// caller to fill in.
pub fn channel_data(payload: usize) -> Vec<u8> {
    let mut frame = vec![0u8; 4 + payload];
    frame[..2].copy_from_slice(&CHANNEL.to_be_bytes());
    frame[2..4].copy_from_slice(&(payload as u16).to_be_bytes());
    frame
}

/// How long a request waits for its response before it counts as lost.
const REPLY_WAIT: Duration = Duration::from_millis(100);
/// Tries of one request: challenges (401, 438) and lost datagrams each take one.
const TRIES: usize = 8;

/// The last nonce a server handed out, shared by the clients of a run. Our relay's nonces
/// are stateless and good for any 5-tuple of the same IP, so reusing one saves the 401 round
/// trip, which the relay answers at most 50 times a second per source IP. coturn's are per
/// session: it answers a borrowed one with 438 and a fresh nonce, and the client retries.
#[derive(Debug, Clone, Default)]
pub struct SharedNonce(Arc<Mutex<Option<String>>>);

impl SharedNonce {
    fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, nonce: &Option<String>) {
        if nonce.is_some() {
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = nonce.clone();
        }
    }
}

fn encode(
    method: MessageMethod,
    attrs: Vec<StunAttribute>,
    nonce: Option<&str>,
) -> Result<Vec<u8>, BenchError> {
    let mut b = StunMessageBuilder::new(method, MessageClass::Request);
    for a in attrs {
        b = b.with_attribute(a);
    }
    if let Some(nonce) = nonce {
        let key = HMACKey::new_long_term(USER, REALM, PASSWORD, Algorithm::from(AlgorithmId::MD5))?;
        b = b
            .with_attribute(UserName::new(USER)?)
            .with_attribute(Realm::new(REALM)?)
            .with_attribute(Nonce::new(nonce)?)
            .with_attribute(MessageIntegrity::new(key));
    }
    let mut buf = vec![0u8; 1024];
    let n = MessageEncoderBuilder::default()
        .build()
        .encode(&mut buf, &b.build())
        .map_err(|e| BenchError::Protocol(format!("encode: {e:?}")))?;
    buf.truncate(n);
    Ok(buf)
}

async fn exchange(
    socket: &UdpSocket,
    server: SocketAddr,
    request: &[u8],
) -> Result<StunMessage, BenchError> {
    socket.send_to(request, server).await?;
    let mut buf = vec![0u8; 2048];
    let (n, _) = tokio::time::timeout(REPLY_WAIT, socket.recv_from(&mut buf))
        .await
        .map_err(|_| BenchError::Protocol("no STUN response".into()))??;
    MessageDecoderBuilder::default()
        .build()
        .decode(&buf[..n])
        .map(|(m, _)| m)
        .map_err(|e| BenchError::Protocol(format!("decode: {e:?}")))
}

fn error_code(msg: &StunMessage) -> Option<u16> {
    msg.get::<ErrorCode>()
        .and_then(|e| e.as_error_code().ok())
        .map(|e| e.error_code().error_code())
}

/// A Binding request answered: the server is up.
pub async fn binding(server: SocketAddr) -> Result<(), BenchError> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let reply = exchange(&socket, server, &encode(BINDING, Vec::new(), None)?).await?;
    match reply.class() {
        MessageClass::SuccessResponse => Ok(()),
        _ => Err(BenchError::Protocol("Binding refused".into())),
    }
}

/// Authenticated request with `nonce` (none yet: first without credentials, to learn it);
/// a 401 or 438 brings a nonce to retry with.
async fn request(
    socket: &UdpSocket,
    server: SocketAddr,
    method: MessageMethod,
    attrs: Vec<StunAttribute>,
    nonce: &mut Option<String>,
) -> Result<StunMessage, BenchError> {
    for _ in 0..TRIES {
        let reply = match exchange(
            socket,
            server,
            &encode(method, attrs.clone(), nonce.as_deref())?,
        )
        .await
        {
            Ok(r) => r,
            Err(_) => continue, // a lost datagram: retry (bounded)
        };
        if let Some(n) = reply.get::<Nonce>().and_then(|n| n.as_nonce().ok()) {
            *nonce = Some(n.as_str().to_owned());
        }
        match error_code(&reply) {
            Some(401) | Some(438) => continue,
            Some(code) => {
                return Err(BenchError::Protocol(format!(
                    "{method:?} refused with {code}"
                )));
            }
            None => return Ok(reply),
        }
    }
    Err(BenchError::Protocol(format!(
        "{method:?}: no answer after {TRIES} tries"
    )))
}

/// Allocates on `server` and binds [`CHANNEL`] to `peer` (which also installs the
/// permission), starting from the `shared` nonce; returns the relayed address.
pub async fn allocate_and_bind(
    socket: &UdpSocket,
    server: SocketAddr,
    peer: SocketAddr,
    shared: &SharedNonce,
) -> Result<SocketAddr, BenchError> {
    let mut nonce = shared.get();
    let udp = RequestedTrasport::new(stun_rs::protocols::UDP);
    let reply = request(socket, server, ALLOCATE, vec![udp.into()], &mut nonce).await?;
    shared.set(&nonce);
    let relayed = reply
        .get::<XorRelayedAddress>()
        .and_then(|a| a.as_xor_relayed_address().ok())
        .map(|a| *a.socket_address())
        .ok_or_else(|| BenchError::Protocol("no XOR-RELAYED-ADDRESS".into()))?;
    let bind = vec![
        ChannelNumber::new(CHANNEL).into(),
        XorPeerAddress::from(peer).into(),
    ];
    request(socket, server, CHANNEL_BIND, bind, &mut nonce).await?;
    Ok(relayed)
}
