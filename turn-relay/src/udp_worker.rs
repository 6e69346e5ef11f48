//! The UDP side of the relay: a few worker threads, each an event loop (mio over epoll)
//! over its own socket on every UDP listening address (`SO_REUSEPORT` spreads clients over
//! the workers) and over the relay sockets of the allocations it serves. There is no task
//! and no buffer per allocation: a worker reads up to [`BATCH_SIZE`] datagrams a system
//! call (`recvmmsg`) into buffers it owns (on the listening sockets with UDP GRO on, so a
//! client's back-to-back datagrams can come as one buffer, split again here), runs the core
//! on all of them under one lock, and sends runs of datagrams that go the same way as one
//! UDP GSO send (`quinn-udp` does the system calls: it is the batched UDP I/O that quinn
//! and webrtc-rs use).
//!
//! Nothing here decides anything about the protocol: that is the core's business
//! ([`turn_proto::Relay`]), as in the TCP/TLS shell.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use quinn_udp::{BATCH_SIZE, RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use tokio::sync::mpsc;

use server_kit::clock;
use turn_proto::framing::CHANNEL_HEADER;
use turn_proto::{AllocId, FiveTuple, FromPeer, Metrics, Transport};

use crate::server::{Action, MAX_PACKET, Shared, handle, now};

/// The waker's token; listeners are `0..listeners`, relay sockets from [`FIRST_RELAY`].
const WAKER: Token = Token(usize::MAX);
const FIRST_RELAY: usize = 1 << 20;
/// One receive buffer: the largest datagram with room for a ChannelData header in front
/// and padding behind.
const SLOT: usize = MAX_PACKET;
/// Payload bytes at most in one GSO send (a UDP datagram carries 65,507 at most).
const GSO_BYTES: usize = 65_000;
/// Readiness events taken per `epoll_wait`.
const EVENTS: usize = 1024;

/// Where an allocation's relayed data goes back to its client.
#[derive(Clone)]
pub(crate) enum ClientSink {
    /// From the listening socket the client talks to, to the client's address.
    Udp {
        /// One of the worker's listening sockets.
        socket: Arc<UdpSocket>,
        /// The client.
        to: SocketAddr,
    },
    /// Into the queue of the TCP/TLS connection's writer task.
    Stream(mpsc::Sender<Vec<u8>>),
}

impl ClientSink {
    /// Sends one message now (UDP: non-blocking, dropped and counted if the socket's
    /// buffer is full, as the network would).
    pub(crate) fn send(&self, bytes: Vec<u8>, metrics: &Metrics) {
        match self {
            ClientSink::Udp { socket, to } => send_or_count(socket, &bytes, *to, metrics),
            ClientSink::Stream(tx) => {
                if tx.try_send(bytes).is_err() {
                    metrics.dropped("stream_queue_full");
                }
            }
        }
    }
}

/// Sends one datagram without waiting: one the socket cannot take now (a full buffer) is
/// dropped and counted as `send_failed`, as the network would drop it.
fn send_or_count(socket: &UdpSocket, data: &[u8], to: SocketAddr, metrics: &Metrics) {
    if socket.send_to(data, to).is_err() {
        metrics.dropped("send_failed");
    }
}

/// An allocation's relay socket as the shell holds it: the core stores it as its handle.
pub(crate) struct RelayIo {
    id: AllocId,
    socket: UdpSocket,
    client: ClientSink,
    /// Weak: the worker's table holds the socket, and a cycle would keep both (and the
    /// relay port) alive after the worker stopped.
    worker: Weak<WorkerHandle>,
    token: usize,
    closed: AtomicBool,
}

/// The shell's handle of an allocation ([`turn_proto::Relay`]'s `H`).
pub(crate) type Handle = Arc<RelayIo>;

impl RelayIo {
    /// Stops reading the socket; it closes when the last reference goes (at once, unless
    /// a worker is sending a batch through it this instant).
    pub(crate) fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(worker) = self.worker.upgrade() else {
            return;
        };
        let fd = self.socket.as_raw_fd();
        let _ = worker.registry.deregister(&mut SourceFd(&fd));
        worker.relays().remove(&self.token);
    }

    /// Sends one datagram to `peer` (non-blocking: a full socket buffer drops it, counted).
    pub(crate) fn send_to(&self, data: &[u8], peer: SocketAddr, metrics: &Metrics) {
        send_or_count(&self.socket, data, peer, metrics);
    }
}

