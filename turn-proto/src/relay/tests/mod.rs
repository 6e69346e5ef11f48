//! The core driven with bytes and injected time: no sockets, no sleeps. Requests are
//! built and signed by stun-rs's encoder, independently of the relay's own checks.
//!
//! This file is the harness (a relay, a client's credentials and clock, request
//! builders); the tests are grouped by concept, as pion/turn keeps a file per concept.

mod allocation;
mod auth;
mod channels;
mod limits;
mod malformed;
mod permissions;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use stun_rs::attributes::stun::{
    ErrorCode, MessageIntegrity, MessageIntegritySha256, Nonce, Realm, UserName, XorMappedAddress,
};
use stun_rs::attributes::turn::{
    ChannelNumber, Data, LifeTime, RequestedAddressFamily, RequestedTrasport, XorPeerAddress,
    XorRelayedAddress,
};
use stun_rs::methods::{ALLOCATE, BINDING, CHANNEL_BIND, CREATE_PERMMISSION, REFRESH, SEND};
use stun_rs::{
    AddressFamily, Algorithm, AlgorithmId, HMACKey, MessageClass, MessageDecoderBuilder,
    MessageEncoderBuilder, MessageMethod, StunAttribute, StunMessage, StunMessageBuilder,
};

use super::*;
use crate::auth::Users;
use crate::five_tuple::Transport;
use crate::metrics::Way;

const REALM: &str = "test.realm";

fn settings() -> RelaySettings {
    let users = Users {
        fixed: HashMap::from([
            ("alice".into(), "pw-a".into()),
            ("bob".into(), "pw-b".into()),
        ]),
        rest_secret: Some("rest-secret".into()),
    };
    let mut s = RelaySettings::new(REALM, users);
    s.ports = 50_000..=50_019;
    s.max_allocations_per_user = 2;
    s
}

fn tuple(client: &str) -> FiveTuple {
    FiveTuple {
        client: client.parse().unwrap(),
        server: "192.0.2.9:3478".parse().unwrap(),
        transport: Transport::Udp,
    }
}

struct Harness {
    relay: Relay<u64>,
    now: Now,
    from: FiveTuple,
    user: String,
    password: String,
    nonce: Option<String>,
    sha256: bool,
}

impl Harness {
    fn new() -> Self {
        Self::with(settings())
    }

    fn with(settings: RelaySettings) -> Self {
        let t0 = server_kit::clock::now();
        Self {
            relay: Relay::new(settings, [3; 32], Metrics::new(), t0),
            now: Now {
                mono: t0,
                unix: 1_700_000_000,
            },
            from: tuple("198.51.100.7:40000"),
            user: "alice".into(),
            password: "pw-a".into(),
            nonce: None,
            sha256: false,
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now.mono += d;
        self.now.unix += d.as_secs();
        self.relay.handle_timeout(self.now.mono);
    }

    /// Encodes a request with `attrs`, signed with the harness credentials when a nonce is known.
    fn build(
        &self,
        method: MessageMethod,
        class: MessageClass,
        attrs: Vec<StunAttribute>,
    ) -> Vec<u8> {
        let mut b = StunMessageBuilder::new(method, class);
        for a in attrs {
            b = b.with_attribute(a);
        }
        if let Some(nonce) = &self.nonce {
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
                .with_attribute(Nonce::new(nonce).unwrap());
            b = if self.sha256 {
                b.with_attribute(MessageIntegritySha256::new(key))
            } else {
                b.with_attribute(MessageIntegrity::new(key))
            };
        }
        encode(&b.build())
    }

    fn send(&mut self, bytes: &[u8]) -> FromClient<u64> {
        self.relay.handle_client(self.from, bytes, self.now)
    }

    /// Sends a request and decodes the reply; learns the nonce from challenges.
    fn ask(&mut self, method: MessageMethod, attrs: Vec<StunAttribute>) -> StunMessage {
        let bytes = self.build(method, MessageClass::Request, attrs);
        let reply = match self.send(&bytes) {
            FromClient::Reply(r) => r,
            FromClient::Open { id, .. } => self.relay.relay_opened(id, id.0),
            FromClient::Close { reply, .. } => reply,
            other => panic!("expected a reply, got {other:?}"),
        };
        let msg = decode(&reply);
        if let Some(n) = msg.get::<Nonce>() {
            self.nonce = Some(n.as_nonce().unwrap().as_str().to_owned());
        }
        msg
    }

    /// Sends a request, redoing it once after a 401/438 challenge.
    fn authed(&mut self, method: MessageMethod, attrs: Vec<StunAttribute>) -> StunMessage {
        let first = self.ask(method, attrs.clone());
        match error_code(&first) {
            Some(401) | Some(438) => self.ask(method, attrs),
            _ => first,
        }
    }

    fn allocate(&mut self) -> SocketAddr {
        let reply = self.authed(ALLOCATE, vec![udp()]);
        assert_eq!(reply.class(), MessageClass::SuccessResponse, "{reply:?}");
        *reply
            .get::<XorRelayedAddress>()
            .unwrap()
            .as_xor_relayed_address()
            .unwrap()
            .socket_address()
    }

    fn indication(&mut self, peer: SocketAddr, data: &[u8]) -> FromClient<u64> {
        let nonce = self.nonce.take();
        let bytes = self.build(
            SEND,
            MessageClass::Indication,
            vec![XorPeerAddress::from(peer).into(), Data::new(data).into()],
        );
        self.nonce = nonce;
        self.send(&bytes)
    }
}

fn encode(msg: &StunMessage) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let n = MessageEncoderBuilder::default()
        .build()
        .encode(&mut buf, msg)
        .unwrap();
    buf.truncate(n);
    buf
}

fn decode(bytes: &[u8]) -> StunMessage {
    MessageDecoderBuilder::default()
        .build()
        .decode(bytes)
        .unwrap()
        .0
}

fn error_code(msg: &StunMessage) -> Option<u16> {
    msg.get::<ErrorCode>()
        .map(|e| e.as_error_code().unwrap().error_code().error_code())
}

fn udp() -> StunAttribute {
    RequestedTrasport::new(stun_rs::protocols::UDP).into()
}

fn peer(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn permission(p: SocketAddr) -> Vec<StunAttribute> {
    vec![XorPeerAddress::from(p).into()]
}

fn channel(n: u16, p: SocketAddr) -> Vec<StunAttribute> {
    vec![ChannelNumber::new(n).into(), XorPeerAddress::from(p).into()]
}

fn channel_data(n: u16, data: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 4 + data.len()];
    b[4..].copy_from_slice(data);
    crate::framing::write_channel_header(&mut b, n, data.len(), false);
    b
}
