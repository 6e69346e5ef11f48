//! Graceful stop of the binaries (`turn-relay` and `signaling`) on SIGTERM or SIGINT.

use std::future::Future;

/// Registers the SIGTERM and SIGINT handlers now, so that a signal arriving right after the
/// ready line is printed is never fatal, and completes on the first of them.
pub fn on_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (Ok(mut one), Err(_)) | (Err(_), Ok(mut one)) => {
                one.recv().await;
            }
            (Err(_), Err(_)) => std::future::pending().await,
        }
    }
}
