//! The vendored ICE agent (`vendor/rtc-ice`) ranks a candidate first seen in a check
//! (peer-reflexive) as what it is once the peer signals it. Without that, a relayed
//! candidate whose check beat its trickle kept the high prflx rank and was nominated over
//! a working direct pair: the NAT lab's cone test caught it picking the relay.
// One `Instant::now()` per test: the agent takes time as input and no timer runs.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use rtc::crypto::default_provider;
use rtc::ice::agent::Agent;
use rtc::ice::agent::agent_config::AgentConfig;
use rtc::ice::attributes::control::{AttrControlled, AttrControlling};
use rtc::ice::attributes::priority::PriorityAttr;
use rtc::ice::attributes::use_candidate::UseCandidateAttr;
use rtc::ice::candidate::candidate_host::CandidateHostConfig;
use rtc::ice::candidate::candidate_relay::CandidateRelayConfig;
use rtc::ice::candidate::candidate_server_reflexive::CandidateServerReflexiveConfig;
use rtc::ice::candidate::{Candidate, CandidateConfig, CandidateType};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use rtc::stun::fingerprint::FINGERPRINT;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Message, Setter, TransactionId};
use rtc::stun::textattrs::Username;
use rtc::stun::xoraddr::XorMappedAddress;

const LOCAL: &str = "192.0.2.10:5000";
/// The peer's relayed address, as our relay would hand it out.
const RELAYED: &str = "198.51.100.1:50000";
/// What the peer would send in PRIORITY from a relayed candidate (type preference 0).
const RELAYED_PRIORITY: u32 = (1 << 8) * 65_535 + 255;

/// A UDP candidate of component 1 (RTP) at `address`:`port`.
fn udp(address: &str, port: u16) -> CandidateConfig {
    CandidateConfig {
        network: "udp".into(),
        address: address.into(),
        port,
        component: 1,
        ..CandidateConfig::default()
    }
}

/// Our agent, controlling (the caller's) unless told otherwise, with one host candidate at
/// `LOCAL` and the peer's credentials, its checks started.
fn agent(now: Instant) -> Agent {
    agent_as(now, true)
}

fn agent_as(now: Instant, is_controlling: bool) -> Agent {
    let mut agent = unstarted(now, is_controlling);
    start(&mut agent, now);
    agent
}

/// The agent before it has the peer's credentials (the caller's, while its offer is out and
/// the answer is not back yet).
fn unstarted(now: Instant, is_controlling: bool) -> Agent {
    let config = AgentConfig {
        local_ufrag: "ourufrag".into(),
        local_pwd: "our-password-of-22-chars".into(),
        is_controlling,
        ..AgentConfig::default()
    };
    let mut agent = Agent::new(now, Arc::new(config), default_provider().unwrap()).unwrap();
    let host = CandidateHostConfig {
        base_config: udp("192.0.2.10", 5000),
        ..CandidateHostConfig::default()
    };
    agent
        .add_local_candidate(host.new_candidate_host().unwrap())
        .unwrap();
    agent
}

/// The peer's credentials arrive (with its answer): the checks start.
fn start(agent: &mut Agent, now: Instant) {
    let is_controlling = agent.role();
    agent
        .start_connectivity_checks(
            now,
            is_controlling,
            "peerufrag".into(),
            "peer-password-of-22-ch".into(),
        )
        .unwrap();
}

/// The peer's connectivity check from `from`. A controlling peer's check nominates its
/// pair (USE-CANDIDATE, regular nomination as Chromium sends it).
fn check_from(agent: &mut Agent, from: SocketAddr, peer_controlling: bool, now: Instant) {
    let role: Box<dyn Setter> = if peer_controlling {
        Box::new(AttrControlling(7))
    } else {
        Box::new(AttrControlled(7))
    };
    let crypto = default_provider().unwrap();
    let mut attrs: Vec<Box<dyn Setter>> = vec![
        Box::new(BINDING_REQUEST),
        Box::new(TransactionId::new()),
        Box::new(Username::new(
            rtc::stun::attributes::ATTR_USERNAME,
            "ourufrag:peerufrag".into(),
        )),
        role,
        Box::new(PriorityAttr(RELAYED_PRIORITY)),
    ];
    if peer_controlling {
        attrs.push(Box::new(UseCandidateAttr::new()));
    }
    attrs.push(Box::new(
        MessageIntegrity::new_short_term_integrity_with_provider(
            "our-password-of-22-chars".into(),
            crypto.crypto(),
        ),
    ));
    attrs.push(Box::new(FINGERPRINT));
    let mut m = Message::new();
    m.build(&attrs).unwrap();
    agent.handle_read(tagged(from, &m.raw, now)).unwrap();
}

