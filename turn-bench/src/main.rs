//! `turn-bench`: our relay and coturn, one after the other in the same run, under the same
//! load generator on the same CPUs, each row on a fresh server process. Prints markdown
//! tables. Three modes:
//!
//! - `flood` (default): relayed packets/s and Mbps of ChannelData for 1, 10 and 100
//!   allocations at 100 and 1200 bytes. Open loop (every client as fast as it can) unless
//!   `--rate` paces the total; "relayed pps" counts what reached the peer sockets.
//! - `audio`: 1,000 allocations × 50 packets/s × 200 B, evenly spread in time; relayed
//!   packets/s, loss, server CPU and one-way latency percentiles.
//! - `memory`: the server's resident memory before and after 1,000 and 5,000 allocations,
//!   and the difference per allocation.
//!
//! All traffic stays on 127.0.0.0/8; every phase is bounded in time.
#![allow(clippy::disallowed_methods)] // a benchmark reads the clock

mod audio;
mod clients;
mod drops;
mod flood;
mod memory;
mod mmsg;
mod servers;
mod sink;
mod turn_client;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bench_support::BenchError;
use clap::{Parser, ValueEnum};
use servers::{Kind, Launch};

/// Allocations per server at most: each takes a relay port (11,000 per server), and our
/// relay allows 10,000 allocations in all.
const MAX_ALLOCATIONS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Relayed throughput of a few allocations sending as fast as they can (or `--rate`).
    Flood,
    /// Many allocations at an audio call's packet rate: loss, CPU and one-way latency.
    Audio,
    /// Resident memory per allocation.
    Memory,
}

#[derive(Debug, Parser)]
#[command(about = "TURN relay benchmarks: turn-relay against coturn (loopback only)")]
struct Args {
    /// Our relay (build it with `cargo build --release -p turn-relay`).
    #[arg(long, default_value = "target/release/turn-relay")]
    relay: PathBuf,
    /// coturn's server (Debian package coturn).
    #[arg(long, default_value = "/usr/bin/turnserver")]
    coturn: PathBuf,
    #[arg(long, value_enum, default_value_t = Mode::Flood)]
    mode: Mode,
    /// Measured seconds per row (after 0.5 s of warm-up), flood and audio.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Flood: allocations per row.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    allocations: Vec<usize>,
    /// Flood: ChannelData payload bytes per row.
    #[arg(long, value_delimiter = ',', default_value = "100,1200")]
    sizes: Vec<usize>,
    /// OS threads the flood and audio clients are spread over.
    #[arg(long, default_value_t = 2)]
    generator_threads: usize,
    /// Flood: total packets a second over all clients, paced in 1 ms ticks; 0: open loop.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Flood: the sinks take a GSO run whole (`UDP_GRO`), as a network card with UDP
    /// segmentation offload takes it from the sender. Without it, on loopback the kernel
    /// cuts every run into its datagrams in software and delivers each, inside the relay's
    /// send and on its CPU time. A relay that sends one datagram at a time gains nothing.
    #[arg(long)]
    sink_gro: bool,
    /// Flood: each client sends its bursts as GSO runs, which the kernel hands to a server
    /// socket with UDP GRO on whole, as a network card's receive offload coalesces a flow's
    /// back-to-back datagrams (video frames come in such bursts); a server without it gets
    /// them one at a time, as before. Loopback never coalesces datagrams sent one by one.
    #[arg(long)]
    client_gso: bool,
    /// Audio: allocations, each its own client socket.
    #[arg(long, default_value_t = 1000)]
    audio_allocations: usize,
    /// Audio: packets a second per allocation.
    #[arg(long, default_value_t = 50)]
    audio_pps: u32,
    /// Audio: ChannelData payload bytes (at least 8: the send time).
    #[arg(long, default_value_t = 200)]
    audio_size: usize,
    /// Memory: allocation counts, one fresh server per count.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    memory_allocations: Vec<usize>,
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
    if !(1..=64).contains(&args.generator_threads) {
        return Err(BenchError::Setup(
            "--generator-threads must be between 1 and 64".into(),
        ));
    }
    let launch = Launch {
        relay: args.relay.clone(),
        coturn: args.coturn.clone(),
        cpus: args.server_cpus.clone(),
    };
    match args.mode {
        Mode::Flood => flood_table(args, &launch, &kinds).await,
        Mode::Audio => audio_table(args, &launch, &kinds).await,
        Mode::Memory => memory_table(args, &launch, &kinds).await,
    }
}

