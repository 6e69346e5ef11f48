//! One WebSocket connection: moves frames between the socket and the switchboard.
//!
//! A single task per connection (idle connections are the common case, so they must be
//! cheap): it reads frames, writes what the switchboard queued when woken, and sleeps until
//! the deadline of its [`ConnectionPolicy`], which decides when to ping, when a silent
//! connection is dropped and which messages are over the rate limit.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, SinkExt, StreamExt};
use signaling_protocol::{
    CallId, ClientMessage, ErrorCode, Hello, ServerMessage, UserName, parse_client_message,
};
use tokio::io::AsyncReadExt;
use tokio::time::Sleep;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::{Instrument, Span, debug, field, info_span};

use crate::clock;
use crate::server::{ConnSignal, Shared, Signal};
use crate::upgrade::Socket;
use switchboard::{
    Action, Admission, CLOSE_GOING_AWAY, CLOSE_MOVE, CLOSE_POLICY, ConnId, ConnectionLimits,
    ConnectionPolicy, Disconnect, Outgoing,
};

/// Read buffer per connection: small, so that idle connections cost little memory.
pub(crate) const READ_BUFFER: usize = 512;
/// Close code for a message over the size limit.
const CLOSE_TOO_LARGE: u16 = 1009;
/// How long closing may take (our close frame, then the client's reply), and a ping write.
const CLOSE_WRITE: Duration = Duration::from_secs(1);

/// Serves one upgraded WebSocket until it closes.
///
/// Not an `async fn`: its arguments would stay in the future beside the connection they
/// were moved into (a few hundred bytes more in every idle connection's task). The
/// connection's own future is built here and only a closure follows it.
pub(crate) fn serve(
    socket: Socket,
    shared: Arc<Shared>,
    conn: ConnId,
) -> impl Future<Output = ()> + Send + 'static {
    let span = info_span!(
        "conn",
        id = conn.0,
        user = field::Empty,
        session = field::Empty
    );
    let signal = shared.register(conn);
    shared.metrics.connections().inc();
    Connection::new(socket, shared.clone(), signal, conn)
        .run()
        .instrument(span)
        .map(move |()| {
            shared.metrics.connections().dec();
            shared.unregister(conn);
        })
}

/// What woke the connection task.
enum Event {
    Frame(Option<Result<Message, WsError>>),
    Wake,
    Close,
    /// The policy's deadline passed.
    Timeout,
    Shutdown,
}

/// What the connection loop does next.
enum Flow {
    Continue,
    /// The socket is done.
    Ended(Disconnect),
}

struct Connection {
    socket: Socket,
    shared: Arc<Shared>,
    signal: Arc<ConnSignal>,
    conn: ConnId,
    policy: ConnectionPolicy,
    hello_done: bool,
}

impl Connection {
    fn new(socket: Socket, shared: Arc<Shared>, signal: Arc<ConnSignal>, conn: ConnId) -> Self {
        let limits = ConnectionLimits {
            heartbeat: shared.config.heartbeat,
            rate_per_s: shared.config.rate_per_s,
            rate_burst: shared.config.rate_burst,
            hello_timeout: shared.config.hello_timeout,
        };
        Connection {
            policy: ConnectionPolicy::new(limits, clock::now()),
            hello_done: false,
            socket,
            signal,
            conn,
            shared,
        }
    }