/// The peer's connectivity check from its relayed candidate, arriving before its trickle.
fn check_from_relay(agent: &mut Agent, now: Instant) {
    check_from(agent, RELAYED.parse().unwrap(), false, now);
}

fn remote_at(agent: &Agent, addr: SocketAddr) -> Vec<&Candidate> {
    agent
        .get_remote_candidates()
        .iter()
        .filter(|c| c.addr() == addr)
        .collect()
}

#[test]
fn a_check_from_an_unknown_address_ranks_by_its_priority_attribute() {
    let now = Instant::now();
    let mut agent = agent(now);
    check_from_relay(&mut agent, now);
    let learnt = remote_at(&agent, RELAYED.parse().unwrap());
    assert_eq!(learnt.len(), 1);
    assert_eq!(learnt[0].candidate_type(), CandidateType::PeerReflexive);
    // RFC 8445 7.3.1.3, not the default prflx rank (type preference 110, above srflx).
    assert_eq!(learnt[0].priority(), RELAYED_PRIORITY);
}

/// The peer's server-reflexive candidate (its NAT mapping), signalled before any check.
fn peer_srflx() -> Candidate {
    let srflx = CandidateServerReflexiveConfig {
        base_config: udp("203.0.113.7", 40000),
        rel_addr: "10.0.2.2".into(),
        rel_port: 40000,
        ..CandidateServerReflexiveConfig::default()
    };
    srflx.new_candidate_server_reflexive().unwrap()
}

#[test]
fn the_signalled_candidate_replaces_the_peer_reflexive_one() {
    let now = Instant::now();
    let mut agent = agent(now);
    assert!(agent.add_remote_candidate(peer_srflx()).unwrap());
    check_from_relay(&mut agent, now);
    let relay = CandidateRelayConfig {
        base_config: udp("198.51.100.1", 50000),
        rel_addr: "10.0.2.2".into(),
        rel_port: 40000,
        ..CandidateRelayConfig::default()
    };
    let relay = relay.new_candidate_relay().unwrap();
    let priority = relay.priority();
    assert!(agent.add_remote_candidate(relay).unwrap());
    let known = remote_at(&agent, RELAYED.parse().unwrap());
    assert_eq!(known.len(), 1, "one candidate per address: {known:?}");
    assert_eq!(known[0].candidate_type(), CandidateType::Relay);
    assert_eq!(known[0].priority(), priority);
    // The direct pair (to the peer's NAT mapping) ranks above the relayed one.
    let (local, remote) = agent.get_best_available_candidate_pair().unwrap();
    assert_eq!(local.addr(), LOCAL.parse::<SocketAddr>().unwrap());
    assert_eq!(remote.candidate_type(), CandidateType::ServerReflexive);
}

/// The controlling peer's nomination (USE-CANDIDATE) of its pair `from` → `LOCAL`.
fn nomination_from(agent: &mut Agent, from: SocketAddr, now: Instant) {
    check_from(agent, from, true, now);
}

fn tagged(from: SocketAddr, raw: &[u8], now: Instant) -> TaggedBytesMut {
    TaggedBytesMut {
        now,
        transport: TransportContext {
            local_addr: LOCAL.parse().unwrap(),
            peer_addr: from,
            transport_protocol: TransportProtocol::UDP,
            ecn: None,
        },
        message: BytesMut::from(raw),
    }
}

/// Answers every connectivity check `agent` sends (as the peer would), until each of
/// its pairs has succeeded once; `now` moves on by the agent's own timeouts.
fn answer_checks(agent: &mut Agent, mut now: Instant) -> Instant {
    let crypto = default_provider().unwrap();
    for _ in 0..50 {
        while let Some(out) = agent.poll_write() {
            let mut request = Message::new();
            request.raw = out.message.to_vec();
            request.decode().unwrap();
            let mut response = Message::new();
            response
                .build(&[
                    Box::new(request.transaction_id),
                    Box::new(BINDING_SUCCESS),
                    Box::new(XorMappedAddress {
                        ip: out.transport.local_addr.ip(),
                        port: out.transport.local_addr.port(),
                    }),
                    Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
                        "peer-password-of-22-ch".into(),
                        crypto.crypto(),
                    )),
                    Box::new(FINGERPRINT),
                ])
                .unwrap();
            agent
                .handle_read(tagged(out.transport.peer_addr, &response.raw, now))
                .unwrap();
        }
        now = agent.poll_timeout().unwrap_or(now).max(now);
        agent.handle_timeout(now).unwrap();
    }
    now
}

