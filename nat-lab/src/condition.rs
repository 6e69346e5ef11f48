//! The network conditions of the lab and the path a call across two of them is expected
//! to take. docs/nat-lab.md reasons it out cell by cell.

use std::fmt;

/// Where a peer sits: on the other peer's LAN, or behind a NAT box in one of its modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Both peers on LAN A (lana and lana2): no NAT between them.
    SameLan,
    /// Full cone: endpoint-independent mapping, no filtering.
    Cone,
    /// Port-restricted cone: endpoint-independent mapping, inbound only from where the
    /// host has sent to.
    Prc,
    /// Symmetric: a new mapping per destination.
    Sym,
    /// No UDP; TCP only to signaling and the relay (3478, 5349).
    UdpBlock,
    /// No UDP; TCP only to signaling and the relay's TLS port.
    TlsOnly,
}

/// Whether a call's media goes peer to peer or through the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    Direct,
    Relay,
}

impl Condition {
    /// The NAT modes, in the order the matrix walks them.
    pub const NATS: [Condition; 5] = [
        Condition::Cone,
        Condition::Prc,
        Condition::Sym,
        Condition::UdpBlock,
        Condition::TlsOnly,
    ];

    /// The `nat-lab nat <box> <mode>` mode; for the same LAN, the lab's default (the
    /// peers do not cross it).
    pub fn mode(self) -> &'static str {
        match self {
            Condition::SameLan | Condition::Prc => "prc",
            Condition::Cone => "cone",
            Condition::Sym => "sym",
            Condition::UdpBlock => "udpblock",
            Condition::TlsOnly => "tlsonly",
        }
    }

    /// No UDP gets out: a peer here reaches nothing but the relay, over TCP or TLS.
    pub fn blocked(self) -> bool {
        matches!(self, Condition::UdpBlock | Condition::TlsOnly)
    }

    /// Its mapping is the same whatever the destination, so the address the relay's STUN
    /// answer shows (srflx) is the one the other peer can reach.
    fn endpoint_independent(self) -> bool {
        matches!(self, Condition::Cone | Condition::Prc)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::SameLan => f.write_str("same LAN"),
            other => f.write_str(other.mode()),
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Path::Direct => "direct",
            Path::Relay => "relay",
        })
    }
}

/// The path a call between a peer behind `a` and one behind `b` should take (symmetric in
/// `a` and `b`):
/// - the same LAN: direct (host to host);
/// - a blocked side (udpblock, tlsonly) has nothing but its relay: relay;
/// - otherwise direct when hole punching works: one side's mapping is endpoint-independent
///   and the other side accepts what comes to it (a full cone accepts anything; a
///   port-restricted cone what comes from where it sent, which a cone or prc peer's check
///   does, from its srflx address); a symmetric NAT's check comes from a port the other
///   side never sent to, so sym with prc or sym does not punch: relay.
pub fn expected(a: Condition, b: Condition) -> Path {
    use Condition::*;
    if a == SameLan || b == SameLan {
        return Path::Direct;
    }
    if a.blocked() || b.blocked() {
        return Path::Relay;
    }
    let punches = match (a, b) {
        (Cone, _) | (_, Cone) => true,
        _ => a.endpoint_independent() && b.endpoint_independent(),
    };
    if punches { Path::Direct } else { Path::Relay }
}

#[cfg(test)]
mod tests {
    use super::Condition::*;
    use super::*;

    #[test]
    fn hole_punching_needs_a_cone_or_two_port_restricted_cones() {
        assert_eq!(expected(SameLan, SameLan), Path::Direct);
        for other in [Cone, Prc, Sym] {
            assert_eq!(expected(Cone, other), Path::Direct, "cone/{other}");
        }
        assert_eq!(expected(Prc, Prc), Path::Direct);
        assert_eq!(expected(Prc, Sym), Path::Relay);
        assert_eq!(expected(Sym, Sym), Path::Relay);
    }

    #[test]
    fn a_blocked_side_always_relays_and_the_rule_is_symmetric() {
        for a in Condition::NATS {
            for b in Condition::NATS {
                assert_eq!(expected(a, b), expected(b, a), "{a}/{b}");
                if a.blocked() {
                    assert_eq!(expected(a, b), Path::Relay, "{a}/{b}");
                }
            }
        }
    }
}
