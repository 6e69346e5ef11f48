//! One row of the flood table: `allocations` clients send ChannelData of `payload` bytes
//! through the relay to sink sockets on 127.0.0.2, which count what arrives.
//!
//! The clients are spread over generator OS threads; each sends [`BATCH`] copies of its
//! datagram per client socket per `sendmmsg` call, as fast as it can (open loop) or paced
//! to a total rate in 1 ms ticks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bench_support::BenchError;

use crate::clients;
use crate::drops;
use crate::mmsg::{self, BATCH};
use crate::servers::Server;
use crate::sink::Sinks;
use crate::turn_client;

/// Sink sockets (and reading threads) at most; clients are spread over them.
const SINKS: usize = 2;
/// The pacing tick of a rated generator thread.
const TICK: Duration = Duration::from_millis(1);
/// A rated thread that fell behind makes up at most this much time at once.
const MAX_CATCH_UP: Duration = Duration::from_millis(10);

pub struct Row {
    pub sent_pps: f64,
    pub relayed_pps: f64,
    pub mbps: f64,
    pub loss: f64,
    /// Server CPU use over the measured interval, in cores (1.0 = one core busy).
    pub server_cores: f64,
    /// Of the loss: datagrams the kernel dropped at the server's full sockets, and at the
    /// sinks' (the bench's own, whose readers share the generator's core).
    pub dropped_at_server: u64,
    pub dropped_at_sinks: u64,
}

/// How the generator sends.
#[derive(Debug, Clone, Copy)]
pub struct Generator {
    /// OS threads the clients are spread over.
    pub threads: usize,
    /// Total packets a second over all clients; `None`: as fast as possible.
    pub rate: Option<u64>,
    /// The sinks take GSO runs whole (`--sink-gro`).
    pub sink_gro: bool,
    /// Each client's burst leaves as one GSO run (`--client-gso`).
    pub client_gso: bool,
}

/// How a generator thread puts a burst of copies of the frame on a client socket.
struct Burst {
    frame: Arc<[u8]>,
    /// With `--client-gso`: [`BATCH`] copies of the frame one after the other.
    copies: Option<Vec<u8>>,
}

impl Burst {
    fn send(&self, socket: &std::net::UdpSocket, count: usize) -> std::io::Result<usize> {
        match &self.copies {
            None => mmsg::send_copies(socket, &self.frame, count),
            Some(copies) => mmsg::send_run(socket, copies, self.frame.len(), count),
        }
    }
}

pub async fn run(
    server: &Server,
    allocations: usize,
    payload: usize,
    seconds: f64,
    generator: Generator,
) -> Result<Row, BenchError> {
    let sinks = Sinks::start(SINKS.min(allocations), None, generator.sink_gro)?;
    let clients = clients::allocate(server.addr, &sinks, allocations).await?;
    let frame: Arc<[u8]> = turn_client::channel_data(payload).into();
    let (sent, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let threads = spawn_threads(clients, server, &frame, generator, &sent, &stop)?;
    // Warm up, then measure over `seconds`.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let drops = || -> Result<(u64, u64), BenchError> {
        Ok((
            drops::udp_drops(|a| server.owns(a))?,
            drops::udp_drops(|a| sinks.owns(a))?,
        ))
    };
    let (d0, s0, r0, c0, t0) = (
        drops()?,
        sent.load(Ordering::Relaxed),
        sinks.received(),
        server.cpu_seconds()?,
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let (s1, r1, c1, elapsed, d1) = (
        sent.load(Ordering::Relaxed),
        sinks.received(),
        server.cpu_seconds()?,
        t0.elapsed().as_secs_f64(),
        drops()?,
    );
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        // Each thread notices `stop` within a tick or a write timeout.
        let _ = t.join();
    }
    sinks.stop();
    let (sent_n, recv_n) = ((s1 - s0) as f64, (r1 - r0) as f64);
    Ok(Row {
        sent_pps: sent_n / elapsed,
        relayed_pps: recv_n / elapsed,
        mbps: recv_n * payload as f64 * 8.0 / elapsed / 1e6,
        loss: if sent_n > 0.0 {
            (1.0 - recv_n / sent_n).max(0.0)
        } else {
            0.0
        },
        server_cores: (c1 - c0) / elapsed,
        dropped_at_server: d1.0 - d0.0,
        dropped_at_sinks: d1.1 - d0.1,
    })
}

/// Deals the clients out to the generator threads in turn, connects their sockets to the
/// server, and starts the threads.
fn spawn_threads(
    clients: Vec<std::net::UdpSocket>,
    server: &Server,
    frame: &Arc<[u8]>,
    generator: Generator,
    sent: &Arc<AtomicU64>,
    stop: &Arc<AtomicBool>,
) -> Result<Vec<JoinHandle<()>>, BenchError> {
    let threads = generator.threads.clamp(1, clients.len().max(1));
    let mut shares: Vec<Vec<std::net::UdpSocket>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, socket) in clients.into_iter().enumerate() {
        socket.connect(server.addr)?;
        if generator.client_gso {
            mmsg::set_gso_segment(&socket, frame.len())?;
        }
        shares[i % threads].push(socket);
    }
    let rate = generator.rate.map(|r| r as f64 / threads as f64);
    Ok(shares
        .into_iter()
        .map(|sockets| {
            let burst = Burst {
                frame: frame.clone(),
                copies: generator.client_gso.then(|| frame.repeat(BATCH)),
            };
            let (sent, stop) = (sent.clone(), stop.clone());
            std::thread::spawn(move || match rate {
                None => open_loop(&sockets, &burst, &sent, &stop),
                Some(rate) => paced(&sockets, &burst, rate, &sent, &stop),
            })
        })
        .collect())
}

/// As fast as the thread can: a full batch on each socket in turn.
fn open_loop(sockets: &[std::net::UdpSocket], burst: &Burst, sent: &AtomicU64, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        for socket in sockets {
            if let Ok(n) = burst.send(socket, BATCH) {
                sent.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
}

/// `rate` packets a second: each 1 ms tick, what is due since the start, in batches on the
/// sockets in turn. A thread that falls behind drops what is more than 10 ms late.
fn paced(
    sockets: &[std::net::UdpSocket],
    burst: &Burst,
    rate: f64,
    sent: &AtomicU64,
    stop: &AtomicBool,
) {
    let start = Instant::now();
    let max_owed = (rate * MAX_CATCH_UP.as_secs_f64()).max(1.0) as u64;
    let (mut done, mut next) = (0u64, 0usize);
    while !stop.load(Ordering::Relaxed) {
        let due = (rate * start.elapsed().as_secs_f64()) as u64;
        done = done.max(due.saturating_sub(max_owed));
        while done < due {
            let count = ((due - done) as usize).min(BATCH);
            if let Ok(n) = burst.send(&sockets[next], count) {
                sent.fetch_add(n as u64, Ordering::Relaxed);
            }
            done += count as u64;
            next = (next + 1) % sockets.len();
        }
        std::thread::sleep(TICK);
    }
}
