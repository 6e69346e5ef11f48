//! Connections to TURN servers over TCP and TLS (`turn:…?transport=tcp`, `turns:`).
//!
//! RFC 8656 §3.1: the client may reach its server over UDP, TCP or TLS-over-TCP; the
//! relayed address is UDP in every case, so the candidate it yields is an ordinary UDP
//! relay candidate. Over a stream, STUN and ChannelData messages follow each other with no
//! framing of their own (RFC 8656 §12.5; ChannelData padded to four bytes), which
//! [`TurnStreamDecoder`] splits. This is not ICE-TCP's RFC 4571 framing, so these
//! connections are kept apart from [`RTCTcpTransport`](super::tcp_transport::RTCTcpTransport).
//!
//! The [`RTCTurnRelayer`](super::turn_relayer::RTCTurnRelayer) decides which connections to
//! open ([`TurnStreamRequest`]); [`connect`] opens one on the runtime, off the driver's loop,
//! and hands the outcome back as a driver event; [`TurnStreams`] then reads and writes it.

use crate::peer_connection::driver::PeerConnectionDriverEvent;
use crate::runtime::{AsyncTcpStream, Runtime, Sender};
use bytes::BytesMut;
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use log::{debug, trace, warn};
use rtc::shared::turn_framing::TurnStreamDecoder;
use rtc::shared::{FourTuple, TaggedBytesMut, TransportContext, TransportProtocol};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes read from a TURN connection per call.
const TURN_STREAM_READ_BUF_LEN: usize = 16 * 1024;

/// How long a TCP connect plus TLS handshake to a TURN server may take. A server that
/// does not answer in this time yields no candidate from that URL, and gathering goes on.
pub(crate) const TURN_STREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection the relayer wants opened to a TURN server.
#[derive(Debug, Clone)]
pub(crate) struct TurnStreamRequest {
    /// Matches the outcome to the relayer's pending entry; never reused.
    pub(crate) id: u64,
    pub(crate) server_addr: SocketAddr,
    /// `Some(name)` for `turns:`: the name (or IP address) the certificate must be valid for.
    pub(crate) tls_server_name: Option<String>,
}

/// How TLS connections to TURN servers check certificates.
#[derive(Clone, Default)]
pub(crate) struct TurnTlsConfig {
    #[cfg(feature = "turn-tls")]
    pub(crate) client: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for TurnTlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TurnTlsConfig")
    }
}

#[cfg(feature = "turn-tls")]
impl TurnTlsConfig {
    /// The configuration for `turns:`: the caller's, or the Mozilla root set
    /// (`webpki-roots`) with rustls' ring provider.
    fn client_config(&self) -> io::Result<Arc<rustls::ClientConfig>> {
        if let Some(config) = &self.client {
            return Ok(Arc::clone(config));
        }
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

/// Whether this build can reach `turns:` servers.
pub(crate) fn tls_supported() -> bool {
    cfg!(feature = "turn-tls")
}

/// Opens the connection `request` asks for on `runtime`, then sends the outcome to the
/// driver as [`PeerConnectionDriverEvent::TurnStreamConnected`].
pub(crate) fn connect(
    request: TurnStreamRequest,
    tls: TurnTlsConfig,
    runtime: Arc<dyn Runtime>,
    tx: Sender<PeerConnectionDriverEvent>,
) {
    let task_runtime = Arc::clone(&runtime);
    runtime.spawn(Box::pin(async move {
        let attempt = open(&request, &tls, &*task_runtime);
        let result = match crate::runtime::timeout(
            &*task_runtime,
            TURN_STREAM_CONNECT_TIMEOUT,
            attempt,
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no connection to TURN server {} within {:?}",
                    request.server_addr, TURN_STREAM_CONNECT_TIMEOUT
                ),
            )),
        };
        // overflow: this task's only job is to hand the outcome over; a full channel parks
        // it alone, not the driver.
        let _ = tx
            .send(PeerConnectionDriverEvent::TurnStreamConnected(
                request.id, result,
            ))
            .await;
    }));
}

async fn open(
    request: &TurnStreamRequest,
    tls: &TurnTlsConfig,
    runtime: &dyn Runtime,
) -> io::Result<Arc<dyn AsyncTcpStream>> {
    let stream = runtime.connect_tcp(request.server_addr).await?;
    let Some(name) = &request.tls_server_name else {
        return Ok(stream);
    };
    #[cfg(feature = "turn-tls")]
    {
        let server_name = rustls::pki_types::ServerName::try_from(name.clone())
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        let config = tls.client_config()?;
        let tls_stream =
            super::tls_stream::TlsClientStream::connect(stream, config, server_name).await?;
        Ok(Arc::new(tls_stream))
    }
    #[cfg(not(feature = "turn-tls"))]
    {
        let _ = (tls, stream);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("turns: to {name} needs the `turn-tls` feature"),
        ))
    }
}

pub(crate) enum TurnStreamRead {
    Data {
        four_tuple: FourTuple,
        n: usize,
        buf: Vec<u8>,
    },
    Error {
        four_tuple: FourTuple,
        err: io::Error,
    },
}

