//! The relay out of file descriptors (issue 16, item 1), as an attacker gets it there: the
//! `turn-relay` binary under `ulimit -n 64`, and a hundred TCP connections that it accepts
//! until `accept()` fails with EMFILE. Before the fix, every Allocate in that state burned
//! its eight bind attempts' ports for good (a 16-port range was gone after two), so once the
//! connections closed the relay still answered 508 to everyone until restarted; and the
//! accept loop retried the failing `accept()` at once, spinning a core.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // a test: it waits on the wall clock

mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use stun_rs::MessageClass;
use stun_rs::attributes::turn::RequestedTrasport;
use stun_rs::methods::ALLOCATE;
use support::{PASSWORD, REALM, TestClient, USER, error_code};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;

/// CPU time (user + system) of process `pid`, from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses): utime and stime are the
    // 12th and 13th of them, in clock ticks (100 a second on Linux).
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

async fn allocate(client: &mut TestClient) -> Option<u16> {
    let reply = client
        .request(
            ALLOCATE,
            vec![RequestedTrasport::new(stun_rs::protocols::UDP).into()],
        )
        .await;
    if reply.class() == MessageClass::SuccessResponse {
        return Some(test_support::stun::relayed_address(&reply).port());
    }
    assert_eq!(error_code(&reply), Some(508), "{reply:?}");
    None
}

#[tokio::test]
async fn out_of_file_descriptors_the_relay_loses_no_port_and_does_not_spin() {
    let command = format!(
        "ulimit -n 64 && exec {} --log error --listen 127.0.0.1:0 --realm {REALM} \
         --users {USER}:{PASSWORD} --relay-ports 61000-61015 --max-allocations-per-user 100",
        env!("CARGO_BIN_EXE_turn-relay")
    );
    let mut child = tokio::process::Command::new("sh")
        .args(["-c", &command])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .await
        .unwrap();
    // "turn-relay: listening on udp 127.0.0.1:P, tcp 127.0.0.1:Q"
    let address = |kind: &str| -> SocketAddr {
        let at = line.find(&format!("{kind} ")).unwrap() + kind.len() + 1;
        line[at..]
            .split([',', '\n'])
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (udp, tcp) = (address("udp"), address("tcp"));

    // Connections until the relay cannot accept more; the rest wait in the backlog.
    let mut streams = Vec::new();
    for _ in 0..100 {
        streams.push(TcpStream::connect(tcp).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Out of descriptors, no relay socket can be bound: 508, at once.
    let mut client = TestClient::new(udp, "127.0.0.1").await;
    for _ in 0..4 {
        assert_eq!(allocate(&mut client).await, None, "no socket to relay on");
    }
    // The accept loop pauses instead of retrying EMFILE at once.
    let before = cpu_time(pid);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let spent = cpu_time(pid) - before;
    assert!(
        spent < Duration::from_millis(300),
        "the relay spent {spent:?} of CPU in 1 s with nothing to do but a failing accept()"
    );

    // The connections go; every port of the range is still there.
    drop(streams);
    let (mut ports, mut clients) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        let mut fresh = TestClient::new(udp, "127.0.0.1").await;
        if let Some(port) = allocate(&mut fresh).await {
            ports.push(port);
            // Each allocation belongs to its client's socket: 16 of them fill the range.
            clients.push(fresh);
            if ports.len() == 16 {
                break;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    ports.sort_unstable();
    assert_eq!(
        ports,
        (61000..=61015).collect::<Vec<u16>>(),
        "every relay port can be allocated again"
    );
}
