//! `--nodes N` (N ≥ 2): the signaling server as N nodes sharing a private Redis, against one
//! node without Redis, in the same run.
//!
//! Phases, in order (each bounded in count and time, loopback only):
//! 1. **One node**: a separate server without Redis holds the per-node share of `--idle`
//!    sessions; `--calls` calls are set up on it and relay `candidate`s at `--rate`.
//! 2. **N nodes**: a private `redis-server` (free port, no persistence, a temporary
//!    directory, killed at the end) and N servers with `--redis-url` and `--node-id nodeK`;
//!    `--idle` sessions spread evenly over the nodes; then the same call and relay phases
//!    twice: with both parties of every call on node 0 (what the cluster costs a call that
//!    stays on one node) and with caller and callee on different nodes (node 0 → node 1;
//!    for N > 2 the calls go round the node pairs a < b).
//!
//! Idle sessions are opened and held by child processes of the bench (one per server, this
//! same binary with the hidden `--hold-server`), so that the bench's own limit on open
//! files (20,000 on the project's machine) covers only the call sockets, and N nodes can be
//! given more sessions together than one process could hold.
//!
//! During the cross-node relay the bench also looks at where the time goes: the nodes'
//! `/metrics` (Redis round trips as the node times them, messages sent and received),
//! Redis's own `INFO commandstats` (time spent inside each command), and a probe that
//! times, from the bench, an `XADD` on one connection until a blocked `XREAD` on another
//! wakes up.

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bench_support::{BenchError, ChildProcess};
use futures_util::future::try_join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::calls::{self, RelayResult, SetupResult};
use crate::server_process::ServerProcess;
use crate::{client, mib, ms, percentile};

/// What `--nodes` needs from the command line.
pub struct NodesArgs {
    pub server: PathBuf,
    pub nodes: usize,
    pub idle: usize,
    pub calls: usize,
    pub rate: u64,
    pub seconds: u64,
    pub server_cpus: Option<String>,
    pub stagger: bool,
}

/// How long a holder may take to open its sessions.
const HOLD_OPEN_LIMIT: Duration = Duration::from_secs(300);
/// How long a holder holds its sessions at most when nobody closes its stdin.
const HOLD_LIMIT: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------------------------------
// Idle sessions held by a child process.

/// The hidden `--hold-server` mode: opens `count` sessions (users `idle{first}…`) to
/// `server`, prints `held <count> <seconds>` on stdout, then holds them until stdin closes
/// (the parent ends or drops its [`Holder`]) or [`HOLD_LIMIT`] passes.
pub async fn hold(server: SocketAddr, first: usize, count: usize) -> Result<(), BenchError> {
    let started = Instant::now();
    let mut held = Vec::with_capacity(count);
    let indexes: Vec<usize> = (first..first + count).collect();
    for batch in indexes.chunks(1000) {
        let joins = batch.iter().map(|&i| async move {
            client::join(server, client::source_for(i), &format!("idle{i}")).await
        });
        held.extend(try_join_all(joins).await?);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "held {} {:.3}",
        held.len(),
        started.elapsed().as_secs_f64()
    )?;
    out.flush()?;
    drop(out);
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().lock().read_to_end(&mut sink);
    });
    let _ = tokio::time::timeout(HOLD_LIMIT, stdin_closed).await;
    drop(held);
    Ok(())
}

/// A child process of the bench holding idle sessions; dropping it closes them.
struct Holder {
    child: Child,
}