/// RFC 8445 8.1.1: when the controlling agent nominates more than one pair, the pair with
/// the highest priority is used. Chromium, controlling, nominates the first pair that
/// works (often via the relay) and then a better one (direct); the vendored agent, as the
/// controlled side, now follows the second nomination instead of keeping the first, so
/// both directions take the same, direct path (the NAT lab's matrix caught the split).
#[test]
fn the_controlled_agent_follows_a_later_nomination_of_a_better_pair() {
    let mut now = Instant::now();
    let mut agent = agent_as(now, false);
    let relay = CandidateRelayConfig {
        base_config: udp("198.51.100.1", 50000),
        rel_addr: "10.0.2.2".into(),
        rel_port: 40000,
        ..CandidateRelayConfig::default()
    };
    agent
        .add_remote_candidate(relay.new_candidate_relay().unwrap())
        .unwrap();
    let srflx = peer_srflx();
    let direct = srflx.addr();
    agent.add_remote_candidate(srflx).unwrap();
    now = answer_checks(&mut agent, now);

    nomination_from(&mut agent, RELAYED.parse().unwrap(), now);
    let (_, remote) = agent.get_selected_candidate_pair().unwrap();
    assert_eq!(remote.candidate_type(), CandidateType::Relay);

    nomination_from(&mut agent, direct, now);
    let (_, remote) = agent.get_selected_candidate_pair().unwrap();
    assert_eq!(remote.candidate_type(), CandidateType::ServerReflexive);

    // A later nomination of a worse pair does not take the path back to the relay.
    nomination_from(&mut agent, RELAYED.parse().unwrap(), now);
    let (_, remote) = agent.get_selected_candidate_pair().unwrap();
    assert_eq!(remote.candidate_type(), CandidateType::ServerReflexive);
}

/// The answers (Binding success responses) the agent has queued, by destination.
fn answers(agent: &mut Agent) -> Vec<SocketAddr> {
    let mut to = Vec::new();
    while let Some(out) = agent.poll_write() {
        let mut m = Message::new();
        m.raw = out.message.to_vec();
        m.decode().unwrap();
        if m.typ == BINDING_SUCCESS {
            to.push(out.transport.peer_addr);
        }
    }
    to
}

/// RFC 8445 7.3: a check that arrives before the peer's credentials (its answer is still
/// in flight through signaling while its checks already arrive peer to peer) is answered
/// once they arrive, instead of being dropped ("password is empty") until the peer's next
/// retransmission, up to a 200 ms tick or more later. A check not signed with our password
/// is not kept.
#[test]
fn a_check_before_the_answer_is_answered_when_the_answer_arrives() {
    let now = Instant::now();
    let mut agent = unstarted(now, true);
    check_from_relay(&mut agent, now);
    assert!(
        answers(&mut agent).is_empty(),
        "answered without credentials"
    );

    // A forged check (signed with another password) from elsewhere: never answered.
    let forger: SocketAddr = "203.0.113.66:4000".parse().unwrap();
    let crypto = default_provider().unwrap();
    let mut m = Message::new();
    m.build(&[
        Box::new(BINDING_REQUEST),
        Box::new(TransactionId::new()),
        Box::new(Username::new(
            rtc::stun::attributes::ATTR_USERNAME,
            "ourufrag:peerufrag".into(),
        )),
        Box::new(AttrControlled(7)),
        Box::new(PriorityAttr(RELAYED_PRIORITY)),
        Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
            "not-our-password-at-all".into(),
            crypto.crypto(),
        )),
        Box::new(FINGERPRINT),
    ])
    .unwrap();
    let _ = agent.handle_read(tagged(forger, &m.raw, now));

    start(&mut agent, now);
    let answered = answers(&mut agent);
    assert_eq!(answered, vec![RELAYED.parse::<SocketAddr>().unwrap()]);
}