/// What a read from a TURN connection produced.
pub(crate) enum TurnStreamInput {
    /// Whole TURN messages, to hand to the relayer.
    Messages(Vec<TaggedBytesMut>),
    /// The connection ended (closed, failed, or sent something that is not TURN).
    Closed(FourTuple),
}

struct TurnStream {
    stream: Arc<dyn AsyncTcpStream>,
    decoder: TurnStreamDecoder,
}

/// The open connections to TURN servers, by (local, server) address.
#[derive(Default)]
pub(crate) struct TurnStreams {
    streams: HashMap<FourTuple, TurnStream>,
    pub(crate) read_futures: FuturesUnordered<BoxFuture<'static, TurnStreamRead>>,
}

impl TurnStreams {
    /// Starts reading `stream`; returns its four-tuple.
    pub(crate) fn register(&mut self, stream: Arc<dyn AsyncTcpStream>) -> io::Result<FourTuple> {
        let four_tuple = FourTuple {
            local_addr: stream.local_addr()?,
            peer_addr: stream.peer_addr()?,
        };
        self.streams.insert(
            four_tuple,
            TurnStream {
                stream: Arc::clone(&stream),
                decoder: TurnStreamDecoder::new(),
            },
        );
        self.arm_read(four_tuple, stream, vec![0u8; TURN_STREAM_READ_BUF_LEN]);
        debug!("TURN connection {:?} open", four_tuple);
        Ok(four_tuple)
    }

    pub(crate) fn contains(&self, four_tuple: &FourTuple) -> bool {
        self.streams.contains_key(four_tuple)
    }

    /// Drops the connections for which `keep` is false (their TURN client is gone).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&FourTuple) -> bool) {
        self.streams.retain(|four_tuple, _| keep(four_tuple));
    }

    /// Drops every connection (a rebind replaces the transport generation).
    pub(crate) fn clear(&mut self) {
        self.streams.clear();
        self.read_futures = FuturesUnordered::new();
    }

    /// Reads the next bytes of `stream` into `buf`, which each read hands back for the next.
    fn arm_read(&mut self, four_tuple: FourTuple, stream: Arc<dyn AsyncTcpStream>, mut buf: Vec<u8>) {
        self.read_futures.push(
            async move {
                match stream.read(&mut buf).await {
                    Ok(n) => TurnStreamRead::Data { four_tuple, n, buf },
                    Err(err) => TurnStreamRead::Error { four_tuple, err },
                }
            }
            .boxed(),
        );
    }

    /// The connection a TURN message for `four_tuple` goes out on. Returned rather than
    /// written here so the caller's write does not hold `self` (and its read futures, which
    /// are not `Sync`) across the await.
    pub(crate) fn stream(&self, four_tuple: &FourTuple) -> io::Result<Arc<dyn AsyncTcpStream>> {
        self.streams
            .get(four_tuple)
            .map(|turn_stream| Arc::clone(&turn_stream.stream))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotConnected,
                    format!("no TURN connection {four_tuple:?}"),
                )
            })
    }

    /// Splits what a read brought into TURN messages; `now` is the driver's clock.
    pub(crate) fn on_read(&mut self, now: Instant, read: TurnStreamRead) -> TurnStreamInput {
        let (four_tuple, n, buf) = match read {
            TurnStreamRead::Data { four_tuple, n, buf } => (four_tuple, n, buf),
            TurnStreamRead::Error { four_tuple, err } => {
                warn!("TURN connection {:?} failed: {}", four_tuple, err);
                self.streams.remove(&four_tuple);
                return TurnStreamInput::Closed(four_tuple);
            }
        };
        let Some(turn_stream) = self.streams.get_mut(&four_tuple) else {
            // Dropped while the read was in flight.
            return TurnStreamInput::Messages(Vec::new());
        };
        if n == 0 {
            debug!("TURN connection {:?} closed by the server", four_tuple);
            self.streams.remove(&four_tuple);
            return TurnStreamInput::Closed(four_tuple);
        }
        turn_stream.decoder.extend_from_slice(&buf[..n]);
        let mut messages = Vec::new();
        loop {
            match turn_stream.decoder.next_message() {
                Ok(Some(message)) => messages.push(TaggedBytesMut {
                    now,
                    transport: TransportContext {
                        local_addr: four_tuple.local_addr,
                        peer_addr: four_tuple.peer_addr,
                        ecn: None,
                        transport_protocol: TransportProtocol::TCP,
                    },
                    message: BytesMut::from(&message[..]),
                }),
                Ok(None) => break,
                Err(err) => {
                    warn!("TURN connection {:?}: {}", four_tuple, err);
                    self.streams.remove(&four_tuple);
                    return TurnStreamInput::Closed(four_tuple);
                }
            }
        }
        trace!("{} TURN messages from {:?}", messages.len(), four_tuple);
        let stream = Arc::clone(&turn_stream.stream);
        self.arm_read(four_tuple, stream, buf);
        TurnStreamInput::Messages(messages)
    }
}
