//! The peer connection's UDP sockets get large kernel buffers (vendor/README.md:
//! `udp-socket-buffers.patch`). With Linux's default receive buffer (about 208 KiB) one SCTP
//! congestion window of a fast data channel overflowed it: the kernel dropped datagrams,
//! and SCTP paid for each with a fast retransmit or a 1 s T3-rtx timeout (peer-bench moved
//! 3 to 13 MB/s; docs/benchmarks.md). peer-bench measures the speed; this test checks the
//! cause, on the sockets themselves, with no timing.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::BorrowedFd;

use socket2::{SockRef, Type};

/// What the patch asks for; the kernel caps it at `net.core.{r,w}mem_max`.
const ASKED: usize = 4 << 20;

fn sysctl(name: &str) -> usize {
    let text = std::fs::read_to_string(format!("/proc/sys/net/core/{name}")).unwrap();
    text.trim().parse().unwrap()
}

/// `(port, receive buffer, send buffer)` of every UDP socket of this process on 127.0.0.1.
fn loopback_udp_sockets() -> Vec<(u16, usize, usize)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let entry = entry.unwrap();
        let is_socket = std::fs::read_link(entry.path())
            .map(|target| target.to_string_lossy().starts_with("socket:"))
            .unwrap_or(false);
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if !is_socket {
            continue;
        }
        // SAFETY: the descriptor is open (listed just now) and only borrowed for these
        // getsockopt/getsockname calls; the test closes nothing while it runs.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = SockRef::from(&fd);
        if socket.r#type().ok() != Some(Type::DGRAM) {
            continue;
        }
        let Some(addr) = socket.local_addr().ok().and_then(|a| a.as_socket()) else {
            continue;
        };
        if addr.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST) {
            found.push((
                addr.port(),
                socket.recv_buffer_size().unwrap(),
                socket.send_buffer_size().unwrap(),
            ));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_udp_sockets_get_large_kernel_buffers() {
    let server = support::server().await;
    let (alice, bob) = support::alice_and_bob(server.local_addr(), support::options()).await;
    let (call, _bob_call, chat, bob_chat) = support::chat_call(&alice, &bob).await;
    support::round_trip(&chat, &bob_chat, "hello").await;

    // Linux reports twice what was granted (the doubling covers its bookkeeping).
    let receive = 2 * ASKED.min(sysctl("rmem_max"));
    let send = 2 * ASKED.min(sysctl("wmem_max"));
    let sockets = loopback_udp_sockets();
    // One ICE socket per peer, both bound to 127.0.0.1 (support::options); nothing else in
    // this process (a signaling server without a relay) binds UDP on loopback.
    assert!(
        sockets.len() >= 2,
        "expected both peers' UDP sockets on 127.0.0.1, found {sockets:?}"
    );
    for (port, rcvbuf, sndbuf) in sockets {
        assert!(
            rcvbuf >= receive && sndbuf >= send,
            "UDP socket on port {port}: receive buffer {rcvbuf} B (want {receive}), \
             send buffer {sndbuf} B (want {send})"
        );
    }
    call.hangup().await;
}
