//! The peers: sink sockets on 127.0.0.2, each read by an OS thread of its own with
//! `recvmmsg`, counting what the relay delivers and, for stamped payloads, its one-way latency.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bench_support::BenchError;

use crate::mmsg::{self, RecvBatch};

/// Receive buffer of each sink: bursts must not be lost at the sink itself.
const SINK_BUFFER: usize = 16 * 1024 * 1024;
/// How long a sink blocks in a read before it looks at the stop flag again.
const READ_TIMEOUT: Duration = Duration::from_millis(100);

/// Payloads that start with their send time: nanoseconds since `epoch`, 8 bytes big-endian.
/// Only those sent inside the measured window (set once the clients are ready) count.
#[derive(Clone)]
pub struct Stamps {
    pub epoch: Instant,
    pub window: Arc<OnceLock<Window>>,
}

/// The measured interval, in nanoseconds since [`Stamps::epoch`]: `from` ≤ t < `to`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub from: u64,
    pub to: u64,
}

impl Window {
    pub fn contains(&self, ns: u64) -> bool {
        (self.from..self.to).contains(&ns)
    }
}

impl Stamps {
    /// Nanoseconds since the epoch, now.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// Sink sockets and their reading threads; stopped by [`Sinks::stop`].
pub struct Sinks {
    addrs: Vec<SocketAddr>,
    threads: Vec<JoinHandle<Vec<u64>>>,
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Sinks {
    /// `count` sinks. Without `stamps` each counts every datagram; with them, only the
    /// datagrams stamped inside the window, and it keeps their latencies. With `gro` (not
    /// with `stamps`), they take a GSO run whole ([`mmsg::enable_gro`]) and count its
    /// datagrams.
    pub fn start(count: usize, stamps: Option<Stamps>, gro: bool) -> Result<Sinks, BenchError> {
        if gro && stamps.is_some() {
            return Err(BenchError::Setup(
                "sinks that take GSO runs whole do not read stamps".into(),
            ));
        }
        let (received, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (mut addrs, mut threads) = (Vec::new(), Vec::new());
        for _ in 0..count.max(1) {
            let socket = bind_sink()?;
            if gro {
                mmsg::enable_gro(&socket)?;
            }
            addrs.push(socket.local_addr()?);
            let (received, stop, stamps) = (received.clone(), stop.clone(), stamps.clone());
            threads.push(std::thread::spawn(move || {
                read(&socket, &received, &stop, stamps.as_ref(), gro)
            }));
        }
        Ok(Sinks {
            addrs,
            threads,
            received,
            stop,
        })
    }

    /// The sink for client `i` (clients are spread over the sinks in turn).
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.addrs[i % self.addrs.len()]
    }

    /// Whether `addr` is one of the sinks.
    pub fn owns(&self, addr: SocketAddr) -> bool {
        self.addrs.contains(&addr)
    }

    /// Datagrams counted so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Stops the readers (each notices within its 100 ms read timeout) and returns the
    /// one-way latencies they kept, in nanoseconds, unsorted.
    pub fn stop(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let mut latencies = Vec::new();
        for t in self.threads {
            latencies.extend(t.join().unwrap_or_default());
        }
        latencies
    }
}

fn bind_sink() -> Result<UdpSocket, BenchError> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    s.set_recv_buffer_size(SINK_BUFFER)?;
    s.bind(&SocketAddr::from(([127, 0, 0, 2], 0)).into())?;
    let socket: UdpSocket = s.into();
    socket.set_read_timeout(Some(READ_TIMEOUT))?;
    Ok(socket)
}

/// A sink's loop, until `stop`: batches of datagrams, counted (and timed, with `stamps`).
fn read(
    socket: &UdpSocket,
    received: &AtomicU64,
    stop: &AtomicBool,
    stamps: Option<&Stamps>,
    gro: bool,
) -> Vec<u64> {
    let mut batch = if gro {
        RecvBatch::gro()
    } else {
        RecvBatch::new()
    };
    let mut latencies = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let Ok(n) = batch.recv(socket) else { continue };
        let Some(stamps) = stamps else {
            let datagrams: usize = (0..n).map(|i| batch.segments(i)).sum();
            received.fetch_add(datagrams as u64, Ordering::Relaxed);
            continue;
        };
        // One clock read per batch: the time the application gets these datagrams.
        let (now, Some(window)) = (stamps.now_ns(), stamps.window.get()) else {
            continue;
        };
        let mut counted = 0;
        for i in 0..n {
            let Some(sent) = stamp(batch.datagram(i)) else {
                continue;
            };
            if window.contains(sent) {
                latencies.push(now.saturating_sub(sent));
                counted += 1;
            }
        }
        received.fetch_add(counted, Ordering::Relaxed);
    }
    latencies
}

/// The send time at the start of a payload.
fn stamp(payload: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(payload.get(..8)?.try_into().ok()?))
}
