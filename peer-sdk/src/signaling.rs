//! The signaling connection: one task owns the WebSocket, says `hello`, routes what the
//! server sends to the calls, sends heartbeats, and on a dropped socket reconnects with
//! backoff and resumes the session so that calls in progress go on.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use server_kit::TokenBucket;
use signaling_protocol::{
    CallId, ClientMessage, EndReason, ErrorCode, IceServer, ServerMessage, UserName,
    parse_server_message,
};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::{Instrument, debug, info, warn};

use crate::backoff::Backoff;
use crate::clock;
use crate::error::{ConnectError, ConnectErrorKind, Error, Result};
use crate::lock;
use crate::options::ClientOptions;
use crate::session::{Continuity, Session};
use crate::tls::Tls;
use crate::websocket::{self, Ws, lost};

/// What the signaling task tells the client (turned into [`crate::ClientEvent`]s).
#[derive(Debug)]
pub(crate) enum Notice {
    Invite(
        signaling_protocol::IncomingInvite,
        mpsc::UnboundedReceiver<ServerMessage>,
    ),
    Reconnecting {
        attempt: u32,
        error: Error,
    },
    Reconnected {
        resumed: bool,
    },
    Error(Error),
    Closed(Error),
}

/// Where the server's messages about each call go: one channel per call, shared by the
/// connection (which delivers) and the calls (which open and close their route).
#[derive(Clone, Default)]
struct Routes(Arc<Mutex<HashMap<CallId, mpsc::UnboundedSender<ServerMessage>>>>);

impl Routes {
    /// Routes `call_id` to a new channel and returns its receiving end.
    fn open(&self, call_id: CallId) -> mpsc::UnboundedReceiver<ServerMessage> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.0).insert(call_id, tx);
        rx
    }

    fn close(&self, call_id: &CallId) {
        lock(&self.0).remove(call_id);
    }

    /// Delivers `msg` to its call; an `ended`, or a call that stopped listening, closes
    /// the route.
    fn deliver(&self, call_id: &CallId, msg: ServerMessage) {
        let ended = matches!(msg, ServerMessage::Ended(_));
        let mut routes = lock(&self.0);
        match routes.get(call_id) {
            Some(route) => {
                if route.send(msg).is_err() || ended {
                    routes.remove(call_id);
                }
            }
            None => debug!(%call_id, "message for a call this client no longer has"),
        }
    }

    /// Closes every route, telling each call it ended with `peer_lost`.
    fn end_all(&self) {
        let routes: Vec<_> = lock(&self.0).drain().collect();
        for (call_id, route) in routes {
            let _ = route.send(ServerMessage::ended(call_id, EndReason::PeerLost));
        }
    }
}

/// The calls' side of the signaling task: send messages, receive those of one call.
#[derive(Clone)]
pub(crate) struct Signal {
    out: mpsc::UnboundedSender<ClientMessage>,
    routes: Routes,
    ice_servers: watch::Receiver<Vec<IceServer>>,
    user: UserName,
    tls: Tls,
}

impl Signal {
    /// Queues a message for the server; it is sent as soon as a socket is up.
    pub(crate) fn send(&self, msg: ClientMessage) -> Result<()> {
        self.out.send(msg).map_err(|_| Error::Closed)
    }

    /// Receives the server's messages about `call_id` from now on.
    pub(crate) fn route(&self, call_id: CallId) -> mpsc::UnboundedReceiver<ServerMessage> {
        self.routes.open(call_id)
    }

    /// Stops routing `call_id`.
    pub(crate) fn unroute(&self, call_id: &CallId) {
        self.routes.close(call_id);
    }

    /// The trust for `turns:` relays: the same roots as for `wss://`.
    pub(crate) fn tls(&self) -> &Tls {
        &self.tls
    }

    /// The ICE servers of the latest `welcome`.
    pub(crate) fn ice_servers(&self) -> Vec<IceServer> {
        self.ice_servers.borrow().clone()
    }

