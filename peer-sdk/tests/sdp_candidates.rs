//! A peer that does not trickle: its candidates come inside its answer. The SDK's stats
//! must still name them by their type (webrtc-rs 0.21.1 registered remote candidates for
//! stats only when trickled, so these showed up as `prflx`; vendor/rtc-sdp-candidate-stats.patch).
//! The peer is a bare webrtc-rs peer connection, relay-only through the embedded TURN relay
//! on 127.0.0.2, talking the signaling protocol itself.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use peer_sdk::{CallOptions, CandidateType, ChannelSpec};
use serde_json::{Value, json};
use support::within;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceGatheringState, RTCIceServer,
    RTCIceTransportPolicy, RTCSessionDescription, SettingEngineBuilder,
};

/// What the bare peer's handler forwards.
enum Event {
    Gathered,
    Channel(Arc<dyn DataChannel>),
}

struct Forward(mpsc::UnboundedSender<Event>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Forward {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.0.send(Event::Gathered);
        }
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        let _ = self.0.send(Event::Channel(channel));
    }
}

/// Echoes every text message of `channel` back.
fn echo(channel: Arc<dyn DataChannel>) {
    tokio::spawn(async move {
        while let Some(event) = channel.poll().await {
            if let DataChannelEvent::OnMessage(m) = event {
                let _ = if m.is_string {
                    channel.send_text(&String::from_utf8_lossy(&m.data)).await
                } else {
                    channel.send(BytesMut::from(&m.data[..])).await
                };
            }
        }
    });
}

async fn next_json(
    ws: &mut (impl StreamExt<Item = tokio_tungstenite::tungstenite::Result<Message>> + Unpin),
    kind: &str,
) -> Value {
    loop {
        let msg = ws.next().await.expect("signaling closed").unwrap();
        if let Message::Text(text) = msg {
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["type"] == kind {
                return value;
            }
        }
    }
}

/// How the bare callee hands over its candidates.
#[derive(Clone, Copy, PartialEq)]
enum Candidates {
    /// All of them inside its answer, never trickled.
    InAnswer,
    /// None in the answer; trickled once the caller's data channel is open, so the caller
    /// first knows the callee's address only from its checks (peer-reflexive).
    TrickledOnceConnected,
}

