//! The core driven with bytes and injected time: no sockets, no sleeps. Requests are
//! built and signed by stun-rs's encoder (test-support's `stun`), independently of the
//! relay's own checks.
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

use stun_rs::attributes::stun::{MessageIntegritySha256, Nonce, Realm, UserName, XorMappedAddress};
use stun_rs::attributes::turn::{
    ChannelNumber, Data, LifeTime, RequestedAddressFamily, RequestedTrasport, XorPeerAddress,
    XorRelayedAddress,
};
use stun_rs::methods::{ALLOCATE, BINDING, CHANNEL_BIND, CREATE_PERMMISSION, REFRESH, SEND};
use stun_rs::{
    AddressFamily, MessageClass, MessageDecoderBuilder, MessageMethod, StunAttribute, StunMessage,
    StunMessageBuilder,
};
use test_support::stun::{
    Integrity, LongTerm, append_message_integrity, decode, encode, error_code, long_term_key,
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
        let signed = self.nonce.as_deref().map(|nonce| LongTerm {
            user: &self.user,
            realm: REALM,
            password: &self.password,
            nonce,
        });
        let integrity = if self.sha256 {
            Integrity::Sha256
        } else {
            Integrity::Sha1
        };
        test_support::stun::message(method, class, attrs, signed.map(|c| (c, integrity)))
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
        if let Some(nonce) = test_support::stun::nonce(&msg) {
            self.nonce = Some(nonce);
        }
        msg
    }

    /// Sends a request, redoing it once after a 401/438 challenge.
    fn authed(&mut self, method: MessageMethod, attrs: Vec<StunAttribute>) -> StunMessage {
        let first = self.ask(method, attrs.clone());
        if test_support::stun::is_challenge(&first) {
            return self.ask(method, attrs);
        }
        first
    }

    /// A signed Allocate (the nonce already learnt) that the relay takes: the allocation
    /// and the address it asks the shell to bind.
    fn open_allocation(&mut self) -> (AllocId, SocketAddr) {
        let bytes = self.build(ALLOCATE, MessageClass::Request, vec![udp()]);
        let FromClient::Open { id, relay } = self.send(&bytes) else {
            panic!("expected the relay to ask for a socket")
        };
        (id, relay)
    }

    /// Fails every bind of `id` as "port in use" until the relay gives up; its answer.
    fn fail_every_bind(&mut self, id: AllocId) -> Vec<u8> {
        for _ in 0..BIND_ATTEMPTS {
            if let Err(reply) = self.relay.relay_failed(id, BindFailure::PortInUse) {
                return reply;
            }
        }
        panic!("still retrying after {BIND_ATTEMPTS} failed binds")
    }

    fn allocate(&mut self) -> SocketAddr {
        let reply = self.authed(ALLOCATE, vec![udp()]);
        assert_eq!(reply.class(), MessageClass::SuccessResponse, "{reply:?}");
        test_support::stun::relayed_address(&reply)
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

/// The LIFETIME a response grants.
fn lifetime(reply: &StunMessage) -> u32 {
    reply
        .get::<LifeTime>()
        .unwrap()
        .as_life_time()
        .unwrap()
        .as_u32()
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
