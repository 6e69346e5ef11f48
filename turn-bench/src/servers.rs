//! The relays under test as child processes, pinned to the same CPUs, stopped on drop.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
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

    /// Relay ports: 11,000 each, disjoint, below the kernel's ephemeral range (32768-60999)
    /// where the bench's own sockets get theirs.
    fn ports(self) -> (u16, u16) {
        match self {
            Kind::Ours => (10_000, 20_999),
            Kind::Coturn => (21_000, 31_999),
        }
    }
}

/// How to start the servers: their binaries and the CPUs they are pinned to.
pub struct Launch {
    pub relay: PathBuf,
    pub coturn: PathBuf,
    pub cpus: Option<String>,
}

impl Launch {
    /// A fresh server of `kind`: no allocations left over from an earlier row.
    pub async fn start(&self, kind: Kind) -> Result<Server, BenchError> {
        let binary = match kind {
            Kind::Ours => &self.relay,
            Kind::Coturn => &self.coturn,
        };
        Server::start(kind, binary, self.cpus.as_deref(), kind.ports()).await
    }
}

pub struct Server {
    process: ChildProcess,
    pub addr: SocketAddr,
    /// Its relay ports, first and last.
    pub ports: (u16, u16),
}

impl Server {
    /// Starts `binary` on a free loopback port, relaying from 127.0.0.1 to peers on
    /// 127.0.0.0/8, with the same user and realm, on the relay ports `ports`.
    async fn start(
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
        Ok(Server {
            process,
            addr,
            ports,
        })
    }

    /// Whether `addr` is one of the server's sockets: its listening port or a relay port.
    pub fn owns(&self, addr: SocketAddr) -> bool {
        let (lo, hi) = self.ports;
        addr.ip() == self.addr.ip()
            && (addr.port() == self.addr.port() || (lo..=hi).contains(&addr.port()))
    }

    /// CPU time (user + system) the server has used so far, seconds.
    pub fn cpu_seconds(&self) -> Result<f64, BenchError> {
        self.process.cpu_seconds()
    }

    /// Resident memory of the server process (VmRSS of `/proc/<pid>/status`), bytes. The
    /// pid is the server's own: taskset execs the server in its place.
    pub fn rss_bytes(&self) -> Result<u64, BenchError> {
        let path = PathBuf::from(format!("/proc/{}/status", self.process.id()));
        let problem = |problem: &str| BenchError::Proc {
            path: path.clone(),
            problem: problem.into(),
        };
        let status = std::fs::read_to_string(&path).map_err(|e| problem(&e.to_string()))?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| problem("no VmRSS in kB"))?;
        Ok(kib * 1024)
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
