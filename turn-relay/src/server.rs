//! The shell around [`Relay`]: TCP and TLS listeners and connections (tokio tasks), the
//! timer task, and the UDP worker threads ([`crate::udp_worker`]), which serve the UDP
//! listeners and every relay socket. It reads the clock, owns the sockets and does what the
//! core says; every protocol decision is in the core.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use server_kit::clock;
use turn_proto::framing::{self, CHANNEL_HEADER};
use turn_proto::{
    BindFailure, FiveTuple, FromClient, Metrics, Now, Relay, RelaySettings, Transport,
};

use crate::udp_worker::{self, ClientSink, Handle, UdpWorkers, WorkerHandle, WorkerPool};

/// Largest datagram or frame handled (a UDP datagram cannot be larger).
pub(crate) const MAX_PACKET: usize = 65_535 + CHANNEL_HEADER + 4;
/// Frames queued towards one TCP/TLS client before further ones are dropped (as UDP would).
const STREAM_QUEUE: usize = 256;
/// Socket buffers asked for (the kernel caps them at net.core.rmem_max / wmem_max): the
/// 208 KiB default holds under 100 full-size datagrams, and a burst while the task is not
/// scheduled would be lost.
const LISTENER_BUFFER: usize = 4 * 1024 * 1024;
const RELAY_BUFFER: usize = 1024 * 1024;
/// First read buffer of a TCP/TLS connection (grown on demand up to [`MAX_PACKET`]).
const STREAM_BUFFER: usize = 4096;
/// A TCP/TLS client must finish its TLS handshake within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the relay listens; port 0 picks a free port (read it back from [`TurnServer`]).
#[derive(Clone, Default)]
pub struct Listeners {
    /// UDP listening addresses.
    pub udp: Vec<SocketAddr>,
    /// TCP listening addresses.
    pub tcp: Vec<SocketAddr>,
    /// TLS (`turns:`) listening addresses.
    pub tls: Vec<SocketAddr>,
    /// Required when `tls` is not empty.
    pub tls_config: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// Limits on TCP and TLS connections.
    pub streams: StreamLimits,
    /// Threads serving UDP (listeners and every relay socket); 0: one per CPU this
    /// process may run on, at most 8.
    pub udp_threads: usize,
}

/// Limits on TCP/TLS connections, which cost the relay a task and buffers each even
/// before they authenticate.
#[derive(Clone, Debug)]
pub struct StreamLimits {
    /// Open TCP/TLS connections at most, all listeners together; more are closed at once.
    pub max_connections: usize,
    /// Open TCP/TLS connections at most from one IP address (so that one host cannot take
    /// all of `max_connections`); more are closed at once.
    pub max_per_address: usize,
    /// A connection with no allocation is closed when no complete frame arrived for this
    /// long (bytes trickling in do not count: a frame must complete).
    pub idle: Duration,
    /// A write to the client that takes longer than this closes the connection (a client
    /// that never reads would otherwise be kept, with its queue, forever).
    pub write: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_per_address: 256,
            idle: Duration::from_secs(30),
            write: Duration::from_secs(10),
        }
    }
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listening socket could not be bound.
    #[error("cannot listen on {transport} {addr}: {source}")]
    Listen {
        /// `udp`, `tcp` or `tls`.
        transport: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// Why the bind failed.
        source: std::io::Error,
    },
    /// TLS listeners without [`Listeners::tls_config`].
    #[error("TLS listeners need a certificate and key (tls_cert, tls_key)")]
    NoTlsConfig,
}

/// A running relay; [`TurnServer::shutdown`] stops it.
pub struct TurnServer {
    /// The UDP addresses it listens on (ports resolved).
    pub udp: Vec<SocketAddr>,
    /// The TCP addresses it listens on.
    pub tcp: Vec<SocketAddr>,
    /// The TLS addresses it listens on.
    pub tls: Vec<SocketAddr>,
    metrics: Metrics,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    shared: Arc<Shared>,
    /// The UDP worker threads; dropped (or [`TurnServer::shutdown`]) stops them.
    workers: Option<UdpWorkers>,
}

/// What the UDP workers and the TCP/TLS tasks share: the core, behind one lock.
pub(crate) struct Shared {
    core: Mutex<Relay<Handle>>,
    pub(crate) metrics: Metrics,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    timer: tokio::sync::Notify,
    streams: StreamLimits,
    open_streams: Mutex<OpenStreams>,
    /// The UDP workers, which read every relay socket.
    udp: WorkerPool,
}

