//! `turn-relay`: the relay on its own (the signaling binary embeds the same relay).

use std::io::Write;
use std::process::ExitCode;

use tracing::info;
use turn_relay::TurnServer;
use turn_relay::config::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match server_kit::startup::configure::<Cli>("turn-relay") {
        Ok(config) => config,
        Err(code) => return code,
    };
    let shutdown = server_kit::shutdown::on_signal();
    let server = match TurnServer::start(config.settings, config.listeners).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("turn-relay: {e}");
            return ExitCode::from(1);
        }
    };
    let mut metrics_url = None;
    if let Some(addr) = config.metrics_listen {
        let metrics = server.metrics().clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let metrics = metrics.clone();
                async move { metrics.encode() }
            }),
        );
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("turn-relay: cannot listen for metrics on {addr}: {e}");
                return ExitCode::from(1);
            }
        };
        metrics_url = listener
            .local_addr()
            .ok()
            .map(|a| format!("http://{a}/metrics"));
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    let all: Vec<String> = server
        .udp
        .iter()
        .map(|a| format!("udp {a}"))
        .chain(server.tcp.iter().map(|a| format!("tcp {a}")))
        .chain(server.tls.iter().map(|a| format!("tls {a}")))
        .collect();
    // A closed stdout (the launcher stopped reading) must not stop the relay.
    let mut out = std::io::stdout();
    let _ = writeln!(out, "turn-relay: listening on {}", all.join(", "));
    if let Some(url) = metrics_url {
        let _ = writeln!(out, "turn-relay: metrics at {url}");
    }
    let _ = out.flush();
    shutdown.await;
    info!("shutting down");
    server.shutdown().await;
    ExitCode::SUCCESS
}
