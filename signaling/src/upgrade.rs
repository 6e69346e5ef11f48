//! The WebSocket handshake (RFC 6455 §4.2), on hyper's upgrade.
//!
//! axum's `WebSocketUpgrade` would do this too, but it hides the raw stream. We keep it: after
//! refusing an oversized message, the connection reads and discards the rest of it before
//! closing, so the client receives the 1009 close frame instead of a TCP reset.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// An accepted WebSocket.
pub type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// Why a request to `/ws` is not a WebSocket handshake we accept.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("expected a WebSocket upgrade request")]
    NotWebSocket,
    #[error("only WebSocket version 13 is supported")]
    Version,
    #[error("missing Sec-WebSocket-Key")]
    MissingKey,
}

impl IntoResponse for UpgradeError {
    fn into_response(self) -> Response {
        match self {
            UpgradeError::Version => {
                let mut r =
                    (StatusCode::UPGRADE_REQUIRED, "WebSocket version 13 only\n").into_response();
                r.headers_mut().insert(
                    header::SEC_WEBSOCKET_VERSION,
                    HeaderValue::from_static("13"),
                );
                r
            }
            other => (StatusCode::BAD_REQUEST, format!("{other}\n")).into_response(),
        }
    }
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Checks the handshake; returns the `101 Switching Protocols` response and the pending upgrade.
pub fn accept(req: &mut Request) -> Result<(Response, OnUpgrade), UpgradeError> {
    let headers = req.headers();
    if !has_token(headers, header::CONNECTION, "upgrade")
        || !has_token(headers, header::UPGRADE, "websocket")
    {
        return Err(UpgradeError::NotWebSocket);
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(UpgradeError::Version);
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or(UpgradeError::MissingKey)?;
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = req
        .extensions_mut()
        .remove::<OnUpgrade>()
        .ok_or(UpgradeError::NotWebSocket)?;
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    Ok((response, on_upgrade))
}

/// Completes the upgrade with our limits: `max_message_bytes` per message and per frame, a
/// small read buffer, and no write buffering beyond one message.
pub async fn complete(
    on_upgrade: OnUpgrade,
    max_message_bytes: usize,
    read_buffer: usize,
) -> Option<Socket> {
    let upgraded = on_upgrade.await.ok()?;
    let config = WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .write_buffer_size(0)
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes));
    Some(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await)
}