    pub(crate) fn user(&self) -> &UserName {
        &self.user
    }
}

impl std::fmt::Debug for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signal").field("user", self.user()).finish()
    }
}

/// Opens the first socket (its errors go to the caller of `connect`), then runs the
/// connection in a task.
pub(crate) async fn start(
    url: String,
    user: UserName,
    token: Option<String>,
    options: &ClientOptions,
) -> Result<(
    Signal,
    mpsc::UnboundedReceiver<Notice>,
    watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
)> {
    let tls = Tls::new(options.extra_ca_pem.as_deref())?;
    let mut session = Session::new(user.to_string(), token);
    let (ws, _) = open(&url, &tls, &mut session, options.connect_timeout).await?;
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (notice_tx, notice_rx) = mpsc::unbounded_channel();
    let (ice_tx, ice_rx) = watch::channel(session.ice_servers().to_vec());
    let (close_tx, close_rx) = watch::channel(false);
    let signal = Signal {
        out: out_tx,
        routes: Routes::default(),
        ice_servers: ice_rx,
        user,
        tls: tls.clone(),
    };
    let task = Connection {
        url,
        tls,
        session,
        options: options.clone(),
        routes: signal.routes.clone(),
        out_rx,
        notices: notice_tx,
        ice: ice_tx,
        close: close_rx,
        unsent: VecDeque::new(),
    };
    let span = tracing::info_span!("signaling", user = %signal.user);
    let task = tokio::spawn(task.run(ws).instrument(span));
    Ok((signal, notice_rx, close_tx, task))
}

/// Opens a socket and says `hello`; returns it with what the `welcome` meant.
async fn open(
    url: &str,
    tls: &Tls,
    session: &mut Session,
    limit: Duration,
) -> Result<(Ws, Continuity)> {
    let attempt = async {
        let mut ws = websocket::open(url, tls).await?;
        let hello = ClientMessage::Hello(session.hello());
        send(&mut ws, &hello)
            .await
            .map_err(|e| lost("sending hello", e))?;
        loop {
            let frame = ws
                .next()
                .await
                .ok_or_else(|| {
                    let message = "the signaling server closed the connection before welcome";
                    ConnectError::new(ConnectErrorKind::Lost, message, None)
                })?
                .map_err(|e| lost("waiting for welcome", e))?;
            let Message::Text(text) = frame else { continue };
            match parse_server_message(&text) {
                Ok(ServerMessage::Welcome(w)) => {
                    let continuity = session.welcome(&w);
                    return Ok((ws, continuity));
                }
                Ok(ServerMessage::Error(e)) => {
                    return Err(Error::Refused {
                        code: e.code,
                        message: e.message,
                    });
                }
                Ok(other) => debug!(kind = other.kind(), "before welcome, ignored"),
                Err(e) => {
                    let message = "the signaling server sent a message the SDK cannot read";
                    let e =
                        ConnectError::new(ConnectErrorKind::Protocol, message, Some(Arc::new(e)));
                    return Err(e.into());
                }
            }
        }
    };
    tokio::time::timeout(limit, attempt)
        .await
        .map_err(|_| Error::Timeout("welcome"))?
}

async fn send(
    ws: &mut Ws,
    msg: &ClientMessage,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let text = serde_json::to_string(msg).unwrap_or_default();
    ws.send(Message::text(text)).await
}

/// Sends `msg` once the server's limit allows it (`pace`), waiting if it must.
async fn paced_send(
    ws: &mut Ws,
    pace: &mut TokenBucket,
    msg: &ClientMessage,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let wait = pace.wait(clock::now());
    if !wait.is_zero() {
        clock::sleep(wait).await;
    }
    pace.allow(clock::now());
    send(ws, msg).await
}

