//! `signaling-bench`: runs the signaling server as a child process and measures
//! memory per idle connection, call setup rate and relay latency. Prints a markdown table.
//! With `--soak`, it runs the soak instead (module [`soak`]): calls through signaling and
//! the embedded relay for a long time, with sockets dropped and sessions resumed.
//!
//! With `--nodes N` (N ≥ 2), it runs the server as N nodes sharing a private Redis and
//! compares calls across nodes with calls on one node (module [`nodes`]).
//!
//! Every phase is bounded in count and time; all traffic stays on 127.0.0.0/8.
#![allow(clippy::disallowed_methods)] // a benchmark reads the clock; the server does not

mod calls;
mod client;
mod delivery;
mod nodes;
mod server_process;
mod soak;

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
    /// Concurrent calls (2 sessions each); with --soak, calls over the whole run
    /// [with --soak, default: 1000].
    #[arg(long, default_value_t = 500, default_value_if("soak", "true", "1000"))]
    calls: usize,
    /// Candidate messages per second, all calls together.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Pin the server to these CPUs (taskset list, e.g. `0`); run the bench itself under
    /// `taskset -c 1` so the two do not compete for the same core.
    #[arg(long)]
    server_cpus: Option<String>,
    /// Duration of the relay phase, seconds; with --soak, of the whole run
    /// [with --soak, default: 1800].
    #[arg(long, default_value_t = 10, default_value_if("soak", "true", "1800"))]
    seconds: u64,
    /// Run the soak instead: calls through signaling and the embedded relay with sockets
    /// dropped and sessions resumed; fails on any lost, duplicated or reordered message.
    #[arg(long)]
    soak: bool,
    /// With --soak: seeds which sockets drop and when (the same seed, the same drops).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run the server as this many nodes sharing a private redis-server (started by the
    /// bench; it must be on PATH): --idle sessions spread over the nodes, calls with caller
    /// and callee on different nodes, each against a single node without Redis in the same
    /// run. 1: a single server, as without the flag.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    nodes: u16,
    /// Have every client send at the same instant each period (bursts of one message per
    /// client, the default before issue 18) instead of each at its own moment, spread over
    /// the period as independent clients send
    #[arg(long, conflicts_with = "stagger")]
    burst: bool,
    /// The default now (each client at its own moment); kept so that the commands recorded
    /// in docs/benchmarks.md still run
    #[arg(long, hide = true)]
    stagger: bool,
    /// Internal (--nodes): be a child that opens --idle sessions to this server, says so on
    /// stdout and holds them until its stdin closes.
    #[arg(long, hide = true)]
    hold_server: Option<std::net::SocketAddr>,
    /// Internal (--nodes): the index of the held sessions' first user (`idle<index>`).
    #[arg(long, hide = true, default_value_t = 0)]
    hold_first: usize,
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
    if args.soak {
        let soak = soak::SoakArgs {
            server: args.server,
            seconds: args.seconds,
            calls: args.calls,
            seed: args.seed,
        };
        let deadline = Duration::from_secs(300 + soak.seconds);
        return tokio::time::timeout(deadline, soak::run(soak)).await?;
    }
    if let Some(server) = args.hold_server {
        return nodes::hold(server, args.hold_first, args.idle).await;
    }
    if args.nodes >= 2 {
        let nodes = nodes::NodesArgs {
            server: args.server,
            nodes: usize::from(args.nodes),
            idle: args.idle,
            calls: args.calls,
            rate: args.rate,
            seconds: args.seconds,
            server_cpus: args.server_cpus,
            stagger: !args.burst,
        };
        let deadline = Duration::from_secs(1200 + 3 * nodes.seconds);
        return tokio::time::timeout(deadline, nodes::run(nodes)).await?;
    }
    let deadline = Duration::from_secs(600 + args.seconds);
    tokio::time::timeout(deadline, run(args)).await?
}

/// The ` --server-cpus …` and ` --burst` of the command line a table prints.
pub(crate) fn load_flags(server_cpus: Option<&str>, stagger: bool) -> String {
    let pin = server_cpus
        .map(|c| format!(" --server-cpus {c}"))
        .unwrap_or_default();
    let burst = if stagger { "" } else { " --burst" };
    format!("{pin}{burst}")
}

async fn run(args: Args) -> Result<(), BenchError> {
    let (server, metrics) =
        ServerProcess::start_measured(&args.server, args.server_cpus.as_deref()).await?;
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
    let waits_before = delivery::Delivery::parse(&delivery::scrape(metrics).await?);
    let relay = calls::relay_paced(setup.pairs, args.rate, args.seconds, !args.burst).await?;
    let waits = delivery::Delivery::parse(&delivery::scrape(metrics).await?).since(&waits_before);
    let relay_cpu = server.cpu_seconds()? - cpu_before;
    let own_cpu = bench_support::own_cpu_seconds()? - own_before;
    let mut lat = relay.latencies_us.clone();
    lat.sort_unstable();
    let rss_end = server.rss()?;
    drop(idle);

    let cmd = format!(
        "cargo run --release -p signaling-bench -- --idle {} --calls {} --rate {} --seconds {}{}",
        args.idle,
        args.calls,
        args.rate,
        args.seconds,
        load_flags(args.server_cpus.as_deref(), !args.burst)
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
        "| the server's own account (`signaling_message_delivery_seconds`, input to write): p50 / p99 | {} / {} (of {:.0} messages) |",
        waits.show(0.5),
        waits.show(0.99),
        waits.count()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soak_has_defaults_of_its_own() {
        let load = Args::parse_from(["signaling-bench"]);
        assert_eq!((load.soak, load.calls, load.seconds), (false, 500, 10));
        let soak = Args::parse_from(["signaling-bench", "--soak"]);
        assert_eq!((soak.soak, soak.calls, soak.seconds), (true, 1000, 1800));
        let short = Args::parse_from(["signaling-bench", "--soak", "--seconds", "60"]);
        assert_eq!((short.calls, short.seconds, short.seed), (1000, 60, 1));
    }

    #[test]
    fn one_node_unless_told() {
        assert_eq!(Args::parse_from(["signaling-bench"]).nodes, 1);
        let two = Args::parse_from(["signaling-bench", "--nodes", "2", "--idle", "18000"]);
        assert_eq!((two.nodes, two.idle), (2, 18_000));
        assert!(Args::try_parse_from(["signaling-bench", "--nodes", "0"]).is_err());
    }
}
