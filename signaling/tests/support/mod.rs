//! Shared by the integration tests: a server on a free loopback port (from test-support)
//! and a WebSocket client that speaks the protocol, with timeouts so a missing message
//! fails the test instead of hanging it.
#![allow(dead_code, clippy::unwrap_used)] // each test file uses a different part of this

#[allow(unused_imports)]
pub use test_support::coturn::echo_peer;
#[allow(unused_imports)]
pub use test_support::require::require;
#[allow(unused_imports)]
pub use test_support::signaling_server::{http_get, server, server_with};

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use signaling_protocol::{
    Accept, CallId, CallRef, Candidate, ClientMessage, EndReason, ErrorCode, Hello, IceCandidate,
    Invite, ServerMessage, UserName, Welcome, parse_server_message,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// How long a test waits for a message that must come.
pub const WAIT: Duration = Duration::from_secs(5);

/// The first `http://` URL in a line the binary printed at start.
pub fn printed_url(line: &str) -> &str {
    line.split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
}

pub fn call_id(s: &str) -> CallId {
    CallId::new(s).unwrap()
}

pub fn hello(user: &str) -> Hello {
    Hello {
        version: 1,
        user: user.into(),
        token: None,
        resume: None,
        received: None,
    }
}

pub fn candidate(call: &str, text: &str) -> ClientMessage {
    ClientMessage::Candidate(Candidate {
        call_id: call_id(call),
        candidate: Some(IceCandidate {
            candidate: text.into(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
            username_fragment: None,
        }),
    })
}

/// The client's TCP stream. Once `muted`, what the client writes vanishes, as over an
/// uplink that died without a word: the server hears nothing, not even a FIN.
struct Link {
    tcp: TcpStream,
    muted: Arc<AtomicBool>,
}

impl AsyncRead for Link {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Link {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.muted.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

pub struct Client {
    ws: WebSocketStream<Link>,
    muted: Arc<AtomicBool>,
}

impl Client {
    /// A WebSocket to `/ws` that has said nothing yet.
    pub async fn open(addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let muted = Arc::new(AtomicBool::new(false));
        let link = Link {
            tcp,
            muted: muted.clone(),
        };
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), link)
            .await
            .unwrap();
        Client { ws, muted }
    }

    /// From now on nothing this client writes reaches the server, its answers to the
    /// server's pings included; the client still reads.
    pub fn mute_uplink(&self) {
        self.muted.store(true, Ordering::Relaxed);
    }

    /// Reads until the server's next WebSocket ping (answered unless the uplink is muted);
    /// a protocol message or a close before it fails the test.
    pub async fn expect_ping(&mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("timed out waiting for a ping");
            match frame {
                Some(Ok(Message::Ping(_))) => return,
                Some(Ok(Message::Pong(_))) => continue,
                other => panic!("expected a ping, got {other:?}"),
            }
        }
    }

    /// Connects and says `hello`; returns the client and its `welcome`.
    pub async fn join_with(addr: SocketAddr, hello: Hello) -> (Client, Welcome) {
        let mut c = Client::open(addr).await;
        c.send(&ClientMessage::Hello(hello)).await;
        match c.recv().await {
            ServerMessage::Welcome(w) => (c, w),
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    pub async fn join(addr: SocketAddr, user: &str) -> Client {
        Client::join_with(addr, hello(user)).await.0
    }

    pub async fn send(&mut self, msg: &ClientMessage) {
        self.send_raw(&serde_json::to_string(msg).unwrap()).await;
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.send_frame(Message::Text(text.into())).await;
    }

    pub async fn send_frame(&mut self, msg: Message) {
        tokio::time::timeout(WAIT, self.ws.send(msg))
            .await
            .expect("send timed out")
            .unwrap();
    }

    /// The next protocol message (WebSocket pings are answered and skipped). The deadline
    /// covers the whole wait, so a stream of pings cannot keep a test waiting forever.
    pub async fn recv(&mut self) -> ServerMessage {
        match self.recv_close_or_message().await {
            Ok(msg) => msg,
            Err(code) => panic!("expected a message, the server closed with {code:?}"),
        }
    }

    /// Asserts that no protocol message arrives within `d`.
    pub async fn expect_silence(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }

    /// Reads until the server closes; returns the close code (None: closed without one).
    pub async fn recv_close(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("timed out waiting for close");
            match frame {
                Some(Ok(Message::Close(f))) => return f.map(|f| f.code.into()),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// The next protocol message, or `Err(close code)` once the server closes.
    pub async fn recv_close_or_message(&mut self) -> Result<ServerMessage, Option<u16>> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("timed out waiting for a message");
            match frame {
                Some(Ok(Message::Text(t))) => {
                    return Ok(parse_server_message(&t).unwrap_or_else(|e| panic!("{e}: {t}")));
                }
                Some(Ok(Message::Close(f))) => return Err(f.map(|f| f.code.into())),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(None),
            }
        }
    }

    pub async fn expect_error(&mut self, code: ErrorCode) -> Option<CallId> {
        match self.recv().await {
            ServerMessage::Error(e) if e.code == code => e.call_id,
            other => panic!("expected error {code:?}, got {other:?}"),
        }
    }

    pub async fn expect_ended(&mut self, call: &str, reason: EndReason) {
        assert_eq!(
            self.recv().await,
            ServerMessage::ended(call_id(call), reason)
        );
    }

    pub async fn invite(&mut self, call: &str, to: &str) {
        let invite = Invite {
            call_id: call_id(call),
            to: UserName::new(to).unwrap(),
            offer: format!("offer {call}"),
            meta: None,
        };
        self.send(&ClientMessage::Invite(invite)).await;
    }

    pub async fn accept(&mut self, call: &str) {
        self.send(&ClientMessage::Accept(Accept {
            call_id: call_id(call),
            answer: format!("answer {call}"),
        }))
        .await;
    }

    pub async fn hangup(&mut self, call: &str) {
        self.send(&ClientMessage::Hangup(CallRef {
            call_id: call_id(call),
        }))
        .await;
    }

    pub async fn expect_invite(&mut self, call: &str, from: &str) {
        match self.recv().await {
            ServerMessage::Invite(i) if i.call_id.as_str() == call && i.from.as_str() == from => {}
            other => panic!("expected invite {call} from {from}, got {other:?}"),
        }
    }

    pub async fn expect_ringing(&mut self, call: &str) {
        match self.recv().await {
            ServerMessage::Ringing(r) if r.call_id.as_str() == call => {}
            other => panic!("expected ringing {call}, got {other:?}"),
        }
    }

    /// Closes with `code` (1000 signs off; others leave the session waiting for a resume).
    pub async fn close(mut self, code: u16) {
        let frame = CloseFrame {
            code: code.into(),
            reason: "".into(),
        };
        let _ = self.ws.send(Message::Close(Some(frame))).await;
        let _ = tokio::time::timeout(WAIT, async { while self.ws.next().await.is_some() {} }).await;
    }

    /// Drops the TCP connection without a close frame, as a lost network would.
    pub fn cut(self) {
        drop(self);
    }
}

/// `caller` (user `from`) invites `to`, whose one session `callee` rings; both have read it.
pub async fn ring(caller: &mut Client, callee: &mut Client, call: &str, from: &str, to: &str) {
    caller.invite(call, to).await;
    callee.expect_invite(call, from).await;
    caller.expect_ringing(call).await;
}

/// `caller` calls `callee` (one session) and it is accepted; both sides have read everything.
pub async fn connected_call(
    caller: &mut Client,
    callee: &mut Client,
    call: &str,
    from: &str,
    to: &str,
) {
    ring(caller, callee, call, from, to).await;
    callee.accept(call).await;
    match caller.recv().await {
        ServerMessage::Accepted(a) if a.call_id.as_str() == call => {}
        other => panic!("expected accepted, got {other:?}"),
    }
}

#[allow(unused_imports)]
pub use test_support::signaling_server::Deployment;

/// Runs each named test, an `async fn(nodes: usize)` that builds its
/// [`Deployment::new`]`(nodes, …)`, with its parties on one node and on two nodes sharing
/// a private Redis: the same test, not a copy.
#[allow(unused_macros)]
macro_rules! on_one_and_two_nodes {
    ($($name:ident),* $(,)?) => {
        mod one_node {
            $(#[tokio::test]
            async fn $name() {
                super::$name(1).await;
            })*
        }
        mod two_nodes {
            $(#[tokio::test]
            async fn $name() {
                super::$name(2).await;
            })*
        }
    };
}
