//! One client's signaling session that outlives its sockets: it counts every message
//! received after `welcome` (the `received` extension of docs/protocol.md), and after a
//! dropped socket it says `hello` again with its resume token and that count, so that the
//! server replays whatever the dead socket swallowed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::StreamExt;
use signaling_protocol::{ClientMessage, Hello, Ping, ServerMessage, Welcome};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::client::{self, Ws};
use bench_support::BenchError;

/// How long a dropped socket is read (and what arrives discarded) until the server closes
/// its side; also how long a sign-off waits for the server's close.
const DRAIN: Duration = Duration::from_secs(2);

/// A signaling session that survives dropped sockets.
pub struct Session {
    server: SocketAddr,
    user: String,
    /// The resume token of `welcome.session`.
    token: String,
    /// Messages received after `welcome` in this session, across its sockets.
    received: u64,
    ws: Ws,
    /// The first `welcome` (its TURN credentials, its limits).
    pub welcome: Welcome,
    /// Sockets dropped on purpose.
    pub drops: u64,
    /// Sessions resumed (`welcome.resumed: true`) after a drop.
    pub resumes: u64,
    /// Messages that arrived on a socket after it was dropped and were thrown away unread:
    /// the server must replay them on resume.
    pub discarded: u64,
}

impl Session {
    /// Opens a new session for `user` (opting in to replay with `received: 0`).
    pub async fn open(server: SocketAddr, user: &str) -> Result<Session, BenchError> {
        let (ws, welcome) = hello(server, user, None, 0).await?;
        Ok(Session {
            server,
            user: user.to_owned(),
            token: welcome.session.clone(),
            received: 0,
            ws,
            welcome,
            drops: 0,
            resumes: 0,
            discarded: 0,
        })
    }

    /// The next protocol message, counted. Cancel-safe: a message is counted only when it
    /// is returned.
    pub async fn next(&mut self) -> Result<ServerMessage, BenchError> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    self.received += 1;
                    return signaling_protocol::parse_server_message(&text)
                        .map_err(|e| BenchError::Protocol(format!("{}: {e}", self.user)));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(BenchError::Protocol(format!(
                        "{}: the server closed the socket: {frame:?}",
                        self.user
                    )));
                }
                None => {
                    return Err(BenchError::Protocol(format!(
                        "{}: the socket closed",
                        self.user
                    )));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// Sends one message.
    pub async fn send(&mut self, msg: &ClientMessage) -> Result<(), BenchError> {
        client::send(&mut self.ws, msg).await
    }

    /// A heartbeat carrying the count, so the server can forget what arrived.
    pub async fn ping(&mut self) -> Result<(), BenchError> {
        let ping = Ping {
            received: Some(self.received),
        };
        self.send(&ClientMessage::Ping(ping)).await
    }

    /// Drops the socket as a network that dies silently would: the client stops reading
    /// for `deaf` while the server goes on writing into the socket, then shuts its side of
    /// the TCP connection without a close frame (everything sent so far still reaches the
    /// server); what the server wrote meanwhile, and until it closes its side, is read and
    /// thrown away uncounted. After `pause` the session resumes on a new socket with the
    /// count of what was really received, so the server must replay the rest. A session
    /// the server did not resume is an error.
    pub async fn drop_and_resume(
        &mut self,
        deaf: Duration,
        pause: Duration,
    ) -> Result<(), BenchError> {
        tokio::time::sleep(deaf).await;
        self.ws.get_mut().shutdown().await?;
        let drain = async {
            while let Some(Ok(frame)) = self.ws.next().await {
                if frame.is_text() {
                    self.discarded += 1;
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN, drain).await;
        self.drops += 1;
        tokio::time::sleep(pause).await;
        let (ws, welcome) = hello(
            self.server,
            &self.user,
            Some(self.token.clone()),
            self.received,
        )
        .await?;
        if !welcome.resumed {
            return Err(BenchError::Protocol(format!(
                "{}: the session was not resumed after a drop",
                self.user
            )));
        }
        self.ws = ws;
        self.resumes += 1;
        Ok(())
    }

    /// Signs off: close code 1000 ends the session at once.
    pub async fn close(mut self) -> Result<(), BenchError> {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "soak call over".into(),
        };
        tokio::time::timeout(client::STEP, self.ws.close(Some(frame))).await??;
        let drain = async { while let Some(Ok(_)) = self.ws.next().await {} };
        let _ = tokio::time::timeout(DRAIN, drain).await;
        Ok(())
    }
}

/// Opens a socket and says `hello` (resuming `resume` when given); returns the socket
/// and the `welcome`.
async fn hello(
    server: SocketAddr,
    user: &str,
    resume: Option<String>,
    received: u64,
) -> Result<(Ws, Welcome), BenchError> {
    let mut ws = client::open(server, IpAddr::V4(Ipv4Addr::LOCALHOST)).await?;
    let hello = Hello {
        version: signaling_protocol::PROTOCOL_VERSION,
        user: user.to_owned(),
        token: None,
        resume,
        received: Some(received),
    };
    client::send(&mut ws, &ClientMessage::Hello(hello)).await?;
    match client::recv(&mut ws).await? {
        ServerMessage::Welcome(welcome) => Ok((ws, welcome)),
        other => Err(BenchError::Protocol(format!(
            "{user}: expected welcome, got {other:?}"
        ))),
    }
}