/// The TCP/TLS connections open now, in all and by client IP (only addresses with at least
/// one), against [`StreamLimits`].
#[derive(Default)]
struct OpenStreams {
    total: usize,
    by_ip: std::collections::HashMap<std::net::IpAddr, usize>,
}

/// One TCP/TLS connection's place in [`OpenStreams`], given back when dropped: however its
/// task ends, the counts cannot leak.
struct StreamSlot {
    shared: Arc<Shared>,
    ip: std::net::IpAddr,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.shared.open_streams();
        open.total -= 1;
        if let Some(n) = open.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.by_ip.remove(&self.ip);
            }
        }
    }
}

impl Shared {
    fn open_streams(&self) -> MutexGuard<'_, OpenStreams> {
        self.open_streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a new TCP/TLS connection from `ip`, or the limit it is over (the name
    /// of its drop counter).
    fn stream_slot(self: &Arc<Self>, ip: std::net::IpAddr) -> Result<StreamSlot, &'static str> {
        let mut open = self.open_streams();
        if open.total >= self.streams.max_connections {
            return Err("stream_limit");
        }
        let from_ip = open.by_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.streams.max_per_address {
            return Err("stream_address_limit");
        }
        open.total += 1;
        open.by_ip.insert(ip, from_ip + 1);
        Ok(StreamSlot {
            shared: self.clone(),
            ip,
        })
    }

    pub(crate) fn core(&self) -> MutexGuard<'_, Relay<Handle>> {
        // A panic while holding the lock would be a bug; keep serving regardless.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) fn now() -> Now {
    Now {
        mono: clock::now(),
        unix: clock::unix_now(),
    }
}

impl TurnServer {
    /// Binds every listener and starts serving, with metrics of its own.
    pub async fn start(settings: RelaySettings, listeners: Listeners) -> Result<Self, StartError> {
        let metrics = Metrics::new();
        Self::start_with_metrics(settings, listeners, metrics).await
    }

    /// [`TurnServer::start`] updating `metrics`, e.g. ones an embedding server exports.
    pub async fn start_with_metrics(
        settings: RelaySettings,
        listeners: Listeners,
        metrics: Metrics,
    ) -> Result<Self, StartError> {
        if !listeners.tls.is_empty() && listeners.tls_config.is_none() {
            return Err(StartError::NoTlsConfig);
        }
        note_ephemeral_overlap(&settings.ports);
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let core = Relay::new(
            settings,
            clock::random_seed(),
            metrics.clone(),
            clock::now(),
        );
        let workers = udp_worker::worker_count(listeners.udp_threads);
        let udp_error = |(addr, source)| StartError::Listen {
            transport: "udp",
            addr,
            source,
        };
        let udp =
            udp_worker::prepare(&listeners.udp, workers, LISTENER_BUFFER).map_err(udp_error)?;
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            metrics: metrics.clone(),
            tasks: tasks.clone(),
            shutdown: shutdown.clone(),
            timer: tokio::sync::Notify::new(),
            streams: listeners.streams.clone(),
            open_streams: Mutex::default(),
            udp: udp.pool(),
        });
        let mut server = TurnServer {
            udp: udp.addrs.clone(),
            tcp: Vec::new(),
            tls: Vec::new(),
            metrics,
            shutdown,
            tasks,
            shared: shared.clone(),
            workers: None,
        };
        let tls = listeners.tls_config.map(TlsAcceptor::from);
        let stream_listeners = listeners
            .tcp
            .iter()
            .map(|a| (a, Transport::Tcp))
            .chain(listeners.tls.iter().map(|a| (a, Transport::Tls)));
        for (addr, transport) in stream_listeners {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Listen {
                    transport: transport.as_str(),
                    addr: *addr,
                    source,
                })?;
            let local = listener.local_addr().unwrap_or(*addr);
            match transport {
                Transport::Tls => server.tls.push(local),
                _ => server.tcp.push(local),
            }
            let acceptor = (transport == Transport::Tls).then(|| tls.clone()).flatten();
            server.spawn(accept_streams(shared.clone(), listener, acceptor));
        }
        server.workers = Some(udp.run(&shared).map_err(udp_error)?);
        server.spawn(run_timers(shared));
        tracing::info!(udp = ?server.udp, tcp = ?server.tcp, tls = ?server.tls, udp_threads = workers, "TURN relay listening");
        Ok(server)
    }

    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, f: F) {
        let token = self.shutdown.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {}
                _ = f => {}
            }
        });
    }

    /// Its metrics (serve [`Metrics::encode`] at `/metrics`).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Allocations held right now.
    pub fn allocation_count(&self) -> usize {
        self.shared.core().allocation_count()
    }

    /// Stops every listener and allocation; waits at most 5 s for the tasks.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        self.tasks.close();
        if let Some(workers) = self.workers.take() {
            let _ = tokio::task::spawn_blocking(move || workers.stop_and_join()).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tasks.wait()).await;
    }
}

