//! TLS over an [`AsyncTcpStream`], for TURN servers reached through `turns:` URLs.
//!
//! rustls is sans-I/O (`read_tls`, `process_new_packets`, `write_tls`), so the client is
//! written against the runtime's stream trait and works the same on every runtime: the
//! result is again an [`AsyncTcpStream`], and everything above it (the TURN stream framing,
//! the relayer) cannot tell TLS from plain TCP.

use crate::runtime::AsyncTcpStream;
use std::fmt;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use rustls::ClientConnection;
use rustls::pki_types::ServerName;

/// Ciphertext read from the socket per call during the handshake (afterwards the reader's
/// own buffer holds it).
const TLS_READ_BUF_LEN: usize = 16 * 1024;

/// A client TLS session over `inner`, with its handshake complete.
pub(crate) struct TlsClientStream {
    inner: Arc<dyn AsyncTcpStream>,
    state: Mutex<TlsState>,
    /// Held from encrypting a record to writing it, so records reach the socket in the
    /// order of their sequence numbers even when a read has to answer the peer (an alert or
    /// a key update) while the driver writes.
    write_order: futures::lock::Mutex<()>,
    local_addr: SocketAddr,
    peer_addr: SocketAddr,
}

struct TlsState {
    conn: ClientConnection,
    /// Plaintext decrypted but not yet handed to a reader.
    plaintext: Vec<u8>,
    /// The peer closed the session (close_notify) or the socket.
    eof: bool,
}

impl fmt::Debug for TlsClientStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClientStream")
            .field("local_addr", &self.local_addr)
            .field("peer_addr", &self.peer_addr)
            .finish()
    }
}

fn tls_error(err: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err)
}

/// Moves whatever ciphertext `conn` wants to send into a buffer.
fn take_ciphertext(conn: &mut ClientConnection) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out)?;
    }
    Ok(out)
}

/// Feeds `ciphertext` to `conn` and moves the plaintext it yields into `plaintext`.
/// Returns the ciphertext `conn` wants to send in answer (alerts, key updates).
fn absorb(
    conn: &mut ClientConnection,
    mut ciphertext: &[u8],
    plaintext: &mut Vec<u8>,
    eof: &mut bool,
) -> io::Result<Vec<u8>> {
    let mut answer = Vec::new();
    while !ciphertext.is_empty() {
        conn.read_tls(&mut ciphertext)?;
        // On an error the alert telling the peer why stays queued in `conn`; the handshake
        // sends it, and either way the session ends.
        let state = conn.process_new_packets().map_err(tls_error)?;
        answer.extend(take_ciphertext(conn)?);
        let available = state.plaintext_bytes_to_read();
        if available > 0 {
            let start = plaintext.len();
            plaintext.resize(start + available, 0);
            conn.reader().read_exact(&mut plaintext[start..])?;
        }
        if state.peer_has_closed() {
            *eof = true;
        }
    }
    Ok(answer)
}

impl TlsClientStream {
    /// Runs the TLS handshake over `inner` with `server_name`, checking the server's
    /// certificate against `config`.
    pub(crate) async fn connect(
        inner: Arc<dyn AsyncTcpStream>,
        config: Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
    ) -> io::Result<Self> {
        let local_addr = inner.local_addr()?;
        let peer_addr = inner.peer_addr()?;
        let mut conn = ClientConnection::new(config, server_name).map_err(tls_error)?;
        let mut plaintext = Vec::new();
        let mut eof = false;
        let mut buf = vec![0u8; TLS_READ_BUF_LEN];
        loop {
            let out = take_ciphertext(&mut conn)?;
            if !out.is_empty() {
                inner.write_all(&out).await?;
            }
            if !conn.is_handshaking() {
                break;
            }
            let n = inner.read(&mut buf).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the TURN server closed the connection during the TLS handshake",
                ));
            }
            match absorb(&mut conn, &buf[..n], &mut plaintext, &mut eof) {
                Ok(answer) if !answer.is_empty() => inner.write_all(&answer).await?,
                Ok(_) => {}
                Err(err) => {
                    // Tell the server why (a bad certificate, say) before giving up.
                    if let Ok(alert) = take_ciphertext(&mut conn)
                        && !alert.is_empty()
                    {
                        let _ = inner.write_all(&alert).await;
                    }
                    return Err(err);
                }
            }
        }
        Ok(Self {
            inner,
            state: Mutex::new(TlsState {
                conn,
                plaintext,
                eof,
            }),
            write_order: futures::lock::Mutex::new(()),
            local_addr,
            peer_addr,
        })
    }

    fn state(&self) -> io::Result<std::sync::MutexGuard<'_, TlsState>> {
        self.state
            .lock()
            .map_err(|_| io::Error::other("TLS session state poisoned"))
    }

    async fn read_inner(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            {
                let mut state = self.state()?;
                if !state.plaintext.is_empty() {
                    let n = buf.len().min(state.plaintext.len());
                    buf[..n].copy_from_slice(&state.plaintext[..n]);
                    state.plaintext.drain(..n);
                    return Ok(n);
                }
                if state.eof {
                    return Ok(0);
                }
            }
            // The caller's buffer holds the ciphertext until it is absorbed: no buffer of
            // our own per read.
            let n = self.inner.read(buf).await?;
            if n == 0 {
                return Ok(0);
            }
            let answer = {
                let mut guard = self.state()?;
                let state = &mut *guard;
                absorb(&mut state.conn, &buf[..n], &mut state.plaintext, &mut state.eof)?
            };
            if !answer.is_empty() {
                let _order = self.write_order.lock().await;
                self.inner.write_all(&answer).await?;
            }
        }
    }

    async fn write_all_inner(&self, buf: &[u8]) -> io::Result<()> {
        let _order = self.write_order.lock().await;
        let out = {
            let mut state = self.state()?;
            state.conn.writer().write_all(buf)?;
            take_ciphertext(&mut state.conn)?
        };
        self.inner.write_all(&out).await
    }
}

impl AsyncTcpStream for TlsClientStream {
    fn read<'a, 'b>(
        &'a self,
        buf: &'b mut [u8],
    ) -> Pin<Box<dyn Future<Output = io::Result<usize>> + Send + 'b>>
    where
        'a: 'b,
    {
        Box::pin(self.read_inner(buf))
    }

    fn write_all<'a, 'b>(
        &'a self,
        buf: &'b [u8],
    ) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'b>>
    where
        'a: 'b,
    {
        Box::pin(self.write_all_inner(buf))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer_addr)
    }
}
