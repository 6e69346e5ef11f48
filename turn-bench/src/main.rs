//! `turn-bench`: our relay and coturn, one after the other in the same run, under the same
//! load generator on the same CPUs: relayed packets/s and Mbps of ChannelData for 1, 10
//! and 100 allocations at 100 and 1200 bytes. Prints a markdown table.
//!
//! Open loop: every client sends as fast as it can; "relayed pps" counts what reached the
//! peer sockets. All traffic stays on 127.0.0.0/8; every phase is bounded in time.
#![allow(clippy::disallowed_methods)] // a benchmark reads the clock

mod load;
mod servers;
mod turn_client;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bench_support::BenchError;
use clap::Parser;
use servers::{Kind, Server};

#[derive(Debug, Parser)]
#[command(about = "TURN relay throughput: turn-relay against coturn (loopback only)")]
struct Args {
    /// Our relay (build it with `cargo build --release -p turn-relay`).
    #[arg(long, default_value = "target/release/turn-relay")]
    relay: PathBuf,
    /// coturn's server (Debian package coturn).
    #[arg(long, default_value = "/usr/bin/turnserver")]
    coturn: PathBuf,
    /// Measured seconds per row (after 0.5 s of warm-up).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    allocations: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_value = "100,1200")]
    sizes: Vec<usize>,
    /// `ours`, `coturn` or `both`.
    #[arg(long, default_value = "both")]
    only: String,
    /// Pin the servers to these CPUs (taskset list, e.g. `0`); run the bench itself under
    /// `taskset -c 1` so the generator does not compete with the server.
    #[arg(long)]
    server_cpus: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("turn-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), BenchError> {
    let kinds: Vec<Kind> = match args.only.as_str() {
        "ours" => vec![Kind::Ours],
        "coturn" => vec![Kind::Coturn],
        "both" => vec![Kind::Ours, Kind::Coturn],
        other => {
            return Err(BenchError::Setup(format!(
                "--only {other:?}: ours, coturn or both"
            )));
        }
    };
    if !(0.5..=60.0).contains(&args.seconds) {
        return Err(BenchError::Setup(
            "--seconds must be between 0.5 and 60".into(),
        ));
    }
    println!(
        "| server | allocations | payload B | sent pps | relayed pps | Mbps | loss % | server CPU (cores) | relayed per CPU-second |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let limit = Duration::from_secs_f64(args.seconds + 30.0);
    for &allocations in &args.allocations {
        for &payload in &args.sizes {
            if !(1..=1400).contains(&payload) || !(1..=500).contains(&allocations) {
                return Err(BenchError::Setup(
                    "payload 1-1400 bytes, allocations 1-500".into(),
                ));
            }
            for &kind in &kinds {
                // A fresh server per row: no allocations left over from the previous one.
                let (binary, ports) = match kind {
                    Kind::Ours => (&args.relay, (50_000, 50_999)),
                    Kind::Coturn => (&args.coturn, (51_000, 51_999)),
                };
                let server =
                    Server::start(kind, binary, args.server_cpus.as_deref(), ports).await?;
                let row = tokio::time::timeout(
                    limit,
                    load::run(&server, allocations, payload, args.seconds),
                )
                .await??;
                println!(
                    "| {} | {allocations} | {payload} | {:.0} | {:.0} | {:.1} | {:.1} | {:.2} | {:.0} |",
                    kind.name(),
                    row.sent_pps,
                    row.relayed_pps,
                    row.mbps,
                    row.loss * 100.0,
                    row.server_cores,
                    row.relayed_pps / row.server_cores.max(0.01)
                );
                drop(server);
            }
        }
    }
    Ok(())
}