/// What other threads hold of a worker: they register relay sockets with its poll and
/// stop it.
pub(crate) struct WorkerHandle {
    registry: mio::Registry,
    waker: Waker,
    relays: Mutex<HashMap<usize, Handle>>,
    next_token: AtomicUsize,
    stop: AtomicBool,
}

impl WorkerHandle {
    fn relays(&self) -> MutexGuard<'_, HashMap<usize, Handle>> {
        self.relays.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `socket` the relay socket of allocation `id`, read by this worker from now on.
    pub(crate) fn add_relay(
        self: &Arc<Self>,
        id: AllocId,
        socket: UdpSocket,
        client: ClientSink,
    ) -> io::Result<Handle> {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let io = Arc::new(RelayIo {
            id,
            socket,
            client,
            worker: Arc::downgrade(self),
            token,
            closed: AtomicBool::new(false),
        });
        // In the table first: a datagram may be ready the instant it is registered.
        self.relays().insert(token, io.clone());
        let fd = io.socket.as_raw_fd();
        if let Err(e) = self
            .registry
            .register(&mut SourceFd(&fd), Token(token), Interest::READABLE)
        {
            self.relays().remove(&token);
            return Err(e);
        }
        Ok(io)
    }
}

/// The running workers; dropping this stops them (without waiting).
pub(crate) struct UdpWorkers {
    handles: Vec<Arc<WorkerHandle>>,
    threads: Vec<JoinHandle<()>>,
}

impl UdpWorkers {
    fn signal_stop(&self) {
        for h in &self.handles {
            h.stop.store(true, Ordering::Release);
            let _ = h.waker.wake();
        }
    }

    /// Stops every worker and waits for its thread (a worker notices within one batch).
    pub(crate) fn stop_and_join(mut self) {
        self.signal_stop();
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
    }
}

impl Drop for UdpWorkers {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// The workers' handles, for the shell to hand relay sockets of TCP/TLS allocations to.
pub(crate) struct WorkerPool {
    handles: Vec<Arc<WorkerHandle>>,
    next: AtomicUsize,
}

impl WorkerPool {
    /// The worker for an allocation that did not come in over UDP: each in turn.
    pub(crate) fn pick(&self) -> Arc<WorkerHandle> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[i].clone()
    }
}

/// Workers chosen automatically at most: they share the core's lock (once per batch), and
/// more than this was never measured. `--udp-threads` sets any number.
const AUTO_WORKERS_MAX: usize = 8;

/// The number of workers for `asked` (0: one per CPU this process may run on, at most
/// [`AUTO_WORKERS_MAX`]).
pub(crate) fn worker_count(asked: usize) -> usize {
    match asked {
        0 => std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(AUTO_WORKERS_MAX),
        n => n,
    }
}

/// Workers with their sockets bound, not yet running ([`Prepared::run`]).
pub(crate) struct Prepared {
    workers: Vec<Worker>,
    /// The listening addresses, ports resolved.
    pub(crate) addrs: Vec<SocketAddr>,
    /// The address a failure not about one socket is reported with (the first asked for).
    any: SocketAddr,
}

/// Binds `count` sockets on each of `addrs` (sharing the port through `SO_REUSEPORT` when
/// there are several; port 0 resolves once) for `count` workers, each of which will serve
/// its own socket of every address. On failure, the address that could not be bound.
pub(crate) fn prepare(
    addrs: &[SocketAddr],
    count: usize,
    buffer: usize,
) -> Result<Prepared, (SocketAddr, io::Error)> {
    let count = count.max(1);
    let mut resolved = Vec::new();
    let mut sockets: Vec<Vec<(Arc<UdpSocket>, SocketAddr)>> = vec![Vec::new(); count];
    for addr in addrs {
        let mut at = *addr;
        for (i, listeners) in sockets.iter_mut().enumerate() {
            let socket = bind(at, buffer, count > 1).map_err(|e| (*addr, e))?;
            enable_gro(&socket);
            at = socket.local_addr().unwrap_or(at);
            if i == 0
                && let Some(got) = receive_buffer_short(&socket, buffer)
            {
                tracing::warn!(
                    listen = %at,
                    asked = buffer,
                    granted = got,
                    "the kernel capped the UDP receive buffer (net.core.rmem_max): bursts \
                     longer than it will be dropped; raise it (docs/deploy.md)"
                );
            }
            listeners.push((Arc::new(socket), at));
        }
        resolved.push(at);
    }
    let any = addrs
        .first()
        .copied()
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
    let workers = sockets
        .into_iter()
        .map(Worker::new)
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| (any, e))?;
    Ok(Prepared {
        workers,
        addrs: resolved,
        any,
    })
}

