//! `signaling`: the signaling server binary.

use std::io::Write;
use std::process::ExitCode;

use signaling::{Cli, Server};
use tracing::{info, warn};

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
    let url = if addr.is_ipv6() {
        format!("http://[{host}]:{}/", addr.port())
    } else {
        format!("http://{host}:{}/", addr.port())
    };
    // A closed stdout (the launcher stopped reading) must not stop the server.
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "signaling: open {url} (WebSocket at {}ws)",
        url.replacen("http", "ws", 1)
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
    let _ = out.flush();
    shutdown.await;
    info!("shutting down");
    server.shutdown().await;
    ExitCode::SUCCESS
}
