//! A lean protocol client: one WebSocket from a chosen loopback source address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use signaling_protocol::{ClientMessage, Hello, ServerMessage, parse_server_message};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use bench_support::BenchError;

/// A client's WebSocket to the server.
pub type Ws = WebSocketStream<TcpStream>;

/// How long any single protocol step may take before the run fails.
pub const STEP: Duration = Duration::from_secs(30);

/// Connects from `source` (any 127.x address) and completes `hello`.
pub async fn join(server: SocketAddr, source: IpAddr, user: &str) -> Result<Ws, BenchError> {
    let mut ws = open(server, source).await?;
    let hello = Hello {
        version: 1,
        user: user.into(),
        token: None,
        resume: None,
        received: None,
    };
    send(&mut ws, &ClientMessage::Hello(hello)).await?;
    match recv(&mut ws).await? {
        ServerMessage::Welcome(_) => Ok(ws),
        other => Err(BenchError::Protocol(format!(
            "expected welcome, got {other:?}"
        ))),
    }
}

/// Opens a WebSocket from `source` (any 127.x address) to the server's `/ws`, before
/// `hello`.
pub async fn open(server: SocketAddr, source: IpAddr) -> Result<Ws, BenchError> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = tokio::time::timeout(STEP, socket.connect(server)).await??;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0);
    let url = format!("ws://{server}/ws");
    let (ws, _) = tokio::time::timeout(
        STEP,
        tokio_tungstenite::client_async_with_config(url, stream, Some(config)),
    )
    .await??;
    Ok(ws)
}

/// Sends one protocol message.
pub async fn send(ws: &mut Ws, msg: &ClientMessage) -> Result<(), BenchError> {
    let text = serde_json::to_string(msg).map_err(|e| BenchError::Protocol(e.to_string()))?;
    tokio::time::timeout(STEP, ws.send(Message::Text(text.into()))).await??;
    Ok(())
}

/// The next protocol message (pings are answered by tungstenite while reading).
pub async fn recv(ws: &mut Ws) -> Result<ServerMessage, BenchError> {
    loop {
        match tokio::time::timeout(STEP, ws.next()).await? {
            Some(Ok(Message::Text(t))) => {
                return parse_server_message(&t).map_err(|e| BenchError::Protocol(e.to_string()));
            }
            Some(Ok(Message::Close(_))) | None => {
                return Err(BenchError::Protocol("closed".into()));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
        }
    }
}

/// Source address for the `i`-th connection: 4,000 per address, in a 127.x.y.2 block that
/// changes with the process id, so that neither ephemeral ports nor the TIME_WAIT left by
/// an earlier run limit how many connections one run can open.
pub fn source_for(i: usize) -> IpAddr {
    let block = 20 + (std::process::id() % 200) as u8;
    let n = (i / 4_000) as u8;
    IpAddr::from([127, block, n, 2])
}
