//! Opens the signaling WebSocket one step at a time (DNS, TCP, TLS for `wss://`, the
//! WebSocket handshake), so
//! that a failure says which step failed and keeps the error underneath as its source.
//! tokio-tungstenite's `connect_async` does the same steps in one, and its DNS and TCP
//! failures come out as the same `io::Error`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{Error as WsError, UrlError};

use crate::error::{Argument, ConnectError, ConnectErrorKind, Error, Result};
use crate::tls::Tls;

/// A TCP stream, or TLS over one.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Stream for S {}

/// The signaling socket.
pub(crate) type Ws = WebSocketStream<Box<dyn Stream>>;

/// Opens a WebSocket to `url` (`ws://host[:port]/path` or `wss://…`, whose certificate
/// `tls` checks).
pub(crate) async fn open(url: &str, tls: &Tls) -> Result<Ws> {
    let request = url
        .into_client_request()
        .map_err(|e| Error::invalid(Argument::Url, e))?;
    let uri = request.uri();
    let (default_port, secure) = match uri.scheme_str() {
        Some("ws") => (80, false),
        Some("wss") => (443, true),
        _ => {
            return Err(Error::invalid(
                Argument::Url,
                "the scheme must be ws:// or wss://",
            ));
        }
    };
    let host = match uri.host() {
        Some(host) if !host.is_empty() => host.trim_start_matches('[').trim_end_matches(']'),
        _ => return Err(Error::invalid(Argument::Url, "it names no host")),
    };
    let port = uri.port_u16().unwrap_or(default_port);
    let addrs = resolve(host, port).await?;
    let socket = connect_tcp(&addrs).await?;
    let socket: Box<dyn Stream> = if secure {
        Box::new(tls.handshake(host, socket).await?)
    } else {
        Box::new(socket)
    };
    let (ws, _response) = tokio_tungstenite::client_async_with_config(request, socket, None)
        .await
        .map_err(handshake_error)?;
    Ok(ws)
}

/// The addresses of `host` (an IP address is taken as it is, without a lookup).
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, ConnectError> {
    let failed = |e: io::Error| {
        let message = format!("cannot resolve the signaling server's host name {host:?}");
        ConnectError::new(ConnectErrorKind::Dns, message, Some(Arc::new(e)))
    };
    let addrs: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .map_err(failed)?
        .collect();
    if addrs.is_empty() {
        return Err(failed(io::Error::new(
            io::ErrorKind::NotFound,
            "the name has no address",
        )));
    }
    Ok(addrs)
}

/// A TCP connection to the first of `addrs` that answers, without Nagle: signaling
/// messages are small and their latency is call setup time.
async fn connect_tcp(addrs: &[SocketAddr]) -> Result<TcpStream, ConnectError> {
    let failed = |addr: &SocketAddr, e: io::Error| {
        let message = format!("cannot open a TCP connection to the signaling server at {addr}");
        ConnectError::new(ConnectErrorKind::Tcp, message, Some(Arc::new(e)))
    };
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(socket) => {
                socket.set_nodelay(true).map_err(|e| failed(addr, e))?;
                return Ok(socket);
            }
            Err(e) => last = Some(failed(addr, e)),
        }
    }
    // `resolve` never returns an empty list; this is only for the compiler.
    Err(last.unwrap_or_else(|| ConnectError::new(ConnectErrorKind::Tcp, "no address", None)))
}

/// Classifies a failed WebSocket handshake.
pub(crate) fn handshake_error(e: WsError) -> ConnectError {
    let (kind, message) = match &e {
        WsError::Http(response) => {
            let status = response.status().as_u16();
            (
                ConnectErrorKind::Handshake {
                    status: Some(status),
                },
                format!("the signaling server answered HTTP {status}, not a WebSocket upgrade"),
            )
        }
        WsError::Tls(_) | WsError::Url(UrlError::TlsFeatureNotEnabled) => (
            ConnectErrorKind::Tls,
            "TLS with the signaling server failed".to_owned(),
        ),
        _ => (
            ConnectErrorKind::Handshake { status: None },
            "the WebSocket handshake with the signaling server failed".to_owned(),
        ),
    };
    ConnectError::new(kind, message, Some(Arc::new(e)))
}

/// The open socket failed while doing `what`.
pub(crate) fn lost(what: &str, e: WsError) -> Error {
    let message = format!("the signaling connection broke while {what}");
    ConnectError::new(ConnectErrorKind::Lost, message, Some(Arc::new(e))).into()
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use tokio_tungstenite::tungstenite::http::Response;

    use super::*;

    #[test]
    fn an_http_answer_is_a_handshake_error_with_its_status() {
        let response = Response::builder().status(401).body(None).unwrap();
        let e = handshake_error(WsError::Http(Box::new(response)));
        assert_eq!(e.kind(), ConnectErrorKind::Handshake { status: Some(401) });
        assert!(e.source().unwrap().downcast_ref::<WsError>().is_some());
        assert_eq!(e.io_kind(), None);
    }

    #[test]
    fn an_io_error_in_the_handshake_keeps_its_kind() {
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        let e = handshake_error(WsError::Io(reset));
        assert_eq!(e.kind(), ConnectErrorKind::Handshake { status: None });
        assert_eq!(e.io_kind(), Some(io::ErrorKind::ConnectionReset));
    }

    #[tokio::test]
    async fn urls_it_cannot_use_are_invalid_arguments() {
        let tls = Tls::new(None).unwrap();
        for url in ["not a url", "http://127.0.0.1/ws", "ws:///ws", "ftp://x/y"] {
            let e = open(url, &tls).await.err().unwrap();
            assert!(
                matches!(
                    e,
                    Error::Invalid {
                        what: Argument::Url,
                        ..
                    }
                ),
                "{url}: {e:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_ip_address_is_not_looked_up() {
        let addrs = resolve("::1", 80).await.unwrap();
        assert_eq!(addrs, vec!["[::1]:80".parse::<SocketAddr>().unwrap()]);
        // The brackets of an IPv6 URL are not part of the address.
        let tls = Tls::new(None).unwrap();
        let Err(Error::Connect(e)) = open("ws://[::1]:1/ws", &tls).await else {
            panic!("nothing listens on port 1");
        };
        assert_eq!(e.kind(), ConnectErrorKind::Tcp, "{e:?}");
    }
}