    /// Not an `async fn`: an `async fn`'s future moves its arguments into locals and keeps
    /// room for both (rust-lang/rust#62958), so the connection would be in every idle
    /// task twice (~460 bytes more). The block uses the captured connection in place.
    fn run(self) -> impl Future<Output = ()> + Send {
        let mut this = self;
        async move {
            let signal = this.signal.clone();
            // Boxed, as tokio's own interval does: the timer lives on the heap, not in every
            // idle connection's future.
            let mut timer: Pin<Box<Sleep>> =
                Box::pin(tokio::time::sleep_until(this.policy.poll_timeout().into()));
            let (how, unwritten) = loop {
                // Biased, timer last: after a long write, a pong already in the buffer is read
                // before the idle deadline is acted on, so a live client is not closed as silent.
                let event = tokio::select! {
                    biased;
                    signal = signal.next() => match signal {
                        Signal::Wake => Event::Wake,
                        Signal::Close => Event::Close,
                        Signal::Shutdown => Event::Shutdown,
                    },
                    frame = this.socket.next() => Event::Frame(frame),
                    () = timer.as_mut() => Event::Timeout,
                };
                // A timer that fired must be re-armed even for the same deadline, or it would
                // fire again at once.
                let fired = matches!(event, Event::Timeout);
                // Boxed: inlined, the handlers' futures would make every idle connection's
                // task several KiB larger; this way they take memory only while they run.
                if let Some(end) = Box::pin(this.handle(event)).await {
                    break end;
                }
                let next = this.policy.poll_timeout().into();
                if fired || next != timer.deadline() {
                    timer.as_mut().reset(next);
                }
            };
            Box::pin(this.finish(how, unwritten)).await;
        }
    }

    /// Handles one event; `Some((how, unwritten))` when the connection is over.
    async fn handle(&mut self, event: Event) -> Option<(Disconnect, Vec<Outgoing>)> {
        match event {
            Event::Frame(frame) => match self.on_frame(frame).await {
                Flow::Continue => None,
                Flow::Ended(how) => Some((how, Vec::new())),
            },
            Event::Wake => self
                .flush()
                .await
                .err()
                .map(|rest| (Disconnect::Dropped, rest)),
            Event::Close => Some((Disconnect::Dropped, Vec::new())),
            Event::Timeout => match self.policy.handle_timeout(clock::now()) {
                Some(Action::Ping) => {
                    let ping = self.socket.send(Message::Ping(Default::default()));
                    let _ = tokio::time::timeout(CLOSE_WRITE, ping).await;
                    None
                }
                Some(Action::Close { code, reason }) => {
                    debug!(reason, "closing");
                    self.close(code, reason).await;
                    Some((Disconnect::Dropped, Vec::new()))
                }
                None => None,
            },
            Event::Shutdown => {
                self.close(CLOSE_GOING_AWAY, "server shutting down").await;
                Some((Disconnect::Dropped, Vec::new()))
            }
        }
    }

    /// Sends the close frame the switchboard asked for, if any, and reports the loss.
    async fn finish(&mut self, how: Disconnect, unwritten: Vec<Outgoing>) {
        let requested = self.signal.take_close_frame();
        if let Some((code, reason)) = requested {
            self.close(code, reason).await;
        }
        let conn = self.conn;
        self.shared
            .with_board(|b| b.disconnected(conn, how, &unwritten, clock::now()));
    }

    async fn on_frame(&mut self, frame: Option<Result<Message, WsError>>) -> Flow {
        let msg = match frame {
            None => return Flow::Ended(Disconnect::Dropped),
            Some(Err(e)) => {
                if matches!(e, WsError::Capacity(_)) {
                    let max = self.shared.config.max_message_bytes;
                    let text = format!("messages are limited to {max} bytes");
                    self.send_direct(ServerMessage::error(ErrorCode::TooLarge, text, None))
                        .await;
                    self.close(CLOSE_TOO_LARGE, "message too large").await;
                    self.drain().await;
                }
                return Flow::Ended(Disconnect::Dropped);
            }
            Some(Ok(msg)) => msg,
        };
        self.policy.frame_received(clock::now());
        match msg {
            Message::Text(text) => self.on_text(text.as_str()).await,
            Message::Binary(_) => {
                // A binary frame costs an answer like a text message: the same bucket,
                // dropped unanswered when it is empty.
                if !self.admit(clock::now()) {
                    return Flow::Continue;
                }
                self.shared.metrics.message_in("invalid");
                self.reply_error(
                    ErrorCode::BadMessage,
                    "binary frames are not accepted",
                    None,
                )
                .await;
                Flow::Continue
            }
            Message::Ping(_) | Message::Pong(_) => Flow::Continue,
            Message::Close(frame)
                if frame.as_ref().is_some_and(|f| f.code == CloseCode::Normal) =>
            {
                Flow::Ended(Disconnect::SignedOff)
            }
            Message::Close(_) => Flow::Ended(Disconnect::Dropped),
            Message::Frame(_) => Flow::Continue,
        }
    }