/// A callee that answers the first call after gathering completes, its candidates handed
/// over as `mode` says; relay-only, so its only candidate is a relayed one. It takes the
/// caller's trickled candidates and echoes on data channels.
async fn bare_callee(
    url: String,
    user: &'static str,
    mode: Candidates,
) -> tokio::task::JoinHandle<()> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let hello = json!({"type": "hello", "version": 1, "user": user});
    ws.send(Message::text(hello.to_string())).await.unwrap();
    let welcome = next_json(&mut ws, "welcome").await;
    tokio::spawn(async move {
        let servers = welcome["ice_servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| RTCIceServer {
                urls: serde_json::from_value(s["urls"].clone()).unwrap(),
                username: s["username"].as_str().unwrap_or_default().to_owned(),
                credential: s["credential"].as_str().unwrap_or_default().to_owned(),
            })
            .collect();
        let invite = next_json(&mut ws, "invite").await;
        let call_id = invite["call_id"].as_str().unwrap().to_owned();

        let mut media = MediaEngine::default();
        media.register_default_codecs().unwrap();
        let config = RTCConfigurationBuilder::new()
            .with_ice_servers(servers)
            .with_ice_transport_policy(RTCIceTransportPolicy::Relay)
            .build();
        let settings = SettingEngineBuilder::new()
            .with_relay_acceptance_min_wait(Some(Duration::ZERO))
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .build();
        let (tx, mut events) = mpsc::unbounded_channel();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(config)
            .with_media_engine(media)
            .with_setting_engine(settings)
            .with_handler(Arc::new(Forward(tx)))
            .with_udp_addrs(vec!["127.0.0.1:0"])
            .build()
            .await
            .unwrap();
        let offer = invite["offer"].as_str().unwrap().to_owned();
        pc.set_remote_description(RTCSessionDescription::offer(offer).unwrap())
            .await
            .unwrap();
        let answer = pc.create_answer(None).await.unwrap();
        pc.set_local_description(answer).await.unwrap();
        loop {
            match events.recv().await.expect("peer connection gone") {
                Event::Gathered => break,
                Event::Channel(c) => echo(c),
            }
        }
        let answer = pc.local_description().await.unwrap().sdp;
        assert!(
            answer.contains("typ relay"),
            "no relay candidate:\n{answer}"
        );
        let mut late: Vec<Value> = Vec::new();
        let answer = match mode {
            Candidates::InAnswer => answer,
            Candidates::TrickledOnceConnected => {
                let mid = answer
                    .lines()
                    .find_map(|l| l.strip_prefix("a=mid:"))
                    .unwrap()
                    .to_owned();
                late = answer
                    .lines()
                    .filter_map(|l| l.strip_prefix("a="))
                    .filter(|l| l.starts_with("candidate:"))
                    .map(|c| json!({"candidate": c, "sdpMid": mid, "sdpMLineIndex": 0}))
                    .collect();
                answer
                    .split("\r\n")
                    .filter(|l| !l.starts_with("a=candidate:") && *l != "a=end-of-candidates")
                    .collect::<Vec<_>>()
                    .join("\r\n")
            }
        };
        let accept = json!({"type": "accept", "call_id": call_id, "answer": answer});
        ws.send(Message::text(accept.to_string())).await.unwrap();

        loop {
            tokio::select! {
                msg = ws.next() => {
                    let text = match msg {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(_)) => continue,
                        _ => break,
                    };
                    let value: Value = serde_json::from_str(&text).unwrap();
                    if value["type"] == "candidate" && !value["candidate"].is_null() {
                        let init: RTCIceCandidateInit =
                            serde_json::from_value(value["candidate"].clone()).unwrap();
                        pc.add_ice_candidate(init).await.unwrap();
                    } else if value["type"] == "ended" {
                        break;
                    }
                }
                Some(event) = events.recv() => {
                    if let Event::Channel(c) = event {
                        echo(c);
                        // The caller's channel is open: its agent has a selected pair to
                        // our relayed address, learnt from our checks. Now trickle.
                        for candidate in late.drain(..) {
                            let msg = json!({
                                "type": "candidate",
                                "call_id": call_id,
                                "candidate": candidate,
                            });
                            ws.send(Message::text(msg.to_string())).await.unwrap();
                        }
                    }
                }
            }
        }
        let _ = pc.close().await;
    })
}

/// A server with the embedded relay on 127.0.0.2, the bare callee handing over its
/// candidates as `mode` says, and an SDK client that calls it with an open "chat" channel.
/// The server, client and callee task are returned to live as long as the test.
struct BareCall {
    _server: signaling::Server,
    _alice: peer_sdk::Client,
    callee: tokio::task::JoinHandle<()>,
    call: peer_sdk::Call,
    chat: peer_sdk::DataChannel,
}

