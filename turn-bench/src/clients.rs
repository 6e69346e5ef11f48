//! Many clients at once: each its own UDP socket (its own 5-tuple), allocated on the server
//! and bound by channel to a sink, set up [`IN_FLIGHT`] at a time.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinSet;

use bench_support::BenchError;

use crate::sink::Sinks;
use crate::turn_client::{self, SharedNonce};

/// Allocations being set up at the same time.
const IN_FLIGHT: usize = 64;
/// How long a send may block (a full socket buffer) before its thread looks at `stop`.
const WRITE_TIMEOUT: Duration = Duration::from_millis(100);

/// The sockets of `count` clients of `server`, client `i` bound to sink `i`, ready to send
/// ChannelData (blocking; a send times out after 100 ms). The first one is set up alone,
/// so that the others start from its nonce instead of all asking for one.
pub async fn allocate(
    server: SocketAddr,
    sinks: &Sinks,
    count: usize,
) -> Result<Vec<std::net::UdpSocket>, BenchError> {
    let nonce = SharedNonce::default();
    let mut clients = Vec::with_capacity(count);
    let mut pending = JoinSet::new();
    for i in 0..count {
        pending.spawn(one(server, sinks.addr(i), nonce.clone()));
        let limit = if i == 0 { 1 } else { IN_FLIGHT };
        while pending.len() >= limit {
            let Some(done) = pending.join_next().await else {
                break;
            };
            clients.push(done??);
        }
    }
    while let Some(client) = pending.join_next().await {
        clients.push(client??);
    }
    Ok(clients)
}

async fn one(
    server: SocketAddr,
    sink: SocketAddr,
    nonce: SharedNonce,
) -> Result<std::net::UdpSocket, BenchError> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    turn_client::allocate_and_bind(&socket, server, sink, &nonce).await?;
    let socket = socket.into_std()?;
    socket.set_nonblocking(false)?;
    socket.set_write_timeout(Some(WRITE_TIMEOUT))?;
    Ok(socket)
}
