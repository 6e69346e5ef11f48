//! coturn's test tools as an independent check of our relay: `turnutils_peer`, a UDP echo
//! peer, and `turnutils_uclient`, a TURN client that relays through an allocation to it.
//! Callers check them first with [`require`](crate::require::require)
//! (`require("turnutils_peer", "coturn")`).

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::process::{Child, Command};

use crate::wait::within_for;

/// A child process killed when the test ends, however it ends.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// A free UDP port on `ip` (bound, read, released).
pub fn free_udp_port(ip: &str) -> u16 {
    std::net::UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// coturn's echo peer on `ip`, once it echoes; returns it and its address.
pub async fn echo_peer(ip: &str) -> (ChildGuard, SocketAddr) {
    let port = free_udp_port(ip);
    let child = Command::new("turnutils_peer")
        .args(["-L", ip, "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    let guard = ChildGuard(child);
    within_for(
        Duration::from_secs(10),
        "turnutils_peer to echo",
        echoes(addr),
    )
    .await;
    (guard, addr)
}

/// Returns once `peer` echoes a datagram (sent again every 20 ms until it does).
async fn echoes(peer: SocketAddr) {
    let probe = UdpSocket::bind((peer.ip(), 0)).await.unwrap();
    let mut buf = [0u8; 16];
    loop {
        probe.send_to(b"ready?", peer).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_millis(20), probe.recv_from(&mut buf));
        if let Ok(Ok((n, from))) = reply.await
            && from == peer
            && buf[..n] == *b"ready?"
        {
            return;
        }
    }
}

/// What `turnutils_uclient` reported.
#[derive(Debug, Default)]
pub struct Totals {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub output: String,
}

/// Runs `turnutils_uclient` with `args` (server address last) within 120 s.
pub async fn uclient(args: &[String]) -> Totals {
    let run = Command::new("turnutils_uclient")
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("turnutils_uclient finished within 120 s")
        .unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut t = Totals::default();
    for line in output.lines() {
        if let Some(rest) = line.split("start_mclient: tot_send_msgs=").nth(1) {
            let mut parts = rest.split(", tot_recv_msgs=");
            t.sent = parts
                .next()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            t.received = parts
                .next()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
        }
        if let Some(rest) = line.split("Total lost packets ").nth(1) {
            t.lost = rest
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(u64::MAX);
        }
    }
    t.output = output;
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::require::require;

    #[tokio::test]
    async fn the_echo_peer_echoes_as_soon_as_it_is_returned() {
        if !require("turnutils_peer", "coturn") {
            return;
        }
        let (_peer, addr) = echo_peer("127.0.0.1").await;
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.send_to(b"hello", addr).await.unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = within_for(
            Duration::from_secs(5),
            "the echo",
            socket.recv_from(&mut buf),
        )
        .await
        .unwrap();
        assert_eq!((&buf[..n], from), (&b"hello"[..], addr));
    }
}