    /// Takes a token for a message; counts it as `rate_limited` when there is none.
    fn admit(&mut self, now: Instant) -> bool {
        let admitted = self.policy.admit_message(now) == Admission::Allowed;
        if !admitted {
            self.shared.metrics.message_in("rate_limited");
        }
        admitted
    }

    async fn on_text(&mut self, text: &str) -> Flow {
        let now = clock::now();
        if !self.admit(now) {
            let msg = "too many messages; slow down";
            self.reply_error(ErrorCode::RateLimited, msg, None).await;
            return Flow::Continue;
        }
        let msg = match parse_client_message(text) {
            Ok(msg) => msg,
            Err(e) => {
                self.shared.metrics.message_in("invalid");
                self.reply_error(ErrorCode::BadMessage, &e.to_string(), e.call_id().cloned())
                    .await;
                return Flow::Continue;
            }
        };
        self.shared.metrics.message_in(msg.kind());
        debug!(kind = msg.kind(), "received");
        match msg {
            ClientMessage::Hello(hello) if !self.hello_done => self.on_hello(hello, now).await,
            _ if !self.hello_done => {
                self.reply_error(ErrorCode::NotReady, "the first message must be hello", None)
                    .await;
                Flow::Continue
            }
            msg => {
                let conn = self.conn;
                self.shared.with_board(|b| b.message(conn, msg, now));
                Flow::Continue
            }
        }
    }

    async fn on_hello(&mut self, hello: Hello, now: Instant) -> Flow {
        let user = match UserName::new(hello.user) {
            Ok(user) => user,
            Err(e) => {
                let text = format!("user: {e}; use 1 to 64 of A-Z a-z 0-9 . _ @ -");
                return self.refuse(ErrorCode::InvalidUser, text).await;
            }
        };
        let unix_now = clock::unix_now();
        if let Err(e) = self
            .shared
            .config
            .auth
            .check(hello.token.as_deref(), &user, unix_now)
        {
            return self.refuse(ErrorCode::Unauthorized, e.to_string()).await;
        }
        Span::current().record("user", user.as_str());
        let ice = self.shared.ice.servers_for(&user, unix_now);
        let conn = self.conn;
        let max_sessions = self.shared.config.max_sessions_per_user;
        let started = self.shared.with_board(|b| {
            // Draining: the client resumes on another node (its token names this one).
            (!b.is_draining()).then(|| {
                b.hello(
                    conn,
                    user,
                    hello.resume.as_deref(),
                    hello.received,
                    ice,
                    now,
                )
            })
        });
        let Some(started) = started else {
            self.close(CLOSE_MOVE, "node draining: resume now").await;
            return Flow::Ended(Disconnect::Dropped);
        };
        let Some(sid) = started else {
            let text = format!("at most {max_sessions} sessions per user, all connected");
            return self.refuse(ErrorCode::RateLimited, text).await;
        };
        Span::current().record("session", sid.0);
        self.hello_done = true;
        self.policy.hello_received();
        Flow::Continue
    }

    /// Refuses `hello`: the error, then close 1008.
    async fn refuse(&mut self, code: ErrorCode, text: String) -> Flow {
        self.send_direct(ServerMessage::error(code, text, None))
            .await;
        self.close(CLOSE_POLICY, code.as_str()).await;
        Flow::Ended(Disconnect::Dropped)
    }

    /// An error about the last message: through the session's queue once there is one,
    /// so it stays in order with everything else.
    async fn reply_error(&mut self, code: ErrorCode, text: &str, call_id: Option<CallId>) {
        if self.hello_done {
            let conn = self.conn;
            self.shared
                .with_board(|b| b.reject_message(conn, code, text, call_id));
        } else {
            self.send_direct(ServerMessage::error(code, text, call_id))
                .await;
        }
    }

