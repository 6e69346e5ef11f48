//! Memory per allocation: the server's resident memory before and after `count` UDP
//! allocations, each with a channel (and so a permission) to a sink and a few packets
//! relayed through it.

use std::time::Duration;

use bench_support::BenchError;

use crate::clients;
use crate::servers::Server;
use crate::sink::Sinks;
use crate::turn_client;

/// ChannelData packets each allocation relays before the second reading.
const WARM_PACKETS: usize = 5;
/// Payload of those packets.
const WARM_PAYLOAD: usize = 100;
/// Clients that send their packets before the sender pauses a millisecond, so that the
/// server's receive buffer is not flooded.
const WARM_BURST: usize = 100;
/// Quiet time before each reading.
const SETTLE: Duration = Duration::from_secs(1);
/// Sink sockets; clients are spread over them.
const SINKS: usize = 2;

pub struct Row {
    pub rss_before: u64,
    pub rss_after: u64,
}

impl Row {
    /// Growth per allocation, bytes (negative if the server shrank).
    pub fn per_allocation(&self, count: usize) -> f64 {
        (self.rss_after as f64 - self.rss_before as f64) / count.max(1) as f64
    }
}

/// Reads the fresh `server`'s memory, sets up `count` allocations, relays a few packets on
/// each, waits for the server to settle and reads its memory again.
pub async fn run(server: &Server, count: usize) -> Result<Row, BenchError> {
    let sinks = Sinks::start(SINKS, None, false)?;
    tokio::time::sleep(SETTLE).await;
    let rss_before = server.rss_bytes()?;
    let clients = clients::allocate(server.addr, &sinks, count).await?;
    let frame = turn_client::channel_data(WARM_PAYLOAD);
    for burst in clients.chunks(WARM_BURST) {
        for socket in burst {
            for _ in 0..WARM_PACKETS {
                socket.send_to(&frame, server.addr)?;
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(SETTLE).await;
    let rss_after = server.rss_bytes()?;
    let relayed = sinks.received();
    sinks.stop();
    let expected = (count * WARM_PACKETS) as u64;
    if relayed < expected * 9 / 10 {
        return Err(BenchError::Protocol(format!(
            "only {relayed} of {expected} warm-up packets were relayed"
        )));
    }
    drop(clients);
    Ok(Row {
        rss_before,
        rss_after,
    })
}
