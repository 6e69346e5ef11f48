//! HTTPS and WSS on the server's own listener (`tls_cert`, `tls_key`), with the
//! certificate reloadable while connections stay open.
//!
//! A LAN deployment without a reverse proxy still needs `https://` for the web demo:
//! browsers give a page the camera only in a secure context, which a plain `http://` to
//! a LAN address is not. The TLS handshake runs here, per connection and concurrently;
//! axum and hyper then see a byte stream like any other, and the WebSocket upgrade
//! (upgrade.rs) works on it unchanged.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::serve::Listener;
use server_kit::ConfigError;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tracing::debug;

/// How long a client has for the TLS handshake before its connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes in flight at most; connections beyond are closed when accepted.
const MAX_HANDSHAKES: usize = 1024;

/// The listener's certificate: the PEM files it came from and what they held when last
/// read. Clones share the loaded configuration, so that [`Server::reload_tls`]
/// (`SIGHUP` in the binary) changes it for every new handshake.
///
/// [`Server::reload_tls`]: crate::Server::reload_tls
#[derive(Clone)]
pub struct ListenerTls {
    cert: PathBuf,
    key: PathBuf,
    config: Arc<RwLock<Arc<ServerConfig>>>,
}

impl std::fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerTls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ListenerTls {
    /// Reads a PEM certificate chain and its private key; errors name `tls_cert` or
    /// `tls_key`.
    pub fn load(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Result<Self, ConfigError> {
        let (cert, key) = (cert.into(), key.into());
        let config = read(&cert, &key)?;
        Ok(Self {
            cert,
            key,
            config: Arc::new(RwLock::new(config)),
        })
    }

    /// Reads the files again and, if they hold a valid certificate and key, uses them for
    /// every new handshake; open connections keep theirs. On an error the old
    /// certificate stays.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let config = read(&self.cert, &self.key)?;
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = config;
        Ok(())
    }

    fn current(&self) -> Arc<ServerConfig> {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn read(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, ConfigError> {
    server_kit::tls::load_tls(cert, key, "tls_cert", "tls_key")
}

/// A TCP listener whose connections come out of the TLS handshake: slow or failed
/// handshakes run beside each other and never hold up the next client. Accepting (and its
/// errors) and the socket options are the plain listener's, which it wraps.
pub(crate) struct TlsListener<L> {
    tcp: L,
    tls: ListenerTls,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl<L> TlsListener<L> {
    pub(crate) fn new(tcp: L, tls: ListenerTls) -> Self {
        Self {
            tcp,
            tls,
            handshakes: JoinSet::new(),
        }
    }

    fn start_handshake(&mut self, tcp: TcpStream, addr: SocketAddr) {
        if self.handshakes.len() >= MAX_HANDSHAKES {
            // Each costs a task and rustls state: refuse the excess instead of queueing it.
            debug!(%addr, "too many TLS handshakes in flight; closing");
            return;
        }
        let acceptor = TlsAcceptor::from(self.tls.current());
        self.handshakes.spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => Some((stream, addr)),
                Ok(Err(e)) => {
                    debug!(%addr, error = %e, "TLS handshake failed");
                    None
                }
                Err(_) => {
                    debug!(%addr, "TLS handshake timed out");
                    None
                }
            }
        });
    }
}

impl<L> Listener for TlsListener<L>
where
    L: Listener<Io = TcpStream, Addr = SocketAddr>,
{
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                (tcp, addr) = self.tcp.accept() => self.start_handshake(tcp, addr),
                Some(done) = self.handshakes.join_next() => {
                    if let Ok(Some(accepted)) = done {
                        return accepted;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