impl Prepared {
    /// The handles the shell hands relay sockets of TCP/TLS allocations to.
    pub(crate) fn pool(&self) -> WorkerPool {
        WorkerPool {
            handles: self.workers.iter().map(|w| w.handle.clone()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Starts one thread per worker; on failure, the error with the address [`prepare`]
    /// would name.
    pub(crate) fn run(self, shared: &Arc<Shared>) -> Result<UdpWorkers, (SocketAddr, io::Error)> {
        let mut running = UdpWorkers {
            handles: self.workers.iter().map(|w| w.handle.clone()).collect(),
            threads: Vec::new(),
        };
        for (index, worker) in self.workers.into_iter().enumerate() {
            let shared = shared.clone();
            let thread = std::thread::Builder::new()
                .name(format!("turn-udp-{index}"))
                .spawn(move || {
                    let span = tracing::info_span!("udp_worker", index);
                    let _entered = span.enter();
                    let mut worker = worker;
                    // A panic would be a bug; the sockets and the other allocations must not
                    // go with it.
                    while std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        worker.run(&shared)
                    }))
                    .is_err()
                    {
                        tracing::error!("UDP worker panicked (a bug); it serves on");
                    }
                })
                .map_err(|e| (self.any, e))?;
            running.threads.push(thread);
        }
        Ok(running)
    }
}

