//! Which peer addresses the relay may send to (coturn CVE-2020-26262 and CVE-2026-27624
//! class): by default nothing on the relay's own host or networks, nothing special-purpose.
//!
//! The order is: the relay's own addresses are always refused; then the operator's
//! `deny` list refuses; then the `allow` list opens ranges (tests allow 127.0.0.0/8);
//! then the built-in special-purpose ranges refuse. IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
//! (`::a.b.c.d`), NAT64 (64:ff9b::/96), 6to4 (2002::/16) and Teredo forms are judged by
//! the IPv4 address they carry or are refused outright.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why a peer was refused (for metrics and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// One of the relay's own addresses.
    OwnAddress,
    /// In the operator's deny list.
    Denied,
    /// Loopback, private, link-local, multicast, or another special-purpose range.
    SpecialPurpose,
}

impl Refusal {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::OwnAddress => "own_address",
            Refusal::Denied => "denied",
            Refusal::SpecialPurpose => "special_purpose",
        }
    }
}

/// Which peers a client may reach through the relay; the default refuses every
/// special-purpose range and allows the rest of the Internet.
#[derive(Debug, Clone, Default)]
pub struct PeerPolicy {
    /// Ranges allowed although special-purpose (tests allow 127.0.0.0/8).
    pub allow: Vec<IpNet>,
    /// Ranges refused in addition to the special-purpose ones; wins over `allow`.
    pub deny: Vec<IpNet>,
    /// The relay's listening and relay addresses: never a peer.
    pub own: Vec<IpAddr>,
}

impl PeerPolicy {
    /// Whether the relay may exchange data with `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refusal> {
        let ip = canonical(ip);
        if self.own.iter().any(|own| canonical(*own) == ip) {
            return Err(Refusal::OwnAddress);
        }
        if self.deny.iter().any(|net| net.contains(&ip)) {
            return Err(Refusal::Denied);
        }
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        if is_special(ip) {
            return Err(Refusal::SpecialPurpose);
        }
        Ok(())
    }
}

/// IPv6 forms that carry an IPv4 address in their low 32 bits, judged as that address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let mapped = s[..5] == [0; 5] && s[5] == 0xFFFF;
    // IPv4-compatible (deprecated), but not :: and ::1 themselves (handled as IPv6).
    let compatible = s[..6] == [0; 6] && u32::from(low) > 1;
    // NAT64 well-known prefix 64:ff9b::/96.
    let nat64 = s[..6] == [0x64, 0xFF9B, 0, 0, 0, 0];
    (mapped || compatible || nat64).then_some(low)
}

fn is_special(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_unspecified()
        || o[0] == 0 // 0.0.0.0/8 "this network"
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // includes 169.254.169.254, cloud metadata
        || ip.is_multicast()
        || ip.is_broadcast()
        || (o[0] == 100 && (o[1] & 0xC0) == 64) // 100.64.0.0/10 CGNAT
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24 IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xFE) == 18) // 198.18.0.0/15 benchmarking
        || o[0] >= 240 // 240.0.0.0/4 reserved
}

fn special_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xFE00) == 0xFC00 // fc00::/7 unique local
        || (s[0] & 0xFFC0) == 0xFE80 // fe80::/10 link-local
        || (s[0] & 0xFFC0) == 0xFEC0 // fec0::/10 site-local (deprecated)
        || s[0] == 0x2002 // 6to4 carries an IPv4 address: refuse the form
        || (s[0] == 0x2001 && s[1] == 0) // Teredo 2001::/32
        || (s[0] == 0x0064 && s[1] == 0xFF9B) // 64:ff9b::/48 local-use NAT64
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // 100::/64 discard
        || (s[0] == 0x2001 && s[1] == 0x0DB8) // documentation
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_policy_refuses_every_special_range() {
        let p = PeerPolicy::default();
        for s in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "100.64.0.1",
            "100.127.255.255",
            "198.18.0.1",
            "240.0.0.1",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:0.0.0.0",
            "::ffff:10.1.2.3",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2001:0:4136:e378::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert_eq!(
                p.check(ip(s)),
                Err(Refusal::SpecialPurpose),
                "{s} must be refused"
            );
        }
    }

    #[test]
    fn public_addresses_and_range_edges_pass() {
        let p = PeerPolicy::default();
        for s in [
            "1.1.1.1",
            "9.255.255.255",
            "11.0.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "192.0.2.1",
            "198.51.100.2",
            "203.0.113.9",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2a00:1450::1",
        ] {
            assert_eq!(p.check(ip(s)), Ok(()), "{s} must pass");
        }
    }

    #[test]
    fn allow_list_opens_exactly_its_ranges_and_own_addresses_stay_closed() {
        let p = PeerPolicy {
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            deny: vec![
                "127.0.0.99/32".parse().unwrap(),
                "8.8.8.0/24".parse().unwrap(),
            ],
            own: vec![ip("127.0.0.1")],
        };
        assert_eq!(p.check(ip("127.0.0.2")), Ok(()));
        assert_eq!(p.check(ip("::ffff:127.0.0.2")), Ok(()));
        assert_eq!(p.check(ip("127.0.0.1")), Err(Refusal::OwnAddress));
        assert_eq!(p.check(ip("::ffff:127.0.0.1")), Err(Refusal::OwnAddress));
        assert_eq!(p.check(ip("127.0.0.99")), Err(Refusal::Denied));
        assert_eq!(p.check(ip("8.8.8.8")), Err(Refusal::Denied));
        assert_eq!(p.check(ip("10.0.0.1")), Err(Refusal::SpecialPurpose));
        assert_eq!(p.check(ip("::1")), Err(Refusal::SpecialPurpose));
    }
}