async fn call_bare_callee(mode: Candidates) -> BareCall {
    let server = support::server_with(|c| {
        let mut turn = signaling::EmbeddedTurn::new("127.0.0.2:0".parse().unwrap());
        turn.allow_peers = vec!["127.0.0.0/8".parse().unwrap()];
        c.turn = Some(turn);
    })
    .await;
    let url = support::url(server.local_addr());
    let callee = bare_callee(url, "bare", mode).await;
    let alice = support::connect(server.local_addr(), "alice").await;
    let options = CallOptions {
        channels: vec![ChannelSpec::reliable("chat")],
        ..Default::default()
    };
    let call = within("the call to be answered", alice.call("bare", options))
        .await
        .unwrap();
    let chat = call.data_channel("chat").unwrap();
    within("chat open", chat.opened()).await.unwrap();
    BareCall {
        _server: server,
        _alice: alice,
        callee,
        call,
        chat,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_inside_the_answer_are_reported_with_their_type() {
    let bare = call_bare_callee(Candidates::InAnswer).await;
    let (call, chat) = (&bare.call, &bare.chat);
    within("the echo", async {
        chat.send_text("through the relay").await.unwrap();
        let echoed = chat.recv().await.expect("channel closed");
        assert_eq!(echoed.text(), Some("through the relay"));
    })
    .await;

    let stats = call.stats().await;
    let (_, remote) = stats.pair.expect("a selected pair");
    assert_eq!(remote, CandidateType::Relay, "{stats:?}");
    assert!(stats.is_relayed(), "{stats:?}");

    call.hangup().await;
    within("the bare peer to finish", bare.callee)
        .await
        .unwrap();
}

/// The bare callee answers without candidates and trickles its relayed candidate only once
/// the call is up: the caller's agent first learnt that address from a check
/// (peer-reflexive), then replaces that candidate with the signalled one in place, under
/// the peer-reflexive candidate's id (`ice-prflx.patch`). The stats entry must follow:
/// webrtc-rs 0.21.1 registered the trickled candidate under its new id, so the selected
/// pair's remote candidate had no entry and the SDK said `prflx`
/// (`rtc-selected-remote-candidate-stats.patch`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_trickled_after_its_check_is_reported_with_its_type() {
    let bare = call_bare_callee(Candidates::TrickledOnceConnected).await;
    let (call, chat) = (&bare.call, &bare.chat);
    let first = call.stats().await;
    within("the remote candidate to be reported as relay", async {
        loop {
            chat.send_text("ping").await.unwrap();
            assert_eq!(
                chat.recv().await.expect("channel closed").text(),
                Some("ping")
            );
            let stats = call.stats().await;
            if stats.pair.map(|(_, remote)| remote) == Some(CandidateType::Relay) {
                assert!(stats.is_relayed());
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    eprintln!("before the trickle: {first:?}");
    call.hangup().await;
    within("the bare peer to finish", bare.callee)
        .await
        .unwrap();
}

/// The same on the sans-IO peer connection, without sockets or timing: a candidate inside
/// the remote description gets its own `remote-candidate` stats entry, with its type.
#[test]
fn a_remote_description_registers_its_candidates_for_stats() {
    use rtc::peer_connection::RTCPeerConnectionBuilder;
    use rtc::peer_connection::transport::{RTCIceCandidateInit, RTCIceCandidateType};
    use rtc::statistics::StatsSelector;
    use rtc::statistics::report::RTCStatsReportEntry;

    let now = std::time::Instant::now();
    let mut offerer = RTCPeerConnectionBuilder::new().build(now).unwrap();
    offerer.create_data_channel("chat", None).unwrap();
    let offer = offerer.create_offer(None).unwrap();
    offerer.set_local_description(now, offer).unwrap();
    let relay = "candidate:1 1 udp 16777215 127.0.0.2 50000 typ relay raddr 127.0.0.1 rport 40000";
    offerer
        .add_local_candidate(RTCIceCandidateInit {
            candidate: relay.into(),
            ..Default::default()
        })
        .unwrap();
    // Gathering complete: the offer now carries the candidate, as a non-trickle peer sends it.
    offerer
        .add_local_candidate(RTCIceCandidateInit::default())
        .unwrap();
    let offer = offerer.local_description().unwrap();
    assert!(offer.sdp.contains("typ relay"), "{}", offer.sdp);

    let mut answerer = RTCPeerConnectionBuilder::new().build(now).unwrap();
    answerer.set_remote_description(now, offer).unwrap();
    let report = answerer.get_stats(now, StatsSelector::None);
    let remote: Vec<_> = report
        .iter()
        .filter_map(|e| match e {
            RTCStatsReportEntry::RemoteCandidate(c) => Some(c),
            _ => None,
        })
        .collect();
    // webrtc-rs writes each local candidate for components 1 and 2 into the SDP (as Pion
    // does): both are the same relayed address.
    assert!(!remote.is_empty(), "no remote-candidate entry");
    for c in remote {
        assert_eq!(c.candidate_type, RTCIceCandidateType::Relay, "{c:?}");
        assert_eq!((c.address.as_deref(), c.port), (Some("127.0.0.2"), 50000));
    }
}
