//! One row of the table: `allocations` clients each flood ChannelData of `payload` bytes
//! through the relay to sink sockets on 127.0.0.2, which count what arrives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use bench_support::BenchError;

use crate::servers::Server;
use crate::turn_client::{self, CHANNEL};

/// Sink sockets (and receiving tasks) at most; clients are spread over them.
const SINKS: usize = 4;
/// Receive buffer of each sink: bursts must not be lost at the sink itself.
const SINK_BUFFER: usize = 16 * 1024 * 1024;

pub struct Row {
    pub sent_pps: f64,
    pub relayed_pps: f64,
    pub mbps: f64,
    pub loss: f64,
    /// Server CPU use over the measured interval, in cores (1.0 = one core busy).
    pub server_cores: f64,
}

/// A sink socket read by its own OS thread (blocking reads), so that a core saturated by
/// sender tasks still leaves the sinks their share of CPU time.
fn spawn_sink(
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Result<(SocketAddr, std::thread::JoinHandle<()>), BenchError> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    s.set_recv_buffer_size(SINK_BUFFER)?;
    s.bind(&SocketAddr::from(([127, 0, 0, 2], 0)).into())?;
    let socket: std::net::UdpSocket = s.into();
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let addr = socket.local_addr()?;
    let thread = std::thread::spawn(move || {
        let mut buf = vec![0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            if socket.recv_from(&mut buf).is_ok() {
                received.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    Ok((addr, thread))
}

pub async fn run(
    server: &Server,
    allocations: usize,
    payload: usize,
    seconds: f64,
) -> Result<Row, BenchError> {
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, received) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (mut sinks, mut threads, mut tasks) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..SINKS.min(allocations) {
        let (addr, thread) = spawn_sink(received.clone(), stop.clone())?;
        sinks.push(addr);
        threads.push(thread);
    }
    let mut clients = Vec::new();
    for i in 0..allocations {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        turn_client::allocate_and_bind(&socket, server.addr, sinks[i % sinks.len()]).await?;
        clients.push(socket);
    }
    let mut frame = vec![0u8; 4 + payload];
    frame[..2].copy_from_slice(&CHANNEL.to_be_bytes());
    frame[2..4].copy_from_slice(&(payload as u16).to_be_bytes());
    let frame: Arc<[u8]> = frame.into();
    for socket in clients {
        let (sent, stop, frame, to) = (sent.clone(), stop.clone(), frame.clone(), server.addr);
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                // Yield now and then so sinks and other senders get their turn.
                for _ in 0..32 {
                    if socket.send_to(&frame, to).await.is_ok() {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    // Warm up, then measure over `seconds`.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (s0, r0, c0, t0) = (
        sent.load(Ordering::Relaxed),
        received.load(Ordering::Relaxed),
        server.cpu_seconds()?,
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let (s1, r1, c1, elapsed) = (
        sent.load(Ordering::Relaxed),
        received.load(Ordering::Relaxed),
        server.cpu_seconds()?,
        t0.elapsed().as_secs_f64(),
    );
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    for t in threads {
        // Each sink notices `stop` within its 100 ms read timeout.
        let _ = t.join();
    }
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
    })
}
