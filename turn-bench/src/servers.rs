//! The relays under test as child processes, pinned to the same CPUs, killed on drop.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::BenchError;
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
    child: Child,
    pub addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
        let mut command = match cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus]).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let (lo, hi) = ports;
        match kind {
            Kind::Ours => command
                .args(["--listen", &addr.to_string(), "--log", "warn"])
                .args(["--users", &format!("{USER}:{PASSWORD}"), "--realm", REALM])
                .args([
                    "--allow-peers",
                    "127.0.0.0/8",
                    "--relay-ports",
                    &format!("{lo}-{hi}"),
                ])
                .args(["--max-allocations-per-user", "10000"]),
            Kind::Coturn => command
                .args(["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
                .arg(format!("--listening-port={port}"))
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
                .args(["--fingerprint", "--no-stdout-log", "--log-file=/dev/null"]),
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| BenchError::Setup(format!("cannot start {}: {e}", binary.display())))?;
        let server = Server { child, addr };
        for _ in 0..100 {
            if turn_client::binding(addr).await.is_ok() {
                return Ok(server);
            }
            tokio::time::sleep(POLL).await;
        }
        Err(BenchError::Setup(format!(
            "{} did not answer STUN within 10 s",
            kind.name()
        )))
    }

    /// CPU time (user + system) the server has used so far, seconds.
    pub fn cpu_seconds(&self) -> Result<f64, BenchError> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // After the command name in parentheses: utime is field 12, stime field 13 (0-based).
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // Clock ticks are 100 a second on Linux.
        Ok((ticks(11) + ticks(12)) / 100.0)
    }
}

/// Short pause used while waiting for a server to come up.
pub const POLL: Duration = Duration::from_millis(100);