struct Connection {
    url: String,
    /// Built once: the roots do not change between reconnects.
    tls: Tls,
    session: Session,
    options: ClientOptions,
    routes: Routes,
    out_rx: mpsc::UnboundedReceiver<ClientMessage>,
    notices: mpsc::UnboundedSender<Notice>,
    ice: watch::Sender<Vec<IceServer>>,
    close: watch::Receiver<bool>,
    /// Taken from the queue but not written when the socket failed: sent first next time.
    unsent: VecDeque<ClientMessage>,
}

/// Why a socket's loop ended.
enum Exit {
    /// The app closed the client.
    Closed,
    /// The socket failed; reconnect.
    Lost(Error),
    /// The server's node drains and told us to move (close code 4001): reconnect at once,
    /// through the load balancer, to another node, where the session resumes.
    Moved(Error),
}

/// The close code of a node that drains: resume now, elsewhere.
const CLOSE_MOVE: u16 = 4001;

impl Connection {
    async fn run(mut self, mut ws: Ws) {
        loop {
            let mut pace = self.session.pace(clock::now());
            let exit = self.serve(&mut ws, &mut pace).await;
            let at_once = matches!(exit, Exit::Moved(_));
            match exit {
                Exit::Closed => {
                    // What the app sent just before closing (a hangup, say) goes first.
                    while let Ok(msg) = self.out_rx.try_recv() {
                        if paced_send(&mut ws, &mut pace, &msg).await.is_err() {
                            break;
                        }
                    }
                    let _ = ws
                        .close(Some(CloseFrame {
                            code: CloseCode::Normal,
                            reason: "bye".into(),
                        }))
                        .await;
                    // The closing handshake: read (and drop) what the server still sends
                    // until it answers our Close and ends the stream. Closing a socket with
                    // unread data makes the kernel send a reset, and a reset can throw away
                    // the hangup and Close just written before the server has read them.
                    let _ = tokio::time::timeout(self.options.connect_timeout, async {
                        while let Some(Ok(_)) = ws.next().await {}
                    })
                    .await;
                    self.end_all_calls();
                    let _ = self.notices.send(Notice::Closed(Error::Closed));
                    return;
                }
                Exit::Lost(error) | Exit::Moved(error) => {
                    info!(
                        error = &error as &dyn std::error::Error,
                        "signaling socket lost; reconnecting"
                    );
                    match self.reconnect(error, at_once).await {
                        Some(next) => ws = next,
                        None => return,
                    }
                }
            }
        }
    }

