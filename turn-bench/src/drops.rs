//! Datagrams the kernel dropped because a socket's receive buffer was full, per socket
//! (`/proc/net/udp`'s `drops` column): tells what a relay lost from what the bench's own
//! sinks lost, both on this machine's loopback.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;

use bench_support::BenchError;

const PATH: &str = "/proc/net/udp";

/// Drops so far, summed over the IPv4 UDP sockets whose local address `wanted` picks.
pub fn udp_drops(wanted: impl Fn(SocketAddr) -> bool) -> Result<u64, BenchError> {
    let problem = |problem: String| BenchError::Proc {
        path: PathBuf::from(PATH),
        problem,
    };
    let table = std::fs::read_to_string(PATH).map_err(|e| problem(e.to_string()))?;
    let mut total = 0;
    for line in table.lines().skip(1) {
        let (local, drops) = parse_row(line).ok_or_else(|| problem(format!("row {line:?}")))?;
        if wanted(SocketAddr::V4(local)) {
            total += drops;
        }
    }
    Ok(total)
}

/// A row's local address and drop count: `sl local_address rem_address st … drops`, the
/// address as the kernel's `%08X:%04X` of the address in memory order and the port.
fn parse_row(line: &str) -> Option<(SocketAddrV4, u64)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (ip, port) = fields.get(1)?.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let drops = fields.last()?.parse().ok()?;
    Some((
        SocketAddrV4::new(Ipv4Addr::from(ip.to_ne_bytes()), port),
        drops,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_row_gives_its_local_address_and_drops() {
        let ip = u32::from_ne_bytes([127, 0, 0, 2]);
        let line = format!(
            "  512: {ip:08X}:D431 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 123456 2 0000000000000000 17"
        );
        assert_eq!(
            parse_row(&line),
            Some(("127.0.0.2:54321".parse().unwrap(), 17))
        );
        assert_eq!(parse_row("garbage"), None);
    }

    #[test]
    fn a_full_socket_shows_its_drops() {
        let full = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // The smallest buffer the kernel grants, whatever this machine's default.
        socket2::SockRef::from(&full)
            .set_recv_buffer_size(4096)
            .unwrap();
        let other = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (addr, other_addr) = (full.local_addr().unwrap(), other.local_addr().unwrap());
        assert_eq!(udp_drops(|a| a == addr).unwrap(), 0);
        // 4 MB at a socket nobody reads, whose buffer holds a few datagrams: loopback
        // delivers at once, so the rest is dropped before `send_to` returns.
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..4_000 {
            sender.send_to(&[0; 1000], addr).unwrap();
        }
        let drops = udp_drops(|a| a == addr).unwrap();
        assert!((1..4_000).contains(&drops), "{drops}");
        assert_eq!(udp_drops(|a| a == other_addr).unwrap(), 0);
    }
}