/// What the I/O loop does after the core decided.
pub(crate) enum Action {
    None,
    Reply(Vec<u8>),
    Forward {
        via: Handle,
        peer: SocketAddr,
        payload: std::ops::Range<usize>,
    },
}

/// Runs the core on one packet from a client; opens relay sockets (on the worker that
/// `worker` picks, asked only then) and closes them under the core's lock, so the core's
/// view and the sockets never disagree.
pub(crate) fn handle(
    shared: &Shared,
    core: &mut Relay<Handle>,
    from: FiveTuple,
    packet: &[u8],
    now: Now,
    sink: impl FnOnce() -> ClientSink,
    worker: impl FnOnce() -> Arc<WorkerHandle>,
) -> Action {
    match core.handle_client(from, packet, now) {
        FromClient::Drop => Action::None,
        FromClient::Reply(bytes) => Action::Reply(bytes),
        FromClient::Forward { via, peer, payload } => Action::Forward { via, peer, payload },
        FromClient::Close { handle, reply } => {
            handle.close();
            Action::Reply(reply)
        }
        FromClient::Open { id, relay } => {
            let (mut relay, sink, worker) = (relay, sink(), worker());
            loop {
                let opened = udp_worker::bind(relay, RELAY_BUFFER, false)
                    .and_then(|socket| worker.add_relay(id, socket, sink.clone()));
                match opened {
                    Ok(io) => {
                        tracing::debug!(id = id.0, %relay, "relay socket open");
                        let reply = core.relay_opened(id, io);
                        shared.timer.notify_one();
                        return Action::Reply(reply);
                    }
                    Err(e) => {
                        let why = if e.kind() == std::io::ErrorKind::AddrInUse {
                            tracing::debug!(%relay, error = %e, "relay port taken, trying another");
                            BindFailure::PortInUse
                        } else {
                            tracing::warn!(%relay, error = %e, "cannot bind a relay socket");
                            BindFailure::Other
                        };
                        match core.relay_failed(id, why) {
                            Ok(next) => relay = next,
                            Err(reply) => return Action::Reply(reply),
                        }
                    }
                }
            }
        }
    }
}

async fn run_timers(shared: Arc<Shared>) {
    loop {
        let next = shared.core().poll_timeout();
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = shared.timer.notified() => continue,
        }
        let closed = shared.core().handle_timeout(clock::now());
        for io in closed {
            io.close();
        }
    }
}

/// Says (at info level: the default range does) when the relay port range overlaps the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`, 32768-60999 on Linux by default; the default relay
/// range, 49152-65535 like coturn's, overlaps it). Ports that other programs take for their
/// outgoing connections are then taken for a while: binding one fails, and the Allocate is
/// retried on another port (no port is lost), but a busy host makes relays retry more.
fn note_ephemeral_overlap(ports: &std::ops::RangeInclusive<u16>) {
    let Ok(text) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") else {
        return;
    };
    let mut bounds = text
        .split_whitespace()
        .filter_map(|n| n.parse::<u16>().ok());
    let (Some(low), Some(high)) = (bounds.next(), bounds.next()) else {
        return;
    };
    if *ports.start() <= high && low <= *ports.end() {
        tracing::info!(
            relay_ports = ?ports,
            ephemeral = ?(low..=high),
            "the relay port range overlaps the kernel's ephemeral ports \
             (net.ipv4.ip_local_port_range): relay binds on ports other programs hold \
             are retried on another port; move --relay-ports or the ephemeral range apart \
             on a busy host"
        );
    }
}

/// How long the TCP listener pauses after an `accept()` failure that is not about one
/// connection (EMFILE, ENFILE, ENOMEM).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Failures that concern the one connection being accepted (it was reset or aborted before
/// we took it): the next `accept()` can go ahead at once.
fn accept_error_is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::Interrupted
    )
}

