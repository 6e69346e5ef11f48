//! The signaling server under test, as a child process killed on drop.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::BenchError;

pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `binary` on a free loopback port with limits raised for the load.
    /// With `cpus` (e.g. "0"), the server runs pinned to those CPUs (via `taskset`).
    pub async fn start(binary: &Path, cpus: Option<&str>) -> Result<ServerProcess, BenchError> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut command = match cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus]).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let child = command
            .args(["--listen", &addr.to_string(), "--log", "warn"])
            .args(["--heartbeat-s", "600", "--max-connections", "200000"])
            .args(["--rate-per-s", "1000", "--rate-burst", "1000"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| BenchError::Setup(format!("cannot start {}: {e}", binary.display())))?;
        let server = ServerProcess { child, addr };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(BenchError::Setup(
            "the server did not start listening within 5 s".into(),
        ))
    }

    /// Resident memory of the server, bytes.
    pub fn rss(&self) -> Result<u64, BenchError> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .ok_or_else(|| BenchError::Setup("no VmRSS in /proc status".into()))?;
        Ok(kib * 1024)
    }
}

impl ServerProcess {
    /// CPU time the server has used so far (user + system), seconds.
    pub fn cpu_seconds(&self) -> Result<f64, BenchError> {
        cpu_seconds(&format!("/proc/{}/stat", self.child.id()))
    }
}

/// CPU time (user + system) of the process whose `/proc/<pid>/stat` is `path`, seconds.
pub fn cpu_seconds(path: &str) -> Result<f64, BenchError> {
    {
        let stat = std::fs::read_to_string(path)?;
        // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // USER_HZ is 100 on Linux.
        Ok((ticks(11) + ticks(12)) / 100.0)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
