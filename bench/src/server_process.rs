//! The signaling server under test, as a child process stopped on drop.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use bench_support::{BenchError, ChildProcess};

/// A running signaling server; dropping it stops the server.
pub struct ServerProcess {
    process: ChildProcess,
    /// Where it listens for WebSockets (`ws://<addr>/ws`).
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `binary` on a free loopback port with limits raised for the load, and
    /// `/metrics` on another (returned). With `cpus` (e.g. "0"), the server runs pinned to
    /// those CPUs (via `taskset`).
    pub async fn start_measured(
        binary: &Path,
        cpus: Option<&str>,
    ) -> Result<(ServerProcess, SocketAddr), BenchError> {
        let metrics_port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let metrics = SocketAddr::from(([127, 0, 0, 1], metrics_port));
        let load = load_args().chain(["--metrics-listen".to_owned(), metrics.to_string()]);
        let server = ServerProcess::start_with(binary, cpus, load).await?;
        Ok((server, metrics))
    }

    /// Starts `binary` on a free loopback port with its default limits and the embedded
    /// TURN relay on a free loopback port, allowed to relay between loopback addresses
    /// (what `--soak` needs: real clients, real relay, nothing raised).
    pub async fn start_with_relay(binary: &Path) -> Result<ServerProcess, BenchError> {
        let relay = ["--turn-listen", "127.0.0.1:0"]
            .into_iter()
            .chain(["--turn-allow-peers", "127.0.0.0/8"]);
        ServerProcess::start_with(binary, None, relay).await
    }

    /// Starts `binary` as the load does ([`ServerProcess::start_measured`]), with the embedded relay
    /// on a free port (several servers run side by side) and `extra` arguments, e.g.
    /// `--redis-url …` and `--node-id …` for a node of a cluster (`--nodes`).
    pub async fn start_node(
        binary: &Path,
        cpus: Option<&str>,
        extra: Vec<String>,
    ) -> Result<ServerProcess, BenchError> {
        let load = load_args()
            .chain(["--turn-listen".to_owned(), "127.0.0.1:0".to_owned()])
            .chain(extra);
        ServerProcess::start_with(binary, cpus, load).await
    }

    async fn start_with<S: AsRef<std::ffi::OsStr>>(
        binary: &Path,
        cpus: Option<&str>,
        args: impl IntoIterator<Item = S>,
    ) -> Result<ServerProcess, BenchError> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        // The server's log level: warn, unless SIGNALING_BENCH_SERVER_LOG says otherwise
        // (e.g. `debug`, to see why a run fails).
        let log = std::env::var("SIGNALING_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into());
        let mut process = ChildProcess::start(binary, cpus, |command| {
            command
                .args(["--listen", &addr.to_string(), "--log", &log])
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
        })?;
        process
            .wait_until("start listening", Duration::from_secs(10), async || {
                tokio::net::TcpStream::connect(addr).await.is_ok()
            })
            .await?;
        Ok(ServerProcess { process, addr })
    }

    /// Resident memory of the server, bytes.
    pub fn rss(&self) -> Result<u64, BenchError> {
        rss_of(self.process.id())
    }

    /// Open file descriptors of the server (sockets included): the entries of
    /// `/proc/<pid>/fd`.
    pub fn open_fds(&self) -> Result<u64, BenchError> {
        let path = format!("/proc/{}/fd", self.process.id());
        let entries = std::fs::read_dir(&path).map_err(|e| BenchError::Proc {
            path: path.clone().into(),
            problem: format!("cannot list: {e}"),
        })?;
        Ok(entries.count() as u64)
    }

    /// CPU time the server has used so far (user + system), seconds.
    pub fn cpu_seconds(&self) -> Result<f64, BenchError> {
        self.process.cpu_seconds()
    }
}

/// The server's limits raised for the load: no heartbeat to speak of, connections and the
/// per-connection message rate far above what the load needs.
fn load_args() -> impl Iterator<Item = String> {
    ["--heartbeat-s", "600", "--max-connections", "200000"]
        .into_iter()
        .chain(["--rate-per-s", "1000", "--rate-burst", "1000"])
        .map(String::from)
}

/// Resident memory of process `pid`, bytes (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_of(pid: u32) -> Result<u64, BenchError> {
    let path = format!("/proc/{pid}/status");
    let problem = |problem| BenchError::Proc {
        path: path.clone().into(),
        problem,
    };
    let status =
        std::fs::read_to_string(&path).map_err(|e| problem(format!("cannot read: {e}")))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .ok_or_else(|| problem("no VmRSS line with a size in kB".into()))?;
    Ok(kib * 1024)
}
