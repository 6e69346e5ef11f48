//! Measures the peer SDK on loopback, against a signaling server (with its embedded TURN
//! relay) started in this process, and prints a table:
//!
//! - call setup: from `call()` to the data channel open on the caller, over `--calls`
//!   calls, p50/p95/max, direct and relay-only;
//! - data channel throughput: a reliable channel carrying `--message-bytes` messages for
//!   `--seconds`, direct and relay-only.
//!
//! `cargo run --release -p peer-bench -- --calls 50 --seconds 3`
#![allow(clippy::disallowed_methods)] // a benchmark reads the clock

use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use peer_sdk::{
    AcceptOptions, Call, CallEvent, CallOptions, ChannelSpec, Client, ClientEvent, ClientOptions,
    DataChannel, IcePolicy, PeerOptions,
};
use signaling::EmbeddedTurn;
use signaling::{Config, Server};

#[derive(Parser)]
struct Args {
    /// Calls per setup row.
    #[arg(long, default_value_t = 50)]
    calls: usize,
    /// Seconds per throughput row.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Size of each data channel message.
    #[arg(long, default_value_t = 16 * 1024)]
    message_bytes: usize,
}

type BenchResult<T> = Result<T, String>;

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    if let Err(e) = run(&args).await {
        eprintln!("peer-bench: {e}");
        std::process::exit(1);
    }
}

async fn run(args: &Args) -> BenchResult<()> {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
        // Calls back to back send far more than a person's 50 messages/s (the default limit,
        // under which the SDK paces itself): lift it, so that rows measure call setup.
        rate_per_s: 1_000_000,
        rate_burst: 1_000_000,
        ..Config::default()
    };
    let mut turn = EmbeddedTurn::new("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?);
    turn.allow_peers = vec!["127.0.0.0/8".parse().map_err(|e| format!("{e}"))?];
    config.turn = Some(turn);
    let server = Server::start(config).await.map_err(|e| e.to_string())?;
    let url = format!("ws://{}/ws", server.local_addr());

    println!(
        "| path | call setup p50 | p95 | max | calls | throughput ({} B messages, {} s) |",
        args.message_bytes, args.seconds
    );
    println!("|---|---|---|---|---|---|");
    for (name, policy) in [
        ("direct (host/host)", IcePolicy::All),
        ("relay-only (our TURN)", IcePolicy::RelayOnly),
    ] {
        let options = ClientOptions {
            peer: PeerOptions {
                policy,
                bind: vec!["127.0.0.1:0".parse().map_err(|e| format!("{e}"))?],
                ..PeerOptions::default()
            },
            ..ClientOptions::default()
        };
        let caller = Client::connect_with(&url, "bench-caller", None, options.clone())
            .await
            .map_err(|e| e.to_string())?;
        let callee = Client::connect_with(&url, "bench-callee", None, options)
            .await
            .map_err(|e| e.to_string())?;
        let answering = tokio::spawn(answer_all(callee.clone()));
        let mut setups = Vec::with_capacity(args.calls);
        for _ in 0..args.calls {
            let (setup, call) = timed_call(&caller).await?;
            setups.push(setup);
            call.hangup().await;
        }
        let mbps = throughput(&caller, args).await?;
        answering.abort();
        setups.sort();
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        let pick =
            |q: f64| setups[((setups.len() as f64 * q).ceil() as usize).clamp(1, setups.len()) - 1];
        println!(
            "| {name} | {} | {} | {} | {} | {mbps:.1} MB/s |",
            ms(pick(0.5)),
            ms(pick(0.95)),
            ms(*setups.last().unwrap_or(&Duration::ZERO)),
            setups.len()
        );
    }
    server.shutdown().await;
    Ok(())
}

/// Answers every call; data channels it receives echo nothing, they only count.
async fn answer_all(callee: Client) {
    while let Some(event) = callee.next_event().await {
        if let ClientEvent::Incoming(incoming) = event
            && let Ok(call) = incoming.accept(AcceptOptions::default()).await
        {
            tokio::spawn(sink(call));
        }
    }
}

/// Reads every data channel of `call` until it ends; replies with the byte count when
/// a text message arrives.
async fn sink(call: Call) {
    while let Some(event) = call.next_event().await {
        if let CallEvent::DataChannel(channel) = event {
            tokio::spawn(async move {
                let mut bytes = 0u64;
                while let Some(msg) = channel.recv().await {
                    if msg.is_text {
                        let _ = channel.send_text(&bytes.to_string()).await;
                    } else {
                        bytes += msg.data.len() as u64;
                    }
                }
            });
        }
    }
}

/// One call: `call()` until the caller's data channel is open.
async fn timed_call(caller: &Client) -> BenchResult<(Duration, Call)> {
    let started = Instant::now();
    let options = CallOptions {
        channels: vec![ChannelSpec::reliable("bench")],
        ..Default::default()
    };
    let call = caller
        .call("bench-callee", options)
        .await
        .map_err(|e| e.to_string())?;
    let answered = started.elapsed();
    call.connected().await.map_err(|e| e.to_string())?;
    let connected = started.elapsed();
    let channel = call.data_channel("bench").ok_or("no channel")?;
    tokio::time::timeout(Duration::from_secs(20), channel.opened())
        .await
        .map_err(|_| "data channel did not open in 20 s".to_owned())?
        .map_err(|e| e.to_string())?;
    if std::env::var_os("PEER_BENCH_PHASES").is_some() {
        eprintln!(
            "answered {answered:?} connected {connected:?} open {:?}",
            started.elapsed()
        );
    }
    Ok((started.elapsed(), call))
}

/// MB/s through one reliable channel: send for `seconds`, then ask the receiver how much
/// it got (so bytes still buffered at the sender do not count).
async fn throughput(caller: &Client, args: &Args) -> BenchResult<f64> {
    let (_, call) = timed_call(caller).await?;
    let channel: DataChannel = call.data_channel("bench").ok_or("no channel")?;
    let message = Bytes::from(vec![0xA5u8; args.message_bytes]);
    let started = Instant::now();
    let limit = Duration::from_secs_f64(args.seconds);
    let mut sent = 0u64;
    while started.elapsed() < limit && sent < 10_000_000_000 {
        channel
            .send(message.clone())
            .await
            .map_err(|e| e.to_string())?;
        sent += message.len() as u64;
    }
    channel
        .send_text("count?")
        .await
        .map_err(|e| e.to_string())?;
    let reply = tokio::time::timeout(Duration::from_secs(120), channel.recv())
        .await
        .map_err(|_| "no byte count from the receiver".to_owned())?
        .ok_or("channel closed")?;
    let elapsed = started.elapsed().as_secs_f64();
    let received: u64 = reply
        .text()
        .and_then(|t| t.parse().ok())
        .ok_or("bad byte count")?;
    call.hangup().await;
    Ok(received as f64 / elapsed / 1e6)
}
