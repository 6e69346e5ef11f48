//! The realistic row: many audio-like allocations, each sending small packets at a steady
//! rate (by default 1,000 × 50 packets/s × 200 B), each on its own phase so that the load is
//! even in time. Every payload starts with its send time; the sinks measure one-way latency.
//!
//! Without a server the same clients send their payloads straight to the sinks: the floor
//! that the bench itself (its threads, the loopback, the scheduler) puts under the latency.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bench_support::BenchError;

use crate::clients;
use crate::servers::Server;
use crate::sink::{Sinks, Stamps, Window};
use crate::turn_client;

/// Sink sockets (and reading threads); clients are spread over them.
const SINKS: usize = 2;
/// Traffic before the measured window.
const WARM_UP: Duration = Duration::from_millis(500);
/// Time after the window for what was sent in it to arrive.
const DRAIN: Duration = Duration::from_millis(300);

/// The audio load: `allocations` clients, each `pps` packets a second of `size` bytes.
#[derive(Debug, Clone, Copy)]
pub struct Audio {
    pub allocations: usize,
    pub pps: u32,
    pub size: usize,
    pub threads: usize,
}

pub struct Row {
    pub relayed_pps: f64,
    pub loss: f64,
    /// `None` without a server.
    pub server_cores: Option<f64>,
    /// One-way latency percentiles p50, p99, p99.9, microseconds.
    pub latency_us: [f64; 3],
}

/// The audio load through `server` (ChannelData), or without one straight to the sinks.
pub async fn run(server: Option<&Server>, audio: Audio, seconds: f64) -> Result<Row, BenchError> {
    let stamps = Stamps {
        epoch: Instant::now(),
        window: Arc::new(OnceLock::new()),
    };
    let sinks = Sinks::start(SINKS, Some(stamps.clone()), false)?;
    let clients = match server {
        Some(server) => clients::allocate(server.addr, &sinks, audio.allocations)
            .await?
            .into_iter()
            .map(|socket| (socket, server.addr))
            .collect(),
        None => direct_clients(&sinks, audio.allocations)?,
    };
    let cpu = || server.map(|s| s.cpu_seconds()).transpose();
    let start = stamps.now_ns();
    let from = start + WARM_UP.as_nanos() as u64;
    let window = Window {
        from,
        to: from + Duration::from_secs_f64(seconds).as_nanos() as u64,
    };
    let _ = stamps.window.set(window);
    let (sent, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let framing = if server.is_some() { 0 } else { 4 };
    let threads = spawn_threads(clients, framing, audio, &stamps, start, &sent, &stop);
    let at = |ns: u64| stamps.epoch + Duration::from_nanos(ns);
    tokio::time::sleep_until(at(window.from).into()).await;
    let c0 = cpu()?;
    tokio::time::sleep_until(at(window.to).into()).await;
    let c1 = cpu()?;
    tokio::time::sleep(DRAIN).await;
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let received = sinks.received() as f64;
    let mut latencies = sinks.stop();
    latencies.sort_unstable();
    let sent = sent.load(Ordering::Relaxed) as f64;
    Ok(Row {
        relayed_pps: received / seconds,
        loss: if sent > 0.0 {
            (1.0 - received / sent).max(0.0)
        } else {
            0.0
        },
        server_cores: c0.zip(c1).map(|(c0, c1)| (c1 - c0) / seconds),
        latency_us: [0.5, 0.99, 0.999].map(|q| percentile(&latencies, q) / 1e3),
    })
}

/// The `q` quantile of sorted `values` (nearest rank); NaN when there are none.
fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64
}

/// Client sockets that send straight to sink `i`, no relay between.
fn direct_clients(sinks: &Sinks, count: usize) -> Result<Vec<(UdpSocket, SocketAddr)>, BenchError> {
    (0..count)
        .map(|i| {
            let socket = UdpSocket::bind("127.0.0.1:0")?;
            socket.set_write_timeout(Some(Duration::from_millis(100)))?;
            Ok((socket, sinks.addr(i)))
        })
        .collect()
}

/// Deals the sockets (each with where it sends) out to the generator threads in turn;
/// socket `i` of `n` sends at phase `i / n` of the packet interval. `framing` bytes of the
/// ChannelData frame are left out (4: payload only).
fn spawn_threads(
    sockets: Vec<(UdpSocket, SocketAddr)>,
    framing: usize,
    audio: Audio,
    stamps: &Stamps,
    start: u64,
    sent: &Arc<AtomicU64>,
    stop: &Arc<AtomicBool>,
) -> Vec<JoinHandle<()>> {
    let interval = 1_000_000_000 / u64::from(audio.pps.max(1));
    let count = sockets.len().max(1) as u64;
    let threads = audio.threads.clamp(1, sockets.len().max(1));
    let mut shares: Vec<Vec<Scheduled>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, (socket, to)) in sockets.into_iter().enumerate() {
        let phase = interval * i as u64 / count;
        shares[i % threads].push(Scheduled { phase, socket, to });
    }
    shares
        .into_iter()
        .map(|share| {
            let (stamps, sent, stop) = (stamps.clone(), sent.clone(), stop.clone());
            let sender = Sender {
                framing,
                size: audio.size,
                interval,
                start,
            };
            std::thread::spawn(move || sender.run(&share, &stamps, &sent, &stop))
        })
        .collect()
}

/// A client socket, where it sends, and when in each interval (ns after its start).
struct Scheduled {
    phase: u64,
    socket: UdpSocket,
    to: SocketAddr,
}

/// One generator thread's schedule: its sockets in phase order, each once per interval.
struct Sender {
    /// Leading bytes of the ChannelData frame not sent (0, or 4: the payload only).
    framing: usize,
    size: usize,
    interval: u64,
    start: u64,
}

impl Sender {
    /// Sends each packet when due (sleeping until then), stamped with the time of its
    /// `send_to`; counts those stamped inside the window that the kernel took.
    fn run(&self, share: &[Scheduled], stamps: &Stamps, sent: &AtomicU64, stop: &AtomicBool) {
        let mut frame = turn_client::channel_data(self.size);
        let Some(window) = stamps.window.get().copied() else {
            return;
        };
        let mut k = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let client = &share[k % share.len()];
            let due = self.start + client.phase + (k / share.len()) as u64 * self.interval;
            let now = stamps.now_ns();
            if due > now {
                // Bounded: at most one interval (20 ms at 50 packets/s).
                std::thread::sleep(Duration::from_nanos(due - now));
            }
            let at = stamps.now_ns();
            frame[4..12].copy_from_slice(&at.to_be_bytes());
            let sent_ok = client
                .socket
                .send_to(&frame[self.framing..], client.to)
                .is_ok();
            if sent_ok && window.contains(at) {
                sent.fetch_add(1, Ordering::Relaxed);
            }
            k += 1;
        }
    }
}