async fn accept_streams(shared: Arc<Shared>, listener: TcpListener, tls: Option<TlsAcceptor>) {
    loop {
        let (tcp, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) if accept_error_is_transient(&e) => continue,
            Err(e) => {
                // Out of file descriptors or memory: retrying at once spins a core and
                // fails the same way. Pause, as hyper and axum do, and let connections close.
                shared.metrics.dropped("accept_failed");
                tracing::warn!(error = %e, "accepting a TCP connection failed; pausing 1 s");
                tokio::time::sleep_until((clock::now() + ACCEPT_ERROR_PAUSE).into()).await;
                continue;
            }
        };
        let slot = match shared.stream_slot(client.ip()) {
            Ok(slot) => slot,
            Err(limit) => {
                shared.metrics.dropped(limit);
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let Ok(server) = tcp.local_addr() else {
            continue;
        };
        let transport = if tls.is_some() {
            Transport::Tls
        } else {
            Transport::Tcp
        };
        let five_tuple = FiveTuple {
            client,
            server,
            transport,
        };
        let span = tracing::debug_span!("turn_stream", %client, transport = transport.as_str());
        let (shared2, tls) = (shared.clone(), tls.clone());
        shared.tasks.spawn(
            async move {
                let shutdown = shared2.shutdown.clone();
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = serve_stream_conn(shared2.clone(), tcp, tls, five_tuple) => {}
                }
                if let Some(io) = shared2.core().client_closed(&five_tuple) {
                    io.close();
                }
                drop(slot);
            }
            .instrument(span),
        );
    }
}

async fn serve_stream_conn(
    shared: Arc<Shared>,
    tcp: TcpStream,
    tls: Option<TlsAcceptor>,
    five_tuple: FiveTuple,
) {
    match tls {
        None => serve_stream(shared, tcp, five_tuple).await,
        Some(acceptor) => {
            let Ok(Ok(stream)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            else {
                shared.metrics.dropped("tls_handshake");
                return;
            };
            serve_stream(shared, stream, five_tuple).await;
        }
    }
}

/// One TCP or TLS connection: frames in (RFC 8656 §12.5 framing), frames out through a
/// bounded queue written by a second task.
async fn serve_stream<S>(shared: Arc<Shared>, stream: S, five_tuple: FiveTuple)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(STREAM_QUEUE);
    let write_limit = shared.streams.write;
    let metrics = shared.metrics.clone();
    let mut writer_task = shared.tasks.spawn(async move {
        while let Some(frame) = rx.recv().await {
            match tokio::time::timeout(write_limit, writer.write_all(&frame)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    metrics.dropped("stream_write_timeout");
                    return;
                }
            }
        }
    });
    let sink = ClientSink::Stream(tx.clone());
    // Small until a client sends something larger: idle connections stay cheap.
    let mut buf = vec![0u8; STREAM_BUFFER];
    let mut filled = 0;
    // The idle clock runs from the last complete frame: a byte now and then does not
    // keep a connection (issue 16, item 5).
    let mut idle_until = clock::now() + shared.streams.idle;
    'read: loop {
        if filled == buf.len() {
            // A frame longer than what we hold: grow up to the largest frame there is.
            let grown = (buf.len() * 2).min(MAX_PACKET);
            if grown == buf.len() {
                break;
            }
            buf.resize(grown, 0);
        }
        let read = tokio::select! {
            read = tokio::time::timeout_at(idle_until.into(), reader.read(&mut buf[filled..])) => read,
            // The writer gave up (the client stopped reading): so does the reader.
            _ = &mut writer_task => break,
        };
        match read {
            Err(_) if shared.core().has_allocation(&five_tuple) => {
                idle_until = clock::now() + shared.streams.idle;
                continue;
            }
            Err(_) => {
                shared.metrics.dropped("stream_idle");
                break;
            }
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => filled += n,
        }
        let mut start = 0;
        loop {
            let frame_len = match framing::stream_frame_len(&buf[start..filled]) {
                Ok(Some(len)) if len > MAX_PACKET => break 'read,
                Ok(Some(len)) if start + len <= filled => len,
                Ok(_) => break,
                // Framing lost: a stream cannot resynchronise.
                Err(_) => {
                    shared.metrics.dropped("bad_framing");
                    break 'read;
                }
            };
            let frame = &buf[start..start + frame_len];
            let action = handle(
                &shared,
                &mut shared.core(),
                five_tuple,
                frame,
                now(),
                || sink.clone(),
                || shared.udp.pick(),
            );
            match action {
                Action::Reply(bytes) => {
                    if tx.send(bytes).await.is_err() {
                        break 'read;
                    }
                }
                Action::Forward { via, peer, payload } => {
                    via.send_to(&frame[payload], peer, &shared.metrics);
                }
                Action::None => {}
            }
            start += frame_len;
        }
        if start > 0 {
            // At least one whole frame in this read.
            idle_until = clock::now() + shared.streams.idle;
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
    }
    drop(tx);
    drop(sink);
    writer_task.abort();
}
