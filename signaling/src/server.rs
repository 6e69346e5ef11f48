//! The axum application: routes, shared state, the timer task, graceful shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};
use turn_relay::TurnServer;

use crate::clock;
use crate::cluster;
use crate::config::Config;
use crate::connection;
use crate::http::{self, HttpLimits};
use crate::ice::IceConfig;
use crate::tls::TlsListener;
use crate::turn;
use crate::upgrade;
use crate::web_demo;
use switchboard::{ConnId, MemoryRegistry, Metrics, Output, Switchboard};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The WebSocket listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// The embedded TURN relay could not start.
    #[error("embedded TURN relay: {0}")]
    Turn(#[from] turn_relay::StartError),
    /// Redis (`redis_url`) could not be reached.
    #[error("cluster: {0}")]
    Cluster(#[from] signaling_cluster::ClusterError),
}

/// How the switchboard and the server reach a connection task.
///
/// One `Notify` for every reason to wake (messages queued, a close, the server shutting
/// down), and flags that say which: each `notified()` future a connection waits on is
/// ~70 bytes in every idle connection's task.
#[derive(Default)]
pub(crate) struct ConnSignal {
    notify: Notify,
    /// [`Self::CLOSE`] and [`Self::SHUTDOWN`] bits; none set: messages are queued.
    state: AtomicU8,
    close_frame: Mutex<Option<(u16, &'static str)>>,
}

/// Why a connection task was woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// Messages are queued for it.
    Wake,
    /// The switchboard closes it (with the frame [`ConnSignal::take_close_frame`] returns).
    Close,
    /// The server is shutting down.
    Shutdown,
}

impl ConnSignal {
    const CLOSE: u8 = 1;
    const SHUTDOWN: u8 = 2;

    /// Wakes the task: messages are queued, or (from the task itself) a signal it saw
    /// during a write is left to its main loop, which reads the flags again.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// The task closes the connection with this frame.
    fn close(&self, code: u16, reason: &'static str) {
        *self
            .close_frame
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((code, reason));
        self.state.fetch_or(Self::CLOSE, Ordering::Release);
        self.notify.notify_one();
    }

    /// The task closes the connection with 1001.
    fn shut_down(&self) {
        self.state.fetch_or(Self::SHUTDOWN, Ordering::Release);
        self.notify.notify_one();
    }

    /// Waits for the next signal (one that came while nobody waited is not lost).
    pub async fn next(&self) -> Signal {
        self.notify.notified().await;
        self.current()
    }

    /// What the last wake-up asked, a close first (as the switchboard decided it).
    fn current(&self) -> Signal {
        let state = self.state.load(Ordering::Acquire);
        if state & Self::CLOSE != 0 {
            Signal::Close
        } else if state & Self::SHUTDOWN != 0 {
            Signal::Shutdown
        } else {
            Signal::Wake
        }
    }

    /// The close frame the switchboard asked for, once.
    pub fn take_close_frame(&self) -> Option<(u16, &'static str)> {
        self.close_frame
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// The switchboard and the connections it can wake, under one lock.
pub(crate) struct Hub {
    board: Switchboard<MemoryRegistry>,
    conns: HashMap<ConnId, Arc<ConnSignal>>,
    /// The deadline the timer task sleeps until.
    armed: Option<Instant>,
    /// In a cluster: where the cluster outputs go.
    outbound: Option<cluster::Outbound>,
}

impl Hub {
    /// Carries out the switchboard's outputs and re-arms the timer if needed.
    fn dispatch(&mut self, timer: &Notify) {
        while let Some(out) = self.board.poll_output() {
            match out {
                Output::Wake(conn) => {
                    if let Some(s) = self.conns.get(&conn) {
                        s.wake();
                    }
                }
                Output::Close { conn, code, reason } => {
                    if let Some(s) = self.conns.get(&conn) {
                        s.close(code, reason);
                    }
                }
                // Only a clustered switchboard emits these.
                out @ (Output::Lookup { .. }
                | Output::Node { .. }
                | Output::Registered { .. }
                | Output::Unregistered { .. }) => {
                    if let Some(outbound) = &self.outbound {
                        outbound.push(out);
                    }
                }
            }
        }
        let next = self.board.poll_timeout();
        if next.is_some() && self.armed.is_none_or(|armed| next < Some(armed)) {
            self.armed = next;
            timer.notify_one();
        }
    }
}

/// State shared by every request and connection task.
pub(crate) struct Shared {
    hub: Mutex<Hub>,
    timer: Notify,
    pub config: Config,
    pub ice: IceConfig,
    pub metrics: Metrics,
    /// The embedded relay's metrics, served on the same /metrics.
    turn_metrics: Option<turn_relay::Metrics>,
    /// The cluster this node is part of (`redis_url`).
    pub cluster: Option<signaling_cluster::Cluster>,
    /// Cluster outputs not carried out yet (a draining node waits for them).
    cluster_pending: Option<cluster::Pending>,
    next_conn: AtomicU64,
    open_conns: AtomicUsize,
    pub shutdown: CancellationToken,
    /// Cancelled when the node stops taking connections (draining, or shutting down).
    accepting: CancellationToken,
    /// Cancelled once the public listening socket is closed after `accepting`.
    listener_closed: CancellationToken,
    tracker: TaskTracker,
}

impl Shared {
    fn new(
        config: Config,
        ice: IceConfig,
        turn_metrics: Option<turn_relay::Metrics>,
        link: Option<(&signaling_cluster::Cluster, cluster::Outbound)>,
    ) -> Self {
        let metrics = Metrics::new();
        let mut board = Switchboard::new(
            config.switchboard(),
            MemoryRegistry::default(),
            metrics.clone(),
            clock::random_seed(),
            clock::now(),
        );
        if let Some((joined, _)) = &link {
            board = board.clustered(switchboard::NodeId::new(joined.node().as_str()));
        }
        let (cluster, outbound) = link.map(|(c, o)| (c.clone(), o)).unzip();
        let cluster_pending = outbound.as_ref().map(cluster::Outbound::pending);
        let shutdown = CancellationToken::new();
        Self {
            hub: Mutex::new(Hub {
                board,
                conns: HashMap::new(),
                armed: None,
                outbound,
            }),
            timer: Notify::new(),
            ice,
            config,
            metrics,
            turn_metrics,
            cluster,
            cluster_pending,
            next_conn: AtomicU64::new(1),
            open_conns: AtomicUsize::new(0),
            accepting: shutdown.child_token(),
            listener_closed: CancellationToken::new(),
            shutdown,
            tracker: TaskTracker::new(),
        }
    }

    /// Runs `f` on the switchboard, then carries out what it asked for.
    pub fn with_board<T>(&self, f: impl FnOnce(&mut Switchboard<MemoryRegistry>) -> T) -> T {
        let mut hub = self.hub.lock().unwrap_or_else(PoisonError::into_inner);
        let out = f(&mut hub.board);
        hub.dispatch(&self.timer);
        out
    }

    pub fn register(&self, conn: ConnId) -> Arc<ConnSignal> {
        let signal = Arc::new(ConnSignal::default());
        let mut hub = self.hub.lock().unwrap_or_else(PoisonError::into_inner);
        // Under the hub's lock, as `shut_down_conns` looks: a connection that registers
        // while the server stops is told either way.
        if self.shutdown.is_cancelled() {
            signal.shut_down();
        }
        hub.conns.insert(conn, signal.clone());
        signal
    }

    /// Tells every connection task that the server is shutting down.
    fn shut_down_conns(&self) {
        let hub = self.hub.lock().unwrap_or_else(PoisonError::into_inner);
        for signal in hub.conns.values() {
            signal.shut_down();
        }
    }

    pub fn unregister(&self, conn: ConnId) {
        self.hub
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .conns
            .remove(&conn);
        self.open_conns.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    http: JoinHandle<std::io::Result<()>>,
    metrics_http: Option<JoinHandle<std::io::Result<()>>>,
    timer: JoinHandle<()>,
    turn: Option<TurnServer>,
}

impl Server {
    /// Binds `config.listen` and starts serving.
    pub async fn start(config: Config) -> Result<Server, StartError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let metrics_listener = match config.metrics_listen {
            Some(at) => {
                let bind_error = |source| StartError::Bind { addr: at, source };
                let listener = TcpListener::bind(at).await.map_err(bind_error)?;
                let bound = listener.local_addr().map_err(bind_error)?;
                Some((listener, bound))
            }
            None => None,
        };
        let mut ice = config.ice();
        let turn = match &config.turn {
            Some(embedded) => {
                // The relay and welcome.ice_servers share the REST secret; without one
                // configured, a random one lives as long as the process.
                let secret = ice.turn_secret.clone().unwrap_or_else(clock::random_secret);
                let (server, urls) = turn::start(embedded, &secret).await?;
                if ice.urls.is_empty() {
                    ice.urls = urls;
                }
                ice.turn_secret = Some(secret);
                Some(server)
            }
            None => None,
        };
        let turn_metrics = turn.as_ref().map(|t| t.metrics().clone());
        let joined = match &config.cluster {
            Some(settings) => Some(cluster::join(settings).await?),
            None => None,
        };
        let (link, outbound) = joined.unzip();
        let handle = link.as_ref().map(|l| l.cluster.clone());
        let shared = Arc::new(Shared::new(
            config,
            ice,
            turn_metrics,
            handle.as_ref().zip(outbound),
        ));
        if let Some(link) = link {
            link.start(shared.clone());
        }
        let token = shared.shutdown.clone();
        let app = router(shared.clone());
        let tls = shared.config.tls.clone();
        // Signaling messages are small and latency-bound: never hold them back for Nagle.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        let limits = HttpLimits {
            header_timeout: shared.config.http_header_timeout,
            max_connections: shared.config.max_http_connections,
        };
        let (accepting, closed) = (shared.accepting.clone(), shared.listener_closed.clone());
        let http = match tls.clone() {
            Some(tls) => spawn_http(
                TlsListener::new(listener, tls),
                app,
                accepting,
                closed,
                limits,
            ),
            None => spawn_http(listener, app, accepting, closed, limits),
        };
        let metrics_addr = metrics_listener.as_ref().map(|(_, bound)| *bound);
        let metrics_http = metrics_listener.map(|(listener, _)| {
            let closed = CancellationToken::new();
            spawn_http(
                listener,
                metrics_router(shared.clone()),
                token,
                closed,
                limits,
            )
        });
        let timer = tokio::spawn(run_timers(shared.clone()));
        info!(%addr, tls = tls.is_some(), metrics = ?metrics_addr, "signaling server listening");
        Ok(Server {
            addr,
            metrics_addr,
            shared,
            http,
            metrics_http,
            timer,
            turn,
        })
    }

    /// The address the server listens on (with the port chosen for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `GET /metrics` is served (`metrics_listen`, with the port chosen for port 0).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Whether the listener serves HTTPS and WSS (`tls_cert` and `tls_key`).
    pub fn is_tls(&self) -> bool {
        self.shared.config.tls.is_some()
    }

    /// Reads the listener's certificate and key files again (the binary does it on
    /// `SIGHUP`): new connections get the new certificate, open ones keep theirs. If the
    /// files cannot be used, the old certificate stays and the error says why. Without
    /// TLS there is nothing to reload: `Ok(false)`.
    pub fn reload_tls(&self) -> Result<bool, crate::ConfigError> {
        match &self.shared.config.tls {
            Some(tls) => tls.reload().map(|()| true),
            None => Ok(false),
        }
    }

    /// In a cluster: this node's name and the Redis URL (password hidden).
    pub fn cluster(&self) -> Option<(String, String)> {
        let settings = self.shared.config.cluster.as_ref()?;
        let config = signaling_cluster::ClusterConfig::new(
            settings.redis_url.clone(),
            settings.node.clone(),
        );
        Some((settings.node.to_string(), config.redacted_url()))
    }

    /// The embedded relay, when it runs.
    pub fn turn(&self) -> Option<&TurnServer> {
        self.turn.as_ref()
    }

    /// The STUN/TURN URLs handed out in `welcome.ice_servers`.
    pub fn ice_urls(&self) -> &[String] {
        &self.shared.ice.urls
    }

    /// Live sessions on this node, connected or waiting for a resume.
    pub fn session_count(&self) -> usize {
        self.shared.with_board(|b| b.session_count())
    }

    /// In a cluster, drains this node (SIGTERM): stops taking connections, tells every
    /// client to resume elsewhere (close code 4001, through the load balancer), and waits
    /// until their sessions and calls have moved to the nodes they came back on, or
    /// `drain_timeout` passed. Then [`Self::shutdown`] finishes; what is left ends there
    /// (the other parties hear `peer_lost`). Alone, there is nowhere to move to: returns at
    /// once. Returns whether everything moved.
    pub async fn drain(&self) -> bool {
        let Some(settings) = &self.shared.config.cluster else {
            return true;
        };
        self.shared.accepting.cancel();
        // Refusing connections before the clients are told to move: one that came back
        // here would be told again.
        let closing = self.shared.listener_closed.cancelled();
        if tokio::time::timeout(Duration::from_secs(1), closing)
            .await
            .is_err()
        {
            warn!("the listener did not close within 1 s; draining anyway");
        }
        let started = clock::now();
        let (sessions, calls) = self.shared.with_board(|b| {
            b.drain(started);
            (b.session_count(), b.call_count())
        });
        info!(
            sessions,
            calls, "draining: clients told to resume on another node"
        );
        let deadline = started.checked_add(settings.drain_timeout);
        let mut check = tokio::time::interval(Duration::from_millis(50));
        loop {
            check.tick().await;
            let (drained, sessions, calls) = self
                .shared
                .with_board(|b| (b.drained(), b.session_count(), b.call_count()));
            // Everything handed over must also have left for its node through Redis.
            let unsent = self
                .shared
                .cluster_pending
                .as_ref()
                .map_or(0, |p| p.count());
            if drained && unsent == 0 {
                let took = clock::now().duration_since(started);
                info!(
                    took_ms = took.as_millis(),
                    "drained: every session and call moved"
                );
                return true;
            }
            if deadline.is_some_and(|d| clock::now() >= d) {
                warn!(
                    sessions,
                    calls, "drain timeout: exiting with sessions that did not move"
                );
                return false;
            }
        }
    }

    /// Stops accepting, closes every WebSocket with 1001 and waits (at most 5 s for the
    /// listener, 5 s for the connections) for everything to finish; then gives up on stragglers.
    pub async fn shutdown(self) {
        const GRACE: Duration = Duration::from_secs(5);
        self.shared.shutdown.cancel();
        self.shared.shut_down_conns();
        let http_abort = self.http.abort_handle();
        if tokio::time::timeout(GRACE, self.http).await.is_err() {
            warn!("the HTTP listener did not stop within 5 s; aborting it");
            http_abort.abort();
        }
        if let Some(metrics_http) = self.metrics_http {
            let abort = metrics_http.abort_handle();
            if tokio::time::timeout(GRACE, metrics_http).await.is_err() {
                abort.abort();
            }
        }
        self.shared.tracker.close();
        if tokio::time::timeout(GRACE, self.shared.tracker.wait())
            .await
            .is_err()
        {
            warn!("some connections did not close within 5 s");
        }
        let timer_abort = self.timer.abort_handle();
        if tokio::time::timeout(GRACE, self.timer).await.is_err() {
            timer_abort.abort();
        }
        if let Some(turn) = self.turn {
            turn.shutdown().await;
        }
        if let Some(cluster) = self.shared.cluster.clone()
            && let Err(e) = cluster.leave().await
        {
            warn!(error = %e, "could not leave the cluster cleanly; its lease will expire");
        }
        info!("signaling server stopped");
    }
}

/// Serves `app` on `listener` until `stop` is cancelled (the HTTP limits: `http.rs`).
fn spawn_http<L>(
    listener: L,
    app: Router,
    stop: CancellationToken,
    closed: CancellationToken,
    limits: HttpLimits,
) -> JoinHandle<std::io::Result<()>>
where
    L: axum::serve::Listener,
{
    tokio::spawn(http::serve(listener, app, stop, closed, limits))
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/ws", get(ws_upgrade))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .fallback(get(web_demo::serve))
        .with_state(shared)
}

/// Whether this node can serve everyone: always alone, and in a cluster while Redis
/// answers (503 otherwise, so that a load balancer sends new users elsewhere; calls whose
/// parties share this node go on meanwhile).
async fn ready(State(shared): State<Arc<Shared>>) -> Response {
    match &shared.cluster {
        Some(c) if !c.is_ready() => {
            (StatusCode::SERVICE_UNAVAILABLE, "redis unreachable\n").into_response()
        }
        _ => "ok\n".into_response(),
    }
}

/// The metrics listener's routes: `/metrics` only. Counters by user-facing message type and
/// error code tell an attacker what works, so they never share the user-facing listener.
fn metrics_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(shared)
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    let mut text = shared.metrics.encode();
    if let Some(cluster) = &shared.cluster {
        let mut registry = prometheus_client::registry::Registry::default();
        cluster.metrics().register(&mut registry);
        let mut more = String::new();
        if prometheus_client::encoding::text::encode(&mut more, &registry).is_ok() {
            let body_end = text.trim_end().strip_suffix("# EOF").map(str::len);
            text.truncate(body_end.unwrap_or(text.len()));
            text.push_str(&more);
        }
    }
    if let Some(turn) = &shared.turn_metrics {
        // One exposition: a single `# EOF` at the very end.
        let body_end = text.trim_end().strip_suffix("# EOF").map(str::len);
        text.truncate(body_end.unwrap_or(text.len()));
        text.push_str(&turn.encode());
    }
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

async fn ws_upgrade(State(shared): State<Arc<Shared>>, mut req: Request) -> Response {
    let allowed = &shared.config.allowed_origins;
    if let Some(origin) = req.headers().get(header::ORIGIN)
        && !allowed.is_empty()
        && !allowed.iter().any(|a| a.as_bytes() == origin.as_bytes())
    {
        return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
    }
    let (response, on_upgrade) = match upgrade::accept(&mut req) {
        Ok(accepted) => accepted,
        Err(e) => return e.into_response(),
    };
    if shared.open_conns.fetch_add(1, Ordering::Relaxed) >= shared.config.max_connections {
        shared.open_conns.fetch_sub(1, Ordering::Relaxed);
        return (StatusCode::SERVICE_UNAVAILABLE, "too many connections\n").into_response();
    }
    let conn = ConnId(shared.next_conn.fetch_add(1, Ordering::Relaxed));
    let tracker = shared.tracker.clone();
    tracker.spawn(async move {
        let max = shared.config.max_message_bytes;
        match upgrade::complete(on_upgrade, max, connection::READ_BUFFER).await {
            // A task of its own, which this one (the upgrade) does not share its memory
            // with: an idle connection's task is as small as the connection's own future.
            Some(socket) => {
                let tracker = shared.tracker.clone();
                tracker.spawn(connection::serve(socket, shared, conn));
            }
            None => {
                shared.open_conns.fetch_sub(1, Ordering::Relaxed);
            }
        }
    });
    response
}

/// Sleeps until the switchboard's next deadline (or until it arms an earlier one).
async fn run_timers(shared: Arc<Shared>) {
    loop {
        let next = {
            let mut hub = shared.hub.lock().unwrap_or_else(PoisonError::into_inner);
            hub.armed = hub.board.poll_timeout();
            hub.armed
        };
        let wait = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = wait => shared.with_board(|b| b.handle_timeout(clock::now())),
            () = shared.timer.notified() => {}
            () = shared.shutdown.cancelled() => return,
        }
    }
}
