//! Builds a webrtc-rs peer connection for a call and turns its callbacks into a channel of
//! events: callbacks run on the connection's own loop, so they must never block.

use crate::tls::Tls;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rtc::ice::mdns::MulticastDnsMode;
use signaling_protocol::IceServer;
use tokio::sync::mpsc;
use webrtc::data_channel::DataChannel as RtcDataChannel;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceConnectionState, RTCIceGatheringState, RTCIceServer,
    RTCIceTransportPolicy, RTCPeerConnectionIceEvent, RTCPeerConnectionState, Registry,
    SettingEngineBuilder, register_default_interceptors,
};

use crate::error::Result;
use crate::options::{IcePolicy, PeerOptions};

/// What a peer connection reports, in order.
pub(crate) enum PeerEvent {
    /// A local candidate to trickle (`None`: gathering is complete).
    Candidate(Option<webrtc::peer_connection::RTCIceCandidateInit>),
    Ice(RTCIceConnectionState),
    State(RTCPeerConnectionState),
    DataChannel(Arc<dyn RtcDataChannel>),
    Track(Arc<dyn TrackRemote>),
}

struct Forward(mpsc::UnboundedSender<PeerEvent>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Forward {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => {
                let _ = self.0.send(PeerEvent::Candidate(Some(init)));
            }
            Err(e) => tracing::warn!(error = %e, "local candidate not serializable"),
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.0.send(PeerEvent::Candidate(None));
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        let _ = self.0.send(PeerEvent::Ice(state));
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.0.send(PeerEvent::State(state));
    }

    async fn on_data_channel(&self, channel: Arc<dyn RtcDataChannel>) {
        let _ = self.0.send(PeerEvent::DataChannel(channel));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.0.send(PeerEvent::Track(track));
    }
}

/// A peer connection and the receiving end of its events.
pub(crate) struct Peer {
    pub pc: Arc<dyn PeerConnection>,
    pub events: mpsc::UnboundedReceiver<PeerEvent>,
}

/// Builds a peer connection that uses `ice_servers` (from `welcome`) plus the options';
/// `turns:` relays are checked against `tls`'s roots, as the signaling server is.
pub(crate) async fn build(
    ice_servers: Vec<IceServer>,
    tls: &Tls,
    options: &PeerOptions,
) -> Result<Peer> {
    let mut media = MediaEngine::default();
    media.register_default_codecs()?;
    let registry = register_default_interceptors(Registry::new(), &mut media)?;

    let servers = ice_servers
        .into_iter()
        .chain(options.extra_ice_servers.iter().cloned())
        .map(|s| RTCIceServer {
            urls: s.urls,
            username: s.username.unwrap_or_default(),
            credential: s.credential.unwrap_or_default(),
        })
        .collect();
    let policy = match options.policy {
        IcePolicy::All => RTCIceTransportPolicy::All,
        IcePolicy::RelayOnly => RTCIceTransportPolicy::Relay,
    };
    let config = RTCConfigurationBuilder::new()
        .with_ice_servers(servers)
        .with_ice_transport_policy(policy)
        .build();
    // webrtc-rs (after Pion) accepts a relay pair only after 2 s, hoping for a better one;
    // with relay-only there is none to hope for.
    let relay_wait = match options.policy {
        IcePolicy::RelayOnly => Some(Duration::ZERO),
        IcePolicy::All => None,
    };
    // Host candidates on loopback are off by default; binding loopback on purpose
    // (tests, two apps on one box) wants them.
    let loopback = options.bind.iter().any(|a| a.ip().is_loopback());
    let settings = SettingEngineBuilder::new()
        .with_relay_acceptance_min_wait(relay_wait)
        .with_include_loopback_candidate(loopback)
        .with_multicast_dns_mode(multicast_dns_mode())
        .build();

    let (tx, events) = mpsc::unbounded_channel();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(config)
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .with_handler(Arc::new(Forward(tx)))
        .with_udp_addrs(options.bind.clone())
        .with_data_channel_send_buffer_limit(options.data_channel_send_buffer)
        .with_turn_tls_config(tls.config())
        .build()
        .await?;
    Ok(Peer {
        pc: Arc::new(pc),
        events,
    })
}

