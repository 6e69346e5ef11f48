//! A call's statistics, reduced to what an app shows: the path, the round trip, the bytes.

use std::time::Duration;

use rtc::peer_connection::transport::RTCIceServerTransportProtocol;
use rtc::statistics::report::RTCStatsReportEntry;
use rtc::statistics::stats::ice_candidate::RTCIceCandidateStats;
use rtc::statistics::stats::ice_candidate_pair::{
    RTCIceCandidatePairStats, RTCStatsIceCandidatePairState,
};
use webrtc::peer_connection::{RTCIceCandidateType, RTCStatsReport};

/// How a candidate reaches the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateType {
    /// An address of a local interface.
    Host,
    /// The address a STUN server saw (behind a NAT).
    Srflx,
    /// An address learnt from the other side's checks.
    Prflx,
    /// An address on a TURN relay.
    Relay,
}

impl std::fmt::Display for CandidateType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CandidateType::Host => "host",
            CandidateType::Srflx => "srflx",
            CandidateType::Prflx => "prflx",
            CandidateType::Relay => "relay",
        })
    }
}

/// How this side reaches its TURN relay, when its end of the selected pair is a relay
/// candidate (what a browser's `getStats()` calls the local candidate's `relayProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayTransport {
    /// `turn:` over UDP.
    Udp,
    /// `turn:…?transport=tcp`.
    Tcp,
    /// `turns:` (TURN over TLS over TCP).
    Tls,
}

impl std::fmt::Display for RelayTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RelayTransport::Udp => "udp",
            RelayTransport::Tcp => "tcp",
            RelayTransport::Tls => "tls",
        })
    }
}

/// The statistics of a call at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallStats {
    /// The local and remote candidate types of the selected pair (`None` before ICE has
    /// selected one).
    pub pair: Option<(CandidateType, CandidateType)>,
    /// How this side reaches its relay, when the local end of the selected pair is a
    /// relay candidate; `None` otherwise.
    pub relay_transport: Option<RelayTransport>,
    /// The latest round-trip time measured by ICE on the selected pair.
    pub rtt: Option<Duration>,
    /// Bytes sent on the selected pair (all media and data, with headers).
    pub bytes_sent: u64,
    /// Bytes received on the selected pair (all media and data, with headers).
    pub bytes_received: u64,
}

impl CallStats {
    /// Whether the media goes through a TURN relay (on either side).
    pub fn is_relayed(&self) -> bool {
        matches!(self.pair, Some((a, b)) if a == CandidateType::Relay || b == CandidateType::Relay)
    }

    pub(crate) fn from_report(report: &RTCStatsReport) -> Self {
        let Some(pair) = selected_pair(report) else {
            return Self::default();
        };
        let rtt = (pair.current_round_trip_time > 0.0)
            .then(|| Duration::from_secs_f64(pair.current_round_trip_time));
        Self {
            pair: pair_types(report, pair),
            relay_transport: relay_transport(report, &pair.local_candidate_id),
            rtt,
            bytes_sent: pair.bytes_sent,
            bytes_received: pair.bytes_received,
        }
    }
}

fn selected_pair(report: &RTCStatsReport) -> Option<&RTCIceCandidatePairStats> {
    let selected = report
        .transport()
        .map(|t| t.selected_candidate_pair_id.clone())
        .unwrap_or_default();
    let pairs: Vec<_> = report.candidate_pairs().collect();
    pairs
        .iter()
        .find(|p| !selected.is_empty() && p.stats.id == selected)
        .or_else(|| pairs.iter().find(|p| p.nominated))
        .copied()
}

/// The candidate types of `pair`. webrtc-rs 0.21.1 lists only the remote candidates it
/// was told about, so a remote candidate missing from the report is either peer-reflexive
/// (learnt from a check that came before the trickled candidate) or, after an ICE restart
/// that kept the old pair, of the previous generation. The latter is resolved through a
/// succeeded, nominated pair of the same local candidate; otherwise it is `Prflx`.
fn pair_types(
    report: &RTCStatsReport,
    pair: &RTCIceCandidatePairStats,
) -> Option<(CandidateType, CandidateType)> {
    let types = |p: &RTCIceCandidatePairStats| {
        find_candidate(report, &p.local_candidate_id, true).zip(find_candidate(
            report,
            &p.remote_candidate_id,
            false,
        ))
    };
    types(pair).or_else(|| {
        report
            .candidate_pairs()
            .filter(|p| {
                p.nominated
                    && p.local_candidate_id == pair.local_candidate_id
                    && p.state == RTCStatsIceCandidatePairState::Succeeded
            })
            .find_map(types)
            .or_else(|| {
                find_candidate(report, &pair.local_candidate_id, true)
                    .map(|local| (local, CandidateType::Prflx))
            })
    })
}

/// The relay protocol of the local candidate `id`, if it is a relay candidate.
fn relay_transport(report: &RTCStatsReport, id: &str) -> Option<RelayTransport> {
    let c = candidate_stats(report, id, true)?;
    if c.candidate_type != RTCIceCandidateType::Relay {
        return None;
    }
    match c.relay_protocol {
        RTCIceServerTransportProtocol::Udp => Some(RelayTransport::Udp),
        RTCIceServerTransportProtocol::Tcp => Some(RelayTransport::Tcp),
        RTCIceServerTransportProtocol::Tls => Some(RelayTransport::Tls),
        _ => None,
    }
}

/// The type of the candidate named `id` in a pair.
fn find_candidate(report: &RTCStatsReport, id: &str, local: bool) -> Option<CandidateType> {
    match candidate_stats(report, id, local)?.candidate_type {
        RTCIceCandidateType::Host => Some(CandidateType::Host),
        RTCIceCandidateType::Srflx => Some(CandidateType::Srflx),
        RTCIceCandidateType::Prflx => Some(CandidateType::Prflx),
        RTCIceCandidateType::Relay => Some(CandidateType::Relay),
        _ => None,
    }
}

/// The stats entry of the (local or remote) candidate named `id` in a pair; webrtc-rs
/// names it `candidate:X` in the pair and `RTCLocalIceCandidate_candidate:X` (or the
/// remote form) in its own entry.
fn candidate_stats<'a>(
    report: &'a RTCStatsReport,
    id: &str,
    local: bool,
) -> Option<&'a RTCIceCandidateStats> {
    report.iter().find_map(|entry| {
        let c: &RTCIceCandidateStats = match (entry, local) {
            (RTCStatsReportEntry::LocalCandidate(c), true) => c,
            (RTCStatsReportEntry::RemoteCandidate(c), false) => c,
            _ => return None,
        };
        let own = c.stats.id.as_str();
        (own == id || own.ends_with(&format!("_{id}"))).then_some(c)
    })
}
