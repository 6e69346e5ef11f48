//! The relays under test as child processes, pinned to the same CPUs, stopped on drop.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bench_support::{BenchError, ChildProcess};

use crate::turn_client;

pub const USER: &str = "user";
pub const PASSWORD: &str = "secret";
pub const REALM: &str = "test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ours,
    Coturn,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ours => "turn-relay",
            Kind::Coturn => "coturn",
        }
    }
}

pub struct Server {
    process: ChildProcess,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `binary` on a free loopback port, relaying from 127.0.0.1 to peers on
    /// 127.0.0.0/8, with the same user, realm and a 1,000-port range.
    pub async fn start(
        kind: Kind,
        binary: &Path,
        cpus: Option<&str>,
        ports: (u16, u16),
    ) -> Result<Server, BenchError> {
        let port = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut process = ChildProcess::start(binary, cpus, |command| {
            match kind {
                Kind::Ours => ours_args(command, addr, ports),
                Kind::Coturn => coturn_args(command, addr, ports),
            };
            command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        })?;
        process
            .wait_until("answer STUN", Duration::from_secs(10), async || {
                turn_client::binding(addr).await.is_ok()
            })
            .await?;
        Ok(Server { process, addr })
    }

    /// CPU time (user + system) the server has used so far, seconds.
    pub fn cpu_seconds(&self) -> Result<f64, BenchError> {
        self.process.cpu_seconds()
    }
}

fn ours_args(command: &mut Command, addr: SocketAddr, (lo, hi): (u16, u16)) -> &mut Command {
    command
        .args(["--listen", &addr.to_string(), "--log", "warn"])
        .args(["--users", &format!("{USER}:{PASSWORD}"), "--realm", REALM])
        .args([
            "--allow-peers",
            "127.0.0.0/8",
            "--relay-ports",
            &format!("{lo}-{hi}"),
        ])
        .args(["--max-allocations-per-user", "10000"])
}

fn coturn_args(command: &mut Command, addr: SocketAddr, (lo, hi): (u16, u16)) -> &mut Command {
    command
        .args(["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
        .arg(format!("--listening-port={}", addr.port()))
        .arg(format!("--user={USER}:{PASSWORD}"))
        .arg(format!("--realm={REALM}"))
        .args([
            "--lt-cred-mech",
            "--allow-loopback-peers",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
        ])
        .arg(format!("--min-port={lo}"))
        .arg(format!("--max-port={hi}"))
        .args(["--fingerprint", "--no-stdout-log", "--log-file=/dev/null"])
}