/// The mDNS mode for a new peer connection. webrtc-rs opens an mDNS socket (UDP 5353,
/// group 224.0.0.251) for every peer connection and fails the connection when it cannot:
/// on a host with no multicast route (containers, some VMs) every call would fail with
/// `No such device`. mDNS only resolves the `.local` host candidates of browsers, which
/// ICE does without (their checks arrive as peer-reflexive), so when the same socket cannot
/// be opened here, the call goes on without mDNS. Probed for each call (a few system calls)
/// so that a host that gains or loses its route is followed; logged once per change.
fn multicast_dns_mode() -> MulticastDnsMode {
    static OFF: AtomicBool = AtomicBool::new(false);
    match rtc::mdns::MulticastSocket::new().into_std() {
        Ok(_probe) => {
            if OFF.swap(false, Ordering::Relaxed) {
                tracing::info!("multicast works again: mDNS is on");
            }
            MulticastDnsMode::QueryOnly
        }
        Err(error) => {
            if !OFF.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    %error,
                    "mDNS is off: cannot join its multicast group (no multicast route?); \
                     calls go on without resolving .local candidates"
                );
            }
            MulticastDnsMode::Disabled
        }
    }
}

/// Fills an empty or missing `sdpMid` with the mid of the candidate's m-line, as browsers
/// need it; webrtc-rs 0.21.1 can leave it empty.
pub(crate) fn fill_mid(
    mut init: webrtc::peer_connection::RTCIceCandidateInit,
    local_sdp: Option<&str>,
) -> webrtc::peer_connection::RTCIceCandidateInit {
    if init.sdp_mid.as_deref().is_none_or(str::is_empty) {
        let index = usize::from(init.sdp_mline_index.unwrap_or(0));
        let mid = local_sdp.and_then(|sdp| mids(sdp).into_iter().nth(index));
        init.sdp_mid = Some(mid.unwrap_or_else(|| "0".to_owned()));
        init.sdp_mline_index.get_or_insert(0);
    }
    init
}

/// The `a=mid:` of each m-line, in order.
pub(crate) fn mids(sdp: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_media = false;
    for line in sdp.lines() {
        let line = line.trim_end();
        if line.starts_with("m=") {
            in_media = true;
            out.push(String::new());
        } else if let (true, Some(mid), Some(last)) =
            (in_media, line.strip_prefix("a=mid:"), out.last_mut())
        {
            *last = mid.to_owned();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE a0 v1 d2\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:v1\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:d2\r\n";

    fn init(mid: Option<&str>, index: Option<u16>) -> webrtc::peer_connection::RTCIceCandidateInit {
        webrtc::peer_connection::RTCIceCandidateInit {
            candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host".into(),
            sdp_mid: mid.map(str::to_owned),
            sdp_mline_index: index,
            ..Default::default()
        }
    }

    #[test]
    fn an_empty_mid_becomes_the_mid_of_its_m_line() {
        assert_eq!(mids(SDP), vec!["a0", "v1", "d2"]);
        assert_eq!(
            fill_mid(init(Some(""), Some(1)), Some(SDP))
                .sdp_mid
                .as_deref(),
            Some("v1")
        );
        assert_eq!(
            fill_mid(init(None, None), Some(SDP)).sdp_mid.as_deref(),
            Some("a0")
        );
        assert_eq!(
            fill_mid(init(Some("x"), Some(2)), Some(SDP))
                .sdp_mid
                .as_deref(),
            Some("x")
        );
        assert_eq!(
            fill_mid(init(Some(""), Some(0)), None).sdp_mid.as_deref(),
            Some("0")
        );
    }
}