/// A non-blocking UDP socket on `addr` with `buffer` bytes of send and receive buffer.
pub(crate) fn bind(addr: SocketAddr, buffer: usize, reuse_port: bool) -> io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    // Best effort: a smaller buffer is not a reason to refuse to serve.
    let _ = socket.set_recv_buffer_size(buffer);
    let _ = socket.set_send_buffer_size(buffer);
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Asks the kernel to hand over a client's back-to-back datagrams of one size as one
/// (`UDP_GRO`: the network card's or the stack's receive offload coalesces them; the
/// worker splits them again, [`segments`]), which saves a trip through the socket per
/// datagram. Best effort: where the kernel cannot, every datagram comes on its own.
fn enable_gro(socket: &UdpSocket) {
    #[cfg(target_os = "linux")]
    {
        let on: libc::c_int = 1;
        // SAFETY: a valid socket, and a pointer to an int of the size given.
        let result = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_UDP,
                libc::UDP_GRO,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if result != 0 {
            tracing::debug!(error = %io::Error::last_os_error(), "no UDP GRO on a listening socket");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}

/// The receive buffer `socket` was granted, if less than the `asked` bytes.
fn receive_buffer_short(socket: &UdpSocket, asked: usize) -> Option<usize> {
    let reported = socket2::SockRef::from(socket).recv_buffer_size().ok()?;
    // Linux reports twice what it granted (the other half is for its bookkeeping).
    let granted = if cfg!(target_os = "linux") {
        reported / 2
    } else {
        reported
    };
    (granted < asked).then_some(granted)
}

/// One datagram to send from the batch buffers: `bufs[at]` from `from` to `to`.
struct Out {
    from: Via,
    to: SocketAddr,
    at: Range<usize>,
}

/// The socket an [`Out`] leaves from.
enum Via {
    Relay(Handle),
    Listener(Arc<UdpSocket>),
}

impl Via {
    fn socket(&self) -> &UdpSocket {
        match self {
            Via::Relay(io) => &io.socket,
            Via::Listener(s) => s,
        }
    }

    fn same(&self, other: &Via) -> bool {
        match (self, other) {
            (Via::Relay(a), Via::Relay(b)) => Arc::ptr_eq(a, b),
            (Via::Listener(a), Via::Listener(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// A worker's own state: its poll, sockets and buffers, used by its thread alone.
struct Worker {
    poll: Poll,
    handle: Arc<WorkerHandle>,
    listeners: Vec<(Arc<UdpSocket>, SocketAddr)>,
    /// What the kernel can do (GSO segments); the same for every socket of the host.
    udp: UdpSocketState,
    /// [`BATCH_SIZE`] receive buffers of [`SLOT`] bytes, one after the other (pages the
    /// kernel never wrote stay untouched, so mostly unbacked).
    bufs: Vec<u8>,
    metas: [RecvMeta; BATCH_SIZE],
    /// Datagrams of this batch to send from `bufs`, in order.
    out: Vec<Out>,
    /// Messages of this batch the core built (STUN responses, Data indications) or that go
    /// to a TCP/TLS client.
    owned: Vec<(ClientSink, Vec<u8>)>,
    /// Where a run of same-way datagrams is put together for one GSO send.
    gso: Vec<u8>,
}

impl Worker {
    fn new(listeners: Vec<(Arc<UdpSocket>, SocketAddr)>) -> io::Result<Worker> {
        let poll = Poll::new()?;
        let handle = Arc::new(WorkerHandle {
            registry: poll.registry().try_clone()?,
            waker: Waker::new(poll.registry(), WAKER)?,
            relays: Mutex::default(),
            next_token: AtomicUsize::new(FIRST_RELAY),
            stop: AtomicBool::new(false),
        });
        for (i, (socket, _)) in listeners.iter().enumerate() {
            let fd = socket.as_raw_fd();
            poll.registry()
                .register(&mut SourceFd(&fd), Token(i), Interest::READABLE)?;
        }
        // The kernel's abilities, probed on a socket of our own so that the listening
        // sockets keep their default options.
        let probe = UdpSocket::bind("127.0.0.1:0")?;
        let udp = UdpSocketState::new(UdpSockRef::from(&probe))?;
        Ok(Worker {
            poll,
            handle,
            listeners,
            udp,
            bufs: vec![0u8; BATCH_SIZE * SLOT],
            metas: [RecvMeta::default(); BATCH_SIZE],
            out: Vec::with_capacity(BATCH_SIZE),
            owned: Vec::new(),
            gso: Vec::with_capacity(GSO_BYTES),
        })
    }

    /// Serves until stopped: waits for readiness, then gives every ready socket one batch
    /// in turn (a socket with more waiting goes to the back of the line, so one flooded
    /// socket cannot starve the others).
    fn run(&mut self, shared: &Arc<Shared>) {
        // Left over if the previous run panicked mid-batch.
        self.out.clear();
        self.owned.clear();
        let mut events = Events::with_capacity(EVENTS);
        // Every socket starts as ready: after a panic, readiness already reported (edge-
        // triggered: it is not reported again) must not leave data unread. A socket with
        // nothing waiting costs one read that finds it empty.
        let mut ready: VecDeque<usize> = (0..self.listeners.len())
            .chain(self.handle.relays().keys().copied())
            .collect();
        let mut queued: HashSet<usize> = ready.iter().copied().collect();
        loop {
            let timeout = (!ready.is_empty()).then_some(std::time::Duration::ZERO);
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                tracing::error!(error = %e, "UDP worker cannot poll; it stops");
                return;
            }
            if self.handle.stop.load(Ordering::Acquire) {
                // The relay sockets go with the worker (the core's handles no longer reach
                // it); the listening sockets with this struct.
                self.handle.relays().clear();
                return;
            }
            for event in events.iter() {
                let token = event.token().0;
                if token != WAKER.0 && queued.insert(token) {
                    ready.push_back(token);
                }
            }
            for _ in 0..ready.len() {
                let Some(token) = ready.pop_front() else {
                    break;
                };
                let more = if token < FIRST_RELAY {
                    self.serve_listener(shared, token)
                } else {
                    self.serve_relay(shared, token)
                };
                if more {
                    ready.push_back(token);
                } else {
                    queued.remove(&token);
                }
            }
        }
    }

    /// One batch from listening socket `index`: clients' STUN messages and ChannelData.
    /// Whether more may be waiting.
    fn serve_listener(&mut self, shared: &Arc<Shared>, index: usize) -> bool {
        let Some((socket, local)) = self.listeners.get(index).cloned() else {
            return false;
        };
        let n = match recv_batch(&self.udp, &socket, &mut self.bufs, 0, &mut self.metas) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            // Anything else (ENOMEM…) is not about the queued data: read again next round
            // (after the other ready sockets), or it would stay unread until more arrives.
            Err(_) => return true,
        };
        let now = now();
        {
            let mut core = shared.core();
            for (m, meta) in self.metas[..n].iter().enumerate() {
                let base = m * SLOT;
                let five_tuple = FiveTuple {
                    client: meta.addr,
                    server: local,
                    transport: Transport::Udp,
                };
                let sink = || ClientSink::Udp {
                    socket: socket.clone(),
                    to: meta.addr,
                };
                // With GRO, one buffer holds a client's back-to-back datagrams of one size
                // (the last may be shorter), each handled on its own, in order.
                for at in segments(base, meta.len, meta.stride) {
                    let start = at.start;
                    let packet = &self.bufs[at];
                    match handle(shared, &mut core, five_tuple, packet, now, sink, || {
                        self.handle.clone()
                    }) {
                        Action::Reply(bytes) => self.owned.push((sink(), bytes)),
                        Action::Forward { via, peer, payload } => self.out.push(Out {
                            from: Via::Relay(via),
                            to: peer,
                            at: start + payload.start..start + payload.end,
                        }),
                        Action::None => {}
                    }
                }
            }
        }
        self.send_batch(&shared.metrics);
        n == BATCH_SIZE
    }

    /// One batch from a relay socket: what peers send to an allocation.
    fn serve_relay(&mut self, shared: &Arc<Shared>, token: usize) -> bool {
        let Some(io) = self.handle.relays().get(&token).cloned() else {
            return false;
        };
        let n = match recv_batch(
            &self.udp,
            &io.socket,
            &mut self.bufs,
            CHANNEL_HEADER,
            &mut self.metas,
        ) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            // Anything else (ENOMEM…) is not about the queued data: read again next round
            // (after the other ready sockets), or it would stay unread until more arrives.
            Err(_) => return true,
        };
        let now = clock::now();
        {
            let mut core = shared.core();
            for (m, meta) in self.metas[..n].iter().enumerate() {
                let base = m * SLOT;
                let buf = &mut self.bufs[base..base + SLOT];
                match core.handle_peer(io.id, meta.addr, buf, meta.len, now) {
                    FromPeer::ChannelData(len) => match &io.client {
                        ClientSink::Udp { socket, to } => self.out.push(Out {
                            from: Via::Listener(socket.clone()),
                            to: *to,
                            at: base..base + len,
                        }),
                        stream => self.owned.push((stream.clone(), buf[..len].to_vec())),
                    },
                    FromPeer::Indication(bytes) => self.owned.push((io.client.clone(), bytes)),
                    FromPeer::Drop => {}
                }
            }
        }
        self.send_batch(&shared.metrics);
        n == BATCH_SIZE
    }

    /// Sends what the batch produced, in order within each socket: runs of datagrams from
    /// the same socket to the same address, all of one size but the last, as one GSO send.
    fn send_batch(&mut self, metrics: &Metrics) {
        for (sink, bytes) in self.owned.drain(..) {
            sink.send(bytes, metrics);
        }
        let max_segments = self.udp.max_gso_segments().max(1);
        let mut i = 0;
        while i < self.out.len() {
            let end = run_end(&self.out, i, max_segments);
            let run = &self.out[i..end];
            if run.len() == 1 || !send_gso(&self.udp, &mut self.gso, &self.bufs, run, metrics) {
                for out in run {
                    send_or_count(
                        out.from.socket(),
                        &self.bufs[out.at.clone()],
                        out.to,
                        metrics,
                    );
                }
            }
            i = end;
        }
        self.out.clear();
    }
}

/// The datagrams in a receive buffer at `base` holding `len` bytes: one, or with GRO
/// several of `stride` bytes (the last may be shorter). An empty datagram is one too.
fn segments(base: usize, len: usize, stride: usize) -> impl Iterator<Item = Range<usize>> {
    let stride = if stride == 0 || stride > len {
        len
    } else {
        stride
    };
    let count = if len == 0 { 1 } else { len.div_ceil(stride) };
    (0..count).map(move |i| {
        let start = base + i * stride;
        start..(start + stride).min(base + len)
    })
}

/// Where the run of datagrams starting at `out[i]` ends: same socket, same address, the
/// size of the first (the last may be shorter), at most `max_segments` and [`GSO_BYTES`].
fn run_end(out: &[Out], i: usize, max_segments: usize) -> usize {
    let first = &out[i];
    let size = first.at.len();
    // An empty datagram cannot be a GSO segment (it would vanish), and the kernel refuses
    // GSO to port 0, which would make quinn-udp turn GSO off for good: alone.
    if size == 0 || first.to.port() == 0 {
        return i + 1;
    }
    let (mut end, mut bytes) = (i + 1, size);
    while end < out.len() && end - i < max_segments {
        let next = &out[end];
        let len = next.at.len();
        if !next.from.same(&first.from) || next.to != first.to || len > size || len == 0 {
            break;
        }
        if bytes + len > GSO_BYTES {
            break;
        }
        bytes += len;
        end += 1;
        if len < size {
            break;
        }
    }
    end
}

/// Sends `run` as one GSO send; false if the kernel refused it for a reason that one
/// datagram at a time may not meet (the caller sends them one by one then).
fn send_gso(
    udp: &UdpSocketState,
    gso: &mut Vec<u8>,
    bufs: &[u8],
    run: &[Out],
    metrics: &Metrics,
) -> bool {
    gso.clear();
    for out in run {
        gso.extend_from_slice(&bufs[out.at.clone()]);
    }
    let transmit = Transmit {
        destination: run[0].to,
        ecn: None,
        contents: gso,
        segment_size: Some(run[0].at.len()),
        src_ip: None,
    };
    match udp.try_send(UdpSockRef::from(run[0].from.socket()), &transmit) {
        Ok(()) => true,
        // A full socket buffer: one at a time would find it full too (dropped, as the
        // network would).
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            for _ in run {
                metrics.dropped("send_failed");
            }
            true
        }
        Err(_) => false,
    }
}

/// Reads up to [`BATCH_SIZE`] datagrams from `socket`, each into its [`SLOT`] of `bufs`
/// from offset `skip` (and leaving 3 bytes behind for padding).
fn recv_batch(
    udp: &UdpSocketState,
    socket: &UdpSocket,
    bufs: &mut [u8],
    skip: usize,
    metas: &mut [RecvMeta; BATCH_SIZE],
) -> io::Result<usize> {
    let mut slots = bufs.chunks_exact_mut(SLOT);
    let mut iovs: [IoSliceMut<'_>; BATCH_SIZE] = std::array::from_fn(|_| {
        let slot = slots.next().map_or(&mut [][..], |s| &mut s[skip..SLOT - 3]);
        IoSliceMut::new(slot)
    });
    udp.recv(UdpSockRef::from(socket), &mut iovs, metas)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_splits_into_its_datagrams() {
        // (start, end) pairs: clippy reads a one-element array of ranges as a mistake.
        let split = |base, len, stride| {
            segments(base, len, stride)
                .map(|r| (r.start, r.end))
                .collect::<Vec<_>>()
        };
        // Without GRO the stride is the length: one datagram.
        assert_eq!(split(100, 40, 40), [(100, 140)]);
        assert_eq!(
            split(0, 350, 100),
            [(0, 100), (100, 200), (200, 300), (300, 350)]
        );
        assert_eq!(split(10, 300, 100), [(10, 110), (110, 210), (210, 310)]);
        // An empty datagram is still one (the core counts it as malformed).
        assert_eq!(split(7, 0, 0), [(7, 7)]);
        // A stride the kernel would never give is taken as the whole.
        assert_eq!(split(0, 50, 0), [(0, 50)]);
        assert_eq!(split(0, 50, 80), [(0, 50)]);
    }

    #[test]
    fn a_capped_receive_buffer_is_noticed() {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        // More than any net.core.rmem_max: capped.
        let huge = 1 << 30;
        let granted = receive_buffer_short(&bind(loopback, huge, false).unwrap(), huge);
        assert!(granted.is_some_and(|g| g > 0 && g < huge), "{granted:?}");
        // Less than any default: granted whole.
        let small = 16 * 1024;
        assert_eq!(
            receive_buffer_short(&bind(loopback, small, false).unwrap(), small),
            None
        );
    }
}