    /// Serves one socket until it fails or the client is closed. What it sends stays
    /// under the server's message limit (`pace`): over it the server would drop messages.
    async fn serve(&mut self, ws: &mut Ws, pace: &mut TokenBucket) -> Exit {
        while let Some(msg) = self.unsent.pop_front() {
            if let Err(e) = paced_send(ws, pace, &msg).await {
                self.unsent.push_front(msg);
                return Exit::Lost(lost("sending", e));
            }
        }
        let mut ping = tokio::time::interval(self.session.ping_every());
        ping.tick().await;
        let mut last_heard = clock::now();
        loop {
            // Zero while the limit allows a message now; otherwise the app's messages wait
            // in the queue (in order) and the loop wakes when the next one may go.
            let wait = pace.wait(clock::now());
            tokio::select! {
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        last_heard = clock::now();
                        self.session.received();
                        self.dispatch(&text);
                    }
                    Some(Ok(Message::Close(Some(frame)))) if u16::from(frame.code) == CLOSE_MOVE => {
                        let message = "the signaling server's node drains: moving to another";
                        let e = ConnectError::new(ConnectErrorKind::Lost, message, None);
                        return Exit::Moved(e.into());
                    }
                    Some(Ok(Message::Close(_))) | None => {
                        let message = "the signaling server closed the connection";
                        let e = ConnectError::new(ConnectErrorKind::Lost, message, None);
                        return Exit::Lost(e.into());
                    }
                    Some(Ok(_)) => {
                        // WebSocket ping/pong: tungstenite queues the pong; flush it.
                        last_heard = clock::now();
                        let _ = ws.flush().await;
                    }
                    Some(Err(e)) => return Exit::Lost(lost("receiving", e)),
                },
                _ = clock::sleep(wait), if !wait.is_zero() => {}
                msg = self.out_rx.recv(), if wait.is_zero() => match msg {
                    Some(msg) => {
                        if let Err(e) = paced_send(ws, pace, &msg).await {
                            self.unsent.push_back(msg);
                            return Exit::Lost(lost("sending", e));
                        }
                    }
                    None => return Exit::Closed,
                },
                _ = ping.tick() => {
                    if clock::now().duration_since(last_heard) > self.session.silence_limit() {
                        return Exit::Lost(Error::Timeout("the server's pong"));
                    }
                    let ping = ClientMessage::Ping(self.session.ping());
                    if let Err(e) = paced_send(ws, pace, &ping).await {
                        return Exit::Lost(lost("sending a ping", e));
                    }
                }
                _ = self.close.changed() => return Exit::Closed,
            }
        }
    }

    /// Reconnects with backoff until it works or the client is closed; `at_once`: the first
    /// attempt within a random part of `reconnect_base`, without the backoff (the server
    /// asked us to move).
    async fn reconnect(&mut self, mut error: Error, at_once: bool) -> Option<Ws> {
        let mut backoff = Backoff::new(self.options.reconnect_base, self.options.reconnect_max);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let _ = self.notices.send(Notice::Reconnecting { attempt, error });
            let delay = if at_once && attempt == 1 {
                // Soon, but not all of a draining node's clients in the same millisecond.
                self.options.reconnect_base.mul_f64(clock::jitter())
            } else {
                backoff.next_delay(clock::jitter())
            };
            tokio::select! {
                _ = clock::sleep(delay) => {}
                _ = self.close.changed() => {
                    self.end_all_calls();
                    let _ = self.notices.send(Notice::Closed(Error::Closed));
                    return None;
                }
            }
            let limit = self.options.connect_timeout;
            match open(&self.url, &self.tls, &mut self.session, limit).await {
                Ok((ws, continuity)) => {
                    let resumed = continuity == Continuity::Resumed;
                    info!(resumed, attempt, "signaling reconnected");
                    if !resumed {
                        // The server ended our calls when the session expired.
                        self.end_all_calls();
                        self.unsent.clear();
                    }
                    let _ = self.ice.send(self.session.ice_servers().to_vec());
                    let _ = self.notices.send(Notice::Reconnected { resumed });
                    return Some(ws);
                }
                Err(e @ Error::Refused { .. }) => {
                    warn!(
                        error = &e as &dyn std::error::Error,
                        "the server refused the session; giving up"
                    );
                    self.end_all_calls();
                    let _ = self.notices.send(Notice::Closed(e));
                    return None;
                }
                Err(e) => error = e,
            }
        }
    }

    /// Every call of the session ends with `peer_lost`, as it did on the server.
    fn end_all_calls(&mut self) {
        self.routes.end_all();
    }

    fn dispatch(&mut self, text: &str) {
        let msg = match parse_server_message(text) {
            Ok(msg) => msg,
            Err(e) => {
                warn!(error = %e, "unparsable message from the server");
                let _ = self.notices.send(Notice::Error(Error::Server {
                    code: ErrorCode::BadMessage,
                    message: e.to_string(),
                }));
                return;
            }
        };
        debug!(kind = msg.kind(), "from server");
        match msg {
            ServerMessage::Invite(invite) => {
                let route = self.routes.open(invite.call_id.clone());
                let _ = self.notices.send(Notice::Invite(invite, route));
            }
            ServerMessage::Error(e) if e.call_id.is_none() => {
                let _ = self.notices.send(Notice::Error(Error::Server {
                    code: e.code,
                    message: e.message,
                }));
            }
            msg => {
                if let Some(call_id) = msg.call_id().cloned() {
                    self.routes.deliver(&call_id, msg);
                }
            }
        }
    }
}