    /// Writes a message that is not part of a session's stream (before or instead of one).
    async fn send_direct(&mut self, msg: ServerMessage) {
        if let ServerMessage::Error(e) = &msg {
            self.shared.metrics.error(e.code);
        }
        let kind = msg.kind();
        if self.write(&msg).await {
            self.shared.metrics.message_out(kind);
        }
    }

    /// Writes everything the switchboard queued; on failure returns what was not written.
    async fn flush(&mut self) -> Result<(), Vec<Outgoing>> {
        let conn = self.conn;
        let (batch, queued) = self.shared.with_board(|b| b.take_outbox_timed(conn));
        let signal = self.signal.clone();
        // A signal during a write: a close ends it (and the connection, whose end sends the
        // close frame); anything else is for the main loop, woken again once the writes
        // are done.
        let mut later = false;
        for (i, (msg, at)) in batch.iter().zip(queued).enumerate() {
            let written = {
                let mut write = std::pin::pin!(self.write(msg));
                loop {
                    tokio::select! {
                        ok = &mut write => break ok,
                        s = signal.next() => {
                            later = true;
                            if s == Signal::Close {
                                break false;
                            }
                        }
                    }
                }
            };
            if !written {
                return Err(batch[i..].to_vec());
            }
            self.shared.metrics.message_out(msg.kind());
            let waited = clock::now().saturating_duration_since(at);
            self.shared.metrics.delivered(waited);
        }
        if later {
            signal.wake();
        }
        Ok(())
    }

    /// Writes one message; a reader that takes longer than a heartbeat counts as gone.
    async fn write(&mut self, msg: &ServerMessage) -> bool {
        let text = match serde_json::to_string(msg) {
            Ok(text) => text,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize a message");
                return true;
            }
        };
        let limit = self.shared.config.heartbeat;
        matches!(
            tokio::time::timeout(limit, self.socket.send(Message::Text(text.into()))).await,
            Ok(Ok(()))
        )
    }

    /// Reads and discards the rest of an oversized message (at most 16 MiB, for at most a
    /// second), so that closing does not reset the connection before the client has read
    /// our close frame.
    async fn drain(&mut self) {
        let mut buf = [0u8; 4096];
        let stream = self.socket.get_mut();
        let _ = tokio::time::timeout(CLOSE_WRITE, async {
            let mut total = 0usize;
            while total < 16 * 1024 * 1024 {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
        })
        .await;
    }

    /// Sends a close frame, then waits (at most a second) for the client's own close frame
    /// before the socket is dropped (RFC 6455 §7.1.1). Dropping at once would let the client's
    /// last frames (a pong, its close reply) meet a closed socket, and the reset that follows
    /// can destroy our close frame before the client reads it. Frames in between are discarded.
    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code: code.into(),
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(CLOSE_WRITE, async {
            if self.socket.send(Message::Close(Some(frame))).await.is_err() {
                return;
            }
            while let Some(Ok(msg)) = self.socket.next().await {
                match msg {
                    Message::Close(_) => break,
                    // Sent before the client saw our close: still its session's (which
                    // goes on, elsewhere after a drain), not to be lost.
                    Message::Text(text) if self.hello_done => self.late_message(text.as_str()),
                    _ => {}
                }
            }
        })
        .await;
    }

    /// A message that arrived after our close frame: handed to the session like any other,
    /// its replies queued for the client's next connection (none can be written here).
    fn late_message(&mut self, text: &str) {
        let now = clock::now();
        let conn = self.conn;
        if !self.admit(now) {
            let msg = "too many messages; slow down";
            self.shared
                .with_board(|b| b.reject_message(conn, ErrorCode::RateLimited, msg, None));
            return;
        }
        match parse_client_message(text) {
            Ok(ClientMessage::Hello(_)) => {}
            Ok(msg) => {
                self.shared.metrics.message_in(msg.kind());
                self.shared.with_board(|b| b.message(conn, msg, now));
            }
            Err(e) => {
                self.shared.metrics.message_in("invalid");
                let (text, call_id) = (e.to_string(), e.call_id().cloned());
                self.shared.with_board(|b| {
                    b.reject_message(conn, ErrorCode::BadMessage, &text, call_id);
                });
            }
        }
    }
}
