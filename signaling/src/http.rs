//! Serving the router on a listener: hyper's HTTP/1 with the limits `axum::serve` does not
//! have (issue 16, item 3). `axum::serve` read request headers with no deadline and did not
//! count connections that had not upgraded: 3,000 unfinished requests stayed open for 70 s
//! (+54 MB, +3,000 descriptors). Here every request's headers must arrive within
//! `header_timeout` (hyper's `header_read_timeout`, which also ends a keep-alive connection
//! that sends no next request), and at most `max_connections` connections may be at the
//! HTTP stage at once (reading a request, or idle between two); a WebSocket leaves that
//! count when it upgrades, and `Config::max_connections` caps WebSockets.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

/// Limits on connections at the HTTP stage.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpLimits {
    /// How long a client may take to send a request's headers (and to start the next one
    /// on a kept-alive connection).
    pub header_timeout: Duration,
    /// Connections at the HTTP stage at most; more are closed as soon as accepted.
    pub max_connections: usize,
}

/// Serves `app` on `listener` until `stop` is cancelled, then closes the listening socket
/// (cancelling `closed`: new connections are refused from then on), lets the open
/// connections finish their request (graceful shutdown) and returns once they have.
pub(crate) async fn serve<L>(
    mut listener: L,
    app: Router,
    stop: CancellationToken,
    closed: CancellationToken,
    limits: HttpLimits,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
{
    let open = Arc::new(AtomicUsize::new(0));
    let tasks = TaskTracker::new();
    loop {
        let (io, _) = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        if open.fetch_add(1, Ordering::Relaxed) >= limits.max_connections {
            open.fetch_sub(1, Ordering::Relaxed);
            debug!("too many HTTP connections; closing a new one");
            drop(io);
            continue;
        }
        let (open, stop, app) = (open.clone(), stop.clone(), app.clone());
        tasks.spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let conn = builder
                .serve_connection(TokioIo::new(io), TowerToHyperService::new(app))
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        debug!(error = %e, "HTTP connection ended with an error");
                    }
                }
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            // Upgraded (a WebSocket's task has the socket now) or closed.
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
    // Not held while the connections finish: the kernel would go on completing handshakes
    // into its backlog.
    drop(listener);
    closed.cancel();
    tasks.close();
    tasks.wait().await;
    Ok(())
}
