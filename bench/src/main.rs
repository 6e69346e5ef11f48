//! `signaling-bench`: runs the signaling server as a child process and measures
//! memory per idle connection, call setup rate and relay latency. Prints a markdown table.
//!
//! Every phase is bounded in count and time; all traffic stays on 127.0.0.0/8.
#![allow(clippy::disallowed_methods)] // a benchmark reads the clock; the server does not

mod calls;
mod client;
mod server_process;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bench_support::BenchError;
use clap::Parser;
use futures_util::future::try_join_all;

use server_process::ServerProcess;

#[derive(Debug, Parser)]
#[command(about = "Load benchmark of the signaling server (loopback only)")]
struct Args {
    /// The server binary (build it with `cargo build --release -p signaling`).
    #[arg(long, default_value = "target/release/signaling")]
    server: PathBuf,
    /// Idle sessions to open and hold.
    #[arg(long, default_value_t = 50_000)]
    idle: usize,
    /// Concurrent calls (2 sessions each).
    #[arg(long, default_value_t = 500)]
    calls: usize,
    /// Candidate messages per second, all calls together.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Pin the server to these CPUs (taskset list, e.g. `0`); run the bench itself under
    /// `taskset -c 1` so the two do not compete for the same core.
    #[arg(long)]
    server_cpus: Option<String>,
    /// Duration of the relay phase, seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

#[tokio::main]
async fn main() -> Result<(), BenchError> {
    let args = Args::parse();
    rlimit::increase_nofile_limit(u64::MAX)?;
    let deadline = Duration::from_secs(600 + args.seconds);
    tokio::time::timeout(deadline, run(args)).await?
}

async fn run(args: Args) -> Result<(), BenchError> {
    let server = ServerProcess::start(&args.server, args.server_cpus.as_deref()).await?;
    let addr = server.addr;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = server.rss()?;

    // Idle sessions, opened in batches of 1,000.
    let started = Instant::now();
    let mut idle = Vec::with_capacity(args.idle);
    for batch in (0..args.idle).collect::<Vec<_>>().chunks(1000) {
        let joins = batch.iter().map(|&i| async move {
            client::join(addr, client::source_for(i), &format!("idle{i}")).await
        });
        idle.extend(try_join_all(joins).await?);
    }
    let idle_open = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = server.rss()?;
    let per_idle = (rss_idle.saturating_sub(rss_before))
        .checked_div(args.idle as u64)
        .unwrap_or(0);

    // Calls.
    let conns = calls::connect(addr, args.calls, args.idle).await?;
    let setup = calls::set_up(conns).await?;
    let mut setup_lat = setup.latencies_us.clone();
    setup_lat.sort_unstable();
    let cpu_before = server.cpu_seconds()?;
    let own_before = bench_support::own_cpu_seconds()?;
    let relay = calls::relay(setup.pairs, args.rate, args.seconds).await?;
    let relay_cpu = server.cpu_seconds()? - cpu_before;
    let own_cpu = bench_support::own_cpu_seconds()? - own_before;
    let mut lat = relay.latencies_us.clone();
    lat.sort_unstable();
    let rss_end = server.rss()?;
    drop(idle);

    let pin = args
        .server_cpus
        .as_ref()
        .map(|c| format!(" --server-cpus {c}"))
        .unwrap_or_default();
    let cmd = format!(
        "cargo run --release -p signaling-bench -- --idle {} --calls {} --rate {} --seconds {}{pin}",
        args.idle, args.calls, args.rate, args.seconds
    );
    println!("command: `{cmd}`\n");
    println!("| measure | value |\n|---|---|");
    println!(
        "| idle sessions held | {} (opened in {:.1} s) |",
        args.idle,
        idle_open.as_secs_f64()
    );
    println!(
        "| server RSS before / with idle sessions | {:.1} MiB / {:.1} MiB |",
        mib(rss_before),
        mib(rss_idle)
    );
    println!("| RSS per idle session | {per_idle} bytes |");
    println!(
        "| calls set up (concurrent) | {} in {:.3} s = {:.0} calls/s |",
        args.calls,
        setup.wall.as_secs_f64(),
        args.calls as f64 / setup.wall.as_secs_f64()
    );
    println!(
        "| call setup latency p50 / p99 | {} / {} |",
        ms(percentile(&setup_lat, 0.5)),
        ms(percentile(&setup_lat, 0.99))
    );
    println!(
        "| relayed candidates | {} sent, {} received ({} lost) in {:.1} s = {:.0} msg/s |",
        relay.sent,
        relay.received,
        relay.sent - relay.received.min(relay.sent),
        relay.wall.as_secs_f64(),
        relay.received as f64 / relay.wall.as_secs_f64()
    );
    println!(
        "| relay latency p50 / p99 / max | {} / {} / {} |",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or(0))
    );
    println!(
        "| server CPU during the relay phase | {:.2} s in {:.1} s ({:.0}% of one core) |",
        relay_cpu,
        relay.wall.as_secs_f64(),
        100.0 * relay_cpu / relay.wall.as_secs_f64()
    );
    println!(
        "| load generator CPU during the relay phase | {:.2} s ({:.0}% of one core) |",
        own_cpu,
        100.0 * own_cpu / relay.wall.as_secs_f64()
    );
    println!("| server RSS at the end | {:.1} MiB |", mib(rss_end));
    if relay.received != relay.sent {
        return Err(BenchError::Protocol(format!(
            "{} messages lost",
            relay.sent - relay.received
        )));
    }
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
