//! `signaling`: the signaling server binary.

use std::io::Write;
use std::process::ExitCode;

use signaling::{Cli, Server};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing::{error, info, warn};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match server_kit::startup::configure::<Cli>("signaling") {
        Ok(config) => config,
        Err(code) => return code,
    };
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => info!(limit = n, "open file limit"),
        Err(e) => warn!(error = %e, "cannot raise the open file limit"),
    }
    if config.auth.is_open() {
        warn!("open mode: no JWT key configured, any user name is accepted (demos only)");
    }
    let shutdown = server_kit::shutdown::on_signal();
    let server = match Server::start(config).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("signaling: {e}");
            return ExitCode::from(1);
        }
    };
    let addr = server.local_addr();
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    // Registered before the ready line, like the shutdown signals: a SIGHUP right after it
    // must reload, not kill.
    let hangup = server.is_tls().then(hangup_signal).flatten();
    let (http, ws) = if server.is_tls() {
        ("https", "wss")
    } else {
        ("http", "ws")
    };
    let authority = if addr.is_ipv6() {
        format!("[{host}]:{}", addr.port())
    } else {
        format!("{host}:{}", addr.port())
    };
    // A closed stdout (the launcher stopped reading) must not stop the server.
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "signaling: open {http}://{authority}/ (WebSocket at {ws}://{authority}/ws)"
    );
    let _ = match server.turn() {
        Some(turn) => writeln!(
            out,
            "signaling: embedded TURN relay on udp {} and tcp {}{}",
            turn.udp[0],
            turn.tcp[0],
            turn.tls
                .first()
                .map(|a| format!(", tls {a}"))
                .unwrap_or_default()
        ),
        None => writeln!(out, "signaling: embedded TURN relay off"),
    };
    if let Some(metrics) = server.metrics_addr() {
        let _ = writeln!(out, "signaling: metrics at http://{metrics}/metrics");
    }
    if let Some((node, redis)) = server.cluster() {
        let _ = writeln!(out, "signaling: node {node} of the cluster at {redis}");
    }
    let _ = out.flush();
    match hangup {
        Some(hangup) => reload_on_hangup(&server, hangup, shutdown).await,
        None => shutdown.await,
    }
    if server.cluster().is_some() {
        // A second SIGTERM (or Ctrl-C) cuts the drain short.
        let again = server_kit::shutdown::on_signal();
        tokio::select! {
            _ = server.drain() => {}
            () = again => warn!("signal again: not waiting for the drain"),
        }
    }
    info!("shutting down");
    server.shutdown().await;
    ExitCode::SUCCESS
}

/// SIGHUP as a stream, for reloading the TLS certificate.
fn hangup_signal() -> Option<Signal> {
    match signal(SignalKind::hangup()) {
        Ok(hangup) => Some(hangup),
        Err(e) => {
            warn!(error = %e, "cannot handle SIGHUP: the TLS certificate will not reload");
            None
        }
    }
}

/// Until `shutdown`, rereads the TLS certificate and key on each SIGHUP (a renewed
/// certificate); a reload that fails keeps the old one.
async fn reload_on_hangup(server: &Server, mut hangup: Signal, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = hangup.recv() => match server.reload_tls() {
                Ok(_) => info!("SIGHUP: TLS certificate reloaded"),
                Err(e) => error!(error = %e, "SIGHUP: TLS certificate not reloaded, keeping the old one"),
            },
        }
    }
}