async fn flood_table(args: &Args, launch: &Launch, kinds: &[Kind]) -> Result<(), BenchError> {
    let generator = flood::Generator {
        threads: args.generator_threads,
        rate: (args.rate > 0).then_some(args.rate),
        sink_gro: args.sink_gro,
        client_gso: args.client_gso,
    };
    let offered = match generator.rate {
        Some(rate) => format!("{rate} packets/s in all, paced per 1 ms"),
        None => "open loop".into(),
    };
    let sinks = if generator.sink_gro {
        ", sinks taking GSO runs whole (UDP_GRO)"
    } else {
        ""
    };
    let sends = if generator.client_gso {
        "GSO runs of"
    } else {
        "sendmmsg ×"
    };
    println!(
        "Flood: {} generator threads, {sends} {}, {offered}{sinks}.\n",
        generator.threads,
        mmsg::BATCH
    );
    println!(
        "| server | allocations | payload B | sent pps | relayed pps | Mbps | loss % | dropped at the server / at the sinks | server CPU (cores) | relayed per CPU-second |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let limit = Duration::from_secs_f64(args.seconds + 30.0);
    for &allocations in &args.allocations {
        for &payload in &args.sizes {
            if !(1..=1400).contains(&payload) || !(1..=500).contains(&allocations) {
                return Err(BenchError::Setup(
                    "payload 1-1400 bytes, allocations 1-500".into(),
                ));
            }
            for &kind in kinds {
                let server = launch.start(kind).await?;
                let row = tokio::time::timeout(
                    limit,
                    flood::run(&server, allocations, payload, args.seconds, generator),
                )
                .await??;
                println!(
                    "| {} | {allocations} | {payload} | {:.0} | {:.0} | {:.1} | {:.1} | {} / {} | {:.2} | {:.0} |",
                    kind.name(),
                    row.sent_pps,
                    row.relayed_pps,
                    row.mbps,
                    row.loss * 100.0,
                    row.dropped_at_server,
                    row.dropped_at_sinks,
                    row.server_cores,
                    row.relayed_pps / row.server_cores.max(0.01)
                );
            }
        }
    }
    Ok(())
}

async fn audio_table(args: &Args, launch: &Launch, kinds: &[Kind]) -> Result<(), BenchError> {
    let audio = audio::Audio {
        allocations: args.audio_allocations,
        pps: args.audio_pps,
        size: args.audio_size,
        threads: args.generator_threads,
    };
    if !(1..=MAX_ALLOCATIONS).contains(&audio.allocations)
        || !(1..=1000).contains(&audio.pps)
        || !(8..=1400).contains(&audio.size)
    {
        return Err(BenchError::Setup(format!(
            "audio: allocations 1-{MAX_ALLOCATIONS}, 1-1000 packets/s, payload 8-1400 bytes"
        )));
    }
    println!(
        "Audio: {} allocations × {} packets/s × {} B ({} packets/s offered), {} generator threads.\n",
        audio.allocations,
        audio.pps,
        audio.size,
        audio.allocations as u64 * u64::from(audio.pps),
        audio.threads
    );
    println!(
        "| server | allocations | relayed pps | loss % | server CPU (cores) | latency p50 µs | p99 µs | p99.9 µs |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let limit = Duration::from_secs_f64(args.seconds + 60.0);
    // The first row: the bench's own floor, clients straight to the sinks.
    let row = tokio::time::timeout(limit, audio::run(None, audio, args.seconds)).await??;
    print_audio_row("no relay (bench floor)", audio.allocations, &row);
    for &kind in kinds {
        let server = launch.start(kind).await?;
        let row =
            tokio::time::timeout(limit, audio::run(Some(&server), audio, args.seconds)).await??;
        print_audio_row(kind.name(), audio.allocations, &row);
    }
    Ok(())
}

fn print_audio_row(name: &str, allocations: usize, row: &audio::Row) {
    let [p50, p99, p999] = row.latency_us;
    let cores = row.server_cores.map_or("–".into(), |c| format!("{c:.2}"));
    println!(
        "| {name} | {allocations} | {:.0} | {:.2} | {cores} | {p50:.0} | {p99:.0} | {p999:.0} |",
        row.relayed_pps,
        row.loss * 100.0,
    );
}

async fn memory_table(args: &Args, launch: &Launch, kinds: &[Kind]) -> Result<(), BenchError> {
    println!("| server | allocations | RSS before MiB | RSS after MiB | bytes per allocation |");
    println!("|---|---:|---:|---:|---:|");
    for &count in &args.memory_allocations {
        if !(1..=MAX_ALLOCATIONS).contains(&count) {
            return Err(BenchError::Setup(format!(
                "memory: allocations 1-{MAX_ALLOCATIONS}"
            )));
        }
        for &kind in kinds {
            let server = launch.start(kind).await?;
            let row = tokio::time::timeout(Duration::from_secs(120), memory::run(&server, count))
                .await??;
            let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
            println!(
                "| {} | {count} | {:.1} | {:.1} | {:.0} |",
                kind.name(),
                mib(row.rss_before),
                mib(row.rss_after),
                row.per_allocation(count)
            );
        }
    }
    Ok(())
}