impl Holder {
    /// Starts a holder of `count` sessions to `server` and waits until it holds them all;
    /// returns it and how long opening took.
    async fn start(
        server: SocketAddr,
        first: usize,
        count: usize,
    ) -> Result<(Holder, Duration), BenchError> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(&exe)
            .args(["--hold-server", &server.to_string()])
            .args(["--hold-first", &first.to_string()])
            .args(["--idle", &count.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| BenchError::Setup(format!("cannot start {}: {e}", exe.display())))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut holder = Holder { child };
        let line = tokio::time::timeout(
            HOLD_OPEN_LIMIT,
            tokio::task::spawn_blocking(move || {
                let mut line = String::new();
                std::io::BufReader::new(stdout).read_line(&mut line).map(|_| line)
            }),
        )
        .await
        .map_err(|_| {
            BenchError::Setup(format!(
                "the holder of {count} sessions to {server} did not report within {HOLD_OPEN_LIMIT:?}"
            ))
        })???;
        let seconds = line
            .strip_prefix("held ")
            .and_then(|rest| {
                let (n, secs) = rest.trim().split_once(' ')?;
                (n.parse::<usize>().ok()? == count).then_some(secs.parse::<f64>().ok()?)
            })
            .ok_or_else(|| {
                let status = holder.child.try_wait().ok().flatten();
                BenchError::Setup(format!(
                    "the holder of {count} sessions to {server} failed (said {:?}, exit {status:?})",
                    line.trim()
                ))
            })?;
        Ok((holder, Duration::from_secs_f64(seconds)))
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// A private redis-server.

/// A `redis-server` on a free loopback port, without persistence, in a temporary
/// directory; dropping it kills it and removes the directory.
struct Redis {
    process: ChildProcess,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    async fn start(cpus: Option<&str>) -> Result<Redis, BenchError> {
        let binary = redis_binary()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!(
            "signaling-bench-redis-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)?;
        let mut process = ChildProcess::start(&binary, cpus, |c| {
            c.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&dir)
                .args(["--daemonize", "no", "--logfile", ""])
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
        })?;
        process
            .wait_until(
                "answer PING",
                Duration::from_secs(10),
                async || match Resp::connect(port).await {
                    Ok(mut r) => {
                        matches!(r.cmd(&["PING"]).await, Ok(Value::Simple(s)) if s == "PONG")
                    }
                    Err(_) => false,
                },
            )
            .await?;
        Ok(Redis { process, port, dir })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        // The process is killed by its own drop; the directory holds nothing worth keeping.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `redis-server` on PATH, or the error that says to install it.
fn redis_binary() -> Result<PathBuf, BenchError> {
    find_on_path("redis-server").ok_or_else(|| {
        BenchError::Setup(
            "--nodes N (N ≥ 2) runs a private Redis, but redis-server is not on PATH \
             (install it, e.g. `apt-get install redis-server`)"
                .into(),
        )
    })
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A Redis reply (RESP2).
#[derive(Debug)]
#[allow(dead_code)] // errors and integers are parsed to be skipped, not read
enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Value>>),
}

/// A minimal Redis client for the bench's own look at Redis (PING, INFO, the probe).
struct Resp {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Resp {
    async fn connect(port: u16) -> Result<Resp, BenchError> {
        let stream =
            tokio::time::timeout(client::STEP, TcpStream::connect(("127.0.0.1", port))).await??;
        stream.set_nodelay(true)?;
        Ok(Resp {
            stream,
            buf: Vec::new(),
        })
    }

    async fn write(&mut self, args: &[&str]) -> Result<(), BenchError> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        tokio::time::timeout(client::STEP, self.stream.write_all(&out)).await??;
        Ok(())
    }

    async fn read(&mut self) -> Result<Value, BenchError> {
        let deadline = tokio::time::Instant::now() + client::STEP;
        for _ in 0..100_000 {
            if let Some((value, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return Ok(value);
            }
            let mut chunk = [0u8; 16384];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await??;
            if n == 0 {
                return Err(BenchError::Protocol("redis closed the connection".into()));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        Err(BenchError::Protocol("redis reply too long".into()))
    }

    async fn cmd(&mut self, args: &[&str]) -> Result<Value, BenchError> {
        self.write(args).await?;
        self.read().await
    }
}

/// One RESP2 value from the start of `buf` and the bytes it took, or `None` if incomplete.
fn parse(buf: &[u8]) -> Option<(Value, usize)> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[1..line_end]).ok()?;
    let rest = line_end + 2;
    match *buf.first()? {
        b'+' => Some((Value::Simple(line.to_owned()), rest)),
        b'-' => Some((Value::Error(line.to_owned()), rest)),
        b':' => Some((Value::Int(line.parse().ok()?), rest)),
        b'$' => {
            let len: i64 = line.parse().ok()?;
            if len < 0 {
                return Some((Value::Bulk(None), rest));
            }
            let end = rest + len as usize;
            (buf.len() >= end + 2).then(|| (Value::Bulk(Some(buf[rest..end].to_vec())), end + 2))
        }
        b'*' => {
            let len: i64 = line.parse().ok()?;
            if len < 0 {
                return Some((Value::Array(None), rest));
            }
            let mut at = rest;
            let mut items = Vec::with_capacity(len as usize);
            for _ in 0..len {
                let (v, used) = parse(&buf[at..])?;
                items.push(v);
                at += used;
            }
            Some((Value::Array(Some(items)), at))
        }
        _ => Some((Value::Error(format!("unparsable reply {line:?}")), rest)),
    }
}

/// Calls and microseconds inside Redis per command (`INFO commandstats`).
async fn commandstats(port: u16) -> Result<Vec<(String, u64, u64)>, BenchError> {
    let mut r = Resp::connect(port).await?;
    let Value::Bulk(Some(text)) = r.cmd(&["INFO", "commandstats"]).await? else {
        return Err(BenchError::Protocol(
            "INFO commandstats: unexpected reply".into(),
        ));
    };
    let text = String::from_utf8_lossy(&text);
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((name, fields)) = line
            .strip_prefix("cmdstat_")
            .and_then(|l| l.split_once(':'))
        else {
            continue;
        };
        let field = |key: &str| {
            fields
                .split(',')
                .find_map(|f| f.strip_prefix(key)?.strip_prefix('=')?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        out.push((name.to_owned(), field("calls"), field("usec")));
    }
    Ok(out)
}

/// Redis's own time per call of each command between two `INFO commandstats`.
fn commandstats_delta(before: &[(String, u64, u64)], after: &[(String, u64, u64)]) -> String {
    let mut parts = Vec::new();
    for (name, calls, usec) in after {
        let (c0, u0) = before
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, c, u)| (*c, *u))
            .unwrap_or((0, 0));
        let calls = calls - c0;
        if calls >= 100 {
            parts.push((
                calls,
                format!(
                    "{name} {calls} × {:.1} µs",
                    (usec - u0) as f64 / calls as f64
                ),
            ));
        }
    }
    parts.sort_by_key(|p| std::cmp::Reverse(p.0));
    parts
        .into_iter()
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join(", ")
}

/// From the bench, every 20 ms for `seconds`: `XADD` on one connection while another
/// waits in `XREAD BLOCK`; returns (XADD round trip, XADD sent → XREAD woken) in µs.
async fn probe(port: u16, seconds: u64) -> Result<Vec<(u64, u64)>, BenchError> {
    let mut reader = Resp::connect(port).await?;
    let mut writer = Resp::connect(port).await?;
    let mut out = Vec::new();
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..seconds * 50 {
        tick.tick().await;
        if Instant::now() >= end {
            break;
        }
        reader
            .write(&["XREAD", "BLOCK", "1000", "STREAMS", "bench:probe", "$"])
            .await?;
        // Let the XREAD reach Redis and block before the XADD is sent.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let sent = Instant::now();
        writer
            .cmd(&["XADD", "bench:probe", "MAXLEN", "~", "1000", "*", "t", "x"])
            .await?;
        let added = sent.elapsed();
        let woke = match reader.read().await? {
            Value::Array(Some(_)) => sent.elapsed(),
            // The XREAD timed out (it was not yet blocking when the XADD came): skip.
            _ => continue,
        };
        out.push((added.as_micros() as u64, woke.as_micros() as u64));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// /metrics of a node.

use crate::delivery::scrape;

/// The sum of the samples named `name` (any labels).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

// ---------------------------------------------------------------------------------------
// Phases.

struct Node {
    server: ServerProcess,
    metrics: SocketAddr,
}

/// The relay's load: `rate` candidates a second for `seconds`, `stagger`ed or not.
#[derive(Clone, Copy)]
struct Load {
    rate: u64,
    seconds: u64,
    stagger: bool,
}

/// One call phase: setup, then relay, with the CPU the servers (and Redis) and the bench
/// used during the relay.
struct CallPhase {
    setup: SetupResult,
    relay: RelayResult,
    server_cpu: f64,
    own_cpu: f64,
}

/// Waits until every callee `{tag}callee{i}`, i < m, is listed in Redis (presence key
/// `sb:user:<name>`), for at most 10 s; returns how many were not there at the first look,
/// right after their `welcome`. A server whose `welcome` waits for the presence write (commit 8614268 on)
/// passes at once; before it, a caller on another node that invited in between found
/// nobody and the call ended at once.
async fn wait_for_presence(port: u16, tag: &str, m: usize) -> Result<usize, BenchError> {
    let started = Instant::now();
    let mut r = Resp::connect(port).await?;
    let mut missing = 0;
    for i in 0..m {
        let key = format!("sb:user:{tag}callee{i}");
        for attempt in 0.. {
            if matches!(r.cmd(&["ZCARD", &key]).await?, Value::Int(n) if n > 0) {
                break;
            }
            if attempt == 0 {
                missing += 1;
            }
            if started.elapsed() > Duration::from_secs(10) {
                return Err(BenchError::Setup(format!(
                    "{key} did not appear in Redis within 10 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    Ok(missing)
}

async fn call_phase(
    servers: Vec<(SocketAddr, SocketAddr)>,
    first_index: usize,
    tag: &str,
    load: Load,
    cpu: &dyn Fn() -> Result<f64, BenchError>,
    presence: Option<u16>,
) -> Result<(CallPhase, usize), BenchError> {
    let Load {
        rate,
        seconds,
        stagger,
    } = load;
    let m = servers.len();
    let conns = calls::connect_across(servers, first_index, tag).await?;
    let registered = match presence {
        Some(port) => wait_for_presence(port, tag, m).await?,
        None => 0,
    };
    eprintln!(
        "signaling-bench: {} pairs connected ({registered} callees not yet in Redis after their welcome); setting up calls",
        conns.len()
    );
    let SetupResult {
        pairs,
        latencies_us,
        wall,
    } = calls::set_up_tagged(conns, tag).await?;
    let setup = SetupResult {
        pairs: Vec::new(),
        latencies_us,
        wall,
    };
    eprintln!("signaling-bench: calls set up; relaying");
    let cpu_before = cpu()?;
    let own_before = bench_support::own_cpu_seconds()?;
    let relay = calls::relay_paced(pairs, rate, seconds, stagger).await?;
    let server_cpu = cpu()? - cpu_before;
    let own_cpu = bench_support::own_cpu_seconds()? - own_before;
    Ok((
        CallPhase {
            setup,
            relay,
            server_cpu,
            own_cpu,
        },
        registered,
    ))
}

/// The spread of `total` over `n`: as even as can be, the first ones one more.
fn spread(total: usize, n: usize) -> Vec<usize> {
    (0..n)
        .map(|k| total / n + usize::from(k < total % n))
        .collect()
}

/// The node pairs a < b that cross-node calls go round.
fn node_pairs(n: usize) -> Vec<(usize, usize)> {
    (0..n)
        .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
        .collect()
}

pub async fn run(args: NodesArgs) -> Result<(), BenchError> {
    let cpus = args.server_cpus.as_deref();
    let n = args.nodes;
    let counts = spread(args.idle, n);
    let per_node = counts[0];
    let calls_m = args.calls;
    let load = Load {
        rate: args.rate,
        seconds: args.seconds,
        stagger: args.stagger,
    };
    // Before anything runs: without redis-server there is nothing to compare with.
    redis_binary()?;

    // 1. One node, no Redis, holding one node's share.
    eprintln!("signaling-bench: one node without Redis");
    let single = ServerProcess::start_node(&args.server, cpus, Vec::new()).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let single_rss_before = single.rss()?;
    let (single_holder, single_open) = if per_node > 0 {
        let (h, d) = Holder::start(single.addr, 0, per_node).await?;
        (Some(h), d)
    } else {
        (None, Duration::ZERO)
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let single_rss_idle = single.rss()?;
    let (single_phase, _) = call_phase(
        vec![(single.addr, single.addr); calls_m],
        0,
        "a",
        load,
        &|| single.cpu_seconds(),
        None,
    )
    .await?;
    let single_rss_end = single.rss()?;
    drop(single_holder);
    drop(single);

    // 2. N nodes sharing a private Redis.
    eprintln!("signaling-bench: {n} nodes and a private redis-server");
    let redis = Redis::start(cpus).await?;
    let mut nodes = Vec::with_capacity(n);
    for k in 0..n {
        // Free ports are found by binding port 0 and letting go, so another process (or
        // this node's other port) can take one before the node binds it: a node that
        // cannot listen is started again with new ports, three times at most.
        let mut attempt = 0;
        let (server, metrics) = loop {
            attempt += 1;
            let metrics_port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let metrics = SocketAddr::from(([127, 0, 0, 1], metrics_port));
            let extra = vec![
                "--redis-url".to_owned(),
                redis.url(),
                "--node-id".to_owned(),
                format!("node{k}"),
                "--metrics-listen".to_owned(),
                metrics.to_string(),
            ];
            match ServerProcess::start_node(&args.server, cpus, extra).await {
                Ok(server) => break (server, metrics),
                Err(e @ BenchError::Setup(_)) if attempt < 3 => {
                    eprintln!("signaling-bench: node{k} did not start ({e}); again");
                }
                Err(e) => return Err(e),
            }
        };
        nodes.push(Node { server, metrics });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = nodes
        .iter()
        .map(|node| node.server.rss())
        .collect::<Result<Vec<_>, _>>()?;
    let started = Instant::now();
    let mut first = 0;
    let mut holds = Vec::new();
    for (k, &count) in counts.iter().enumerate() {
        if count > 0 {
            holds.push(Holder::start(nodes[k].server.addr, first, count));
        }
        first += count;
    }
    let holders = try_join_all(holds).await?;
    let cluster_open = started.elapsed();
    eprintln!(
        "signaling-bench: {n} nodes hold {} idle sessions",
        args.idle
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = nodes
        .iter()
        .map(|node| node.server.rss())
        .collect::<Result<Vec<_>, _>>()?;
    let cluster_cpu = || -> Result<f64, BenchError> {
        let mut total = redis.process.cpu_seconds()?;
        for node in &nodes {
            total += node.server.cpu_seconds()?;
        }
        Ok(total)
    };

    // 2a. Both parties on node 0.
    eprintln!("signaling-bench: {n} nodes, calls on node0");
    let node0 = nodes[0].server.addr;
    let (same_phase, same_presence) = call_phase(
        vec![(node0, node0); calls_m],
        2 * calls_m,
        "b",
        load,
        &cluster_cpu,
        Some(redis.port),
    )
    .await?;
    // Let the closed sessions leave (their unregistrations go through Redis).
    tokio::time::sleep(Duration::from_secs(1)).await;

    // 2b. Caller and callee on different nodes.
    eprintln!("signaling-bench: {n} nodes, calls across nodes");
    let pairs = node_pairs(n);
    let across: Vec<_> = (0..calls_m)
        .map(|i| {
            let (a, b) = pairs[i % pairs.len()];
            (nodes[a].server.addr, nodes[b].server.addr)
        })
        .collect();
    let mut scrape_before = Vec::new();
    for node in &nodes {
        scrape_before.push(scrape(node.metrics).await?);
    }
    let stats_before = commandstats(redis.port).await?;
    let redis_cpu_before = redis.process.cpu_seconds()?;
    let (cross_phase, probed) = tokio::join!(
        call_phase(
            across,
            4 * calls_m,
            "c",
            load,
            &cluster_cpu,
            Some(redis.port)
        ),
        probe(redis.port, args.seconds)
    );
    let (cross_phase, cross_presence) = cross_phase?;
    let probed = probed?;
    let redis_cpu = redis.process.cpu_seconds()? - redis_cpu_before;
    let stats_after = commandstats(redis.port).await?;
    let mut scrape_after = Vec::new();
    for node in &nodes {
        scrape_after.push(scrape(node.metrics).await?);
    }
    let rss_end = nodes
        .iter()
        .map(|node| node.server.rss())
        .collect::<Result<Vec<_>, _>>()?;
    drop(holders);

    // The table.
    println!(
        "command: `signaling-bench --nodes {n} --idle {} --calls {} --rate {} --seconds {}{}`\n",
        args.idle,
        args.calls,
        args.rate,
        args.seconds,
        crate::load_flags(args.server_cpus.as_deref(), args.stagger)
    );
    println!(
        "Servers{}: one node = a separate server without Redis; node0…node{} share a private \
         redis-server{}.\n",
        cpus.map(|c| format!(" pinned to CPU {c}"))
            .unwrap_or_default(),
        n - 1,
        if cpus.is_some() {
            " (pinned likewise)"
        } else {
            ""
        }
    );
    let per_session = |before: u64, idle: u64, count: usize| {
        idle.saturating_sub(before)
            .checked_div(count as u64)
            .unwrap_or(0)
    };
    let node_list = |f: &dyn Fn(usize) -> String| {
        (0..n)
            .map(|k| format!("node{k} {}", f(k)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "| measure | one node (no Redis) | {n} nodes, both parties on node0 | {n} nodes, caller and callee on different nodes |"
    );
    println!("|---|---|---|---|");
    let total: usize = counts.iter().sum();
    println!(
        "| idle sessions held | {per_node} (opened in {:.1} s) | {total} = {} (opened in {:.1} s) | (same) |",
        single_open.as_secs_f64(),
        counts
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" + "),
        cluster_open.as_secs_f64()
    );
    println!(
        "| server RSS before / with idle sessions | {:.1} / {:.1} MiB | {} | (same) |",
        mib(single_rss_before),
        mib(single_rss_idle),
        node_list(&|k| format!("{:.1} / {:.1} MiB", mib(rss_before[k]), mib(rss_idle[k])))
    );
    println!(
        "| RSS per idle session | {} bytes | {} | (same) |",
        per_session(single_rss_before, single_rss_idle, per_node),
        node_list(&|k| format!(
            "{} bytes",
            per_session(rss_before[k], rss_idle[k], counts[k])
        ))
    );
    let phases = [&single_phase, &same_phase, &cross_phase];
    let row = |name: &str, f: &dyn Fn(&CallPhase) -> String| {
        let cells: Vec<String> = phases.iter().map(|p| f(p)).collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    row("calls set up (concurrent)", &|p| {
        format!(
            "{} in {:.3} s = {:.0} calls/s",
            calls_m,
            p.setup.wall.as_secs_f64(),
            calls_m as f64 / p.setup.wall.as_secs_f64()
        )
    });
    row("call setup latency p50 / p99", &|p| {
        let mut l = p.setup.latencies_us.clone();
        l.sort_unstable();
        format!("{} / {}", ms(percentile(&l, 0.5)), ms(percentile(&l, 0.99)))
    });
    row("relayed candidates", &|p| {
        let r = &p.relay;
        format!(
            "{} sent, {} received ({} lost) in {:.1} s = {:.0} msg/s",
            r.sent,
            r.received,
            r.sent - r.received.min(r.sent),
            r.wall.as_secs_f64(),
            r.received as f64 / r.wall.as_secs_f64()
        )
    });
    row("**relay latency p50 / p99 / max**", &|p| {
        let mut l = p.relay.latencies_us.clone();
        l.sort_unstable();
        format!(
            "**{} / {} / {}**",
            ms(percentile(&l, 0.5)),
            ms(percentile(&l, 0.99)),
            ms(l.last().copied().unwrap_or(0))
        )
    });
    row("server CPU during the relay phase (nodes + Redis)", &|p| {
        format!(
            "{:.2} s ({:.0}% of one core)",
            p.server_cpu,
            100.0 * p.server_cpu / p.relay.wall.as_secs_f64()
        )
    });
    row("load generator CPU during the relay phase", &|p| {
        format!(
            "{:.2} s ({:.0}% of one core)",
            p.own_cpu,
            100.0 * p.own_cpu / p.relay.wall.as_secs_f64()
        )
    });
    println!(
        "| callees not yet listed in Redis right after their `welcome` (the bench waits for them before inviting) | — | {same_presence} of {calls_m} | {cross_presence} of {calls_m} |"
    );
    println!(
        "| server RSS at the end | {:.1} MiB | {} | (same) |",
        mib(single_rss_end),
        node_list(&|k| format!("{:.1} MiB", mib(rss_end[k])))
    );

    // Where the cross-node time goes.
    let wall = cross_phase.relay.wall.as_secs_f64();
    println!("\nCross-node relay phase, where the time goes:\n");
    println!("| measure | value |\n|---|---|");
    println!(
        "| Redis CPU | {redis_cpu:.2} s ({:.0}% of one core) |",
        100.0 * redis_cpu / wall
    );
    println!(
        "| inside Redis (INFO commandstats) | {} |",
        commandstats_delta(&stats_before, &stats_after)
    );
    for (k, (b, a)) in scrape_before.iter().zip(&scrape_after).enumerate() {
        let d = |name: &str| metric(a, name) - metric(b, name);
        let sent = d("signaling_cluster_messages_sent_total");
        let received = d("signaling_cluster_messages_received_total");
        let rt_n = d("signaling_cluster_redis_roundtrip_seconds_count");
        let rt_s = d("signaling_cluster_redis_roundtrip_seconds_sum");
        let le1ms = d_bucket(b, a, "0.001");
        println!(
            "| node{k}: node messages sent / received; Redis round trips (as the node times them) | {sent:.0} / {received:.0}; {rt_n:.0} round trips, mean {:.0} µs, {:.1}% within 1 ms; {:.2} s in all = {:.0}% of the phase |",
            if rt_n > 0.0 { 1e6 * rt_s / rt_n } else { 0.0 },
            if rt_n > 0.0 {
                100.0 * le1ms / rt_n
            } else {
                0.0
            },
            rt_s,
            100.0 * rt_s / wall
        );
    }
    let mut added: Vec<u64> = probed.iter().map(|p| p.0).collect();
    let mut woke: Vec<u64> = probed.iter().map(|p| p.1).collect();
    added.sort_unstable();
    woke.sort_unstable();
    println!(
        "| probe from the bench ({} samples): XADD round trip p50 / p99 | {} / {} |",
        probed.len(),
        ms(percentile(&added, 0.5)),
        ms(percentile(&added, 0.99))
    );
    println!(
        "| probe: XADD sent → blocked XREAD woken, p50 / p99 / max | {} / {} / {} |",
        ms(percentile(&woke, 0.5)),
        ms(percentile(&woke, 0.99)),
        ms(woke.last().copied().unwrap_or(0))
    );

    drop(nodes);
    drop(redis);
    let lost: u64 = phases
        .iter()
        .map(|p| p.relay.sent - p.relay.received.min(p.relay.sent))
        .sum();
    if lost > 0 {
        return Err(BenchError::Protocol(format!("{lost} messages lost")));
    }
    Ok(())
}

/// The increase of the round-trip histogram's bucket `le` between two scrapes.
fn d_bucket(before: &str, after: &str, le: &str) -> f64 {
    let bucket = |text: &str| {
        text.lines()
            .filter(|l| {
                l.starts_with("signaling_cluster_redis_roundtrip_seconds_bucket{")
                    && l.contains(&format!("le=\"{le}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    bucket(after) - bucket(before)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_spread_evenly_and_calls_go_round_the_node_pairs() {
        assert_eq!(spread(18_000, 2), vec![9_000, 9_000]);
        assert_eq!(spread(10, 3), vec![4, 3, 3]);
        assert_eq!(node_pairs(2), vec![(0, 1)]);
        assert_eq!(node_pairs(3), vec![(0, 1), (0, 2), (1, 2)]);
    }

    #[test]
    fn resp_replies_parse_only_when_complete() {
        assert!(matches!(parse(b"+PONG\r\n"), Some((Value::Simple(s), 7)) if s == "PONG"));
        assert!(parse(b"$5\r\nhel").is_none());
        assert!(
            matches!(parse(b"*1\r\n$2\r\nok\r\n"), Some((Value::Array(Some(v)), 12)) if v.len() == 1)
        );
        assert!(matches!(parse(b"*-1\r\n"), Some((Value::Array(None), 5))));
        assert!(matches!(parse(b":3\r\n"), Some((Value::Int(3), 4))));
    }

    #[test]
    fn metrics_are_summed_over_labels() {
        let text = "# HELP x\nfoo_total{node=\"a\"} 2\nfoo_total{node=\"b\"} 3\nfoo_total_more 9\n";
        assert_eq!(metric(text, "foo_total"), 5.0);
    }
}
