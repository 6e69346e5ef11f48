//! `signaling-bench --soak`: calls through the signaling server and its embedded TURN
//! relay for a long time, with sockets dropped at random and sessions resumed, checking
//! that no signaling message is lost, duplicated or reordered, and watching the server's
//! memory and file descriptors for a trend.
//!
//! The server is the real binary, started with its default limits and its relay on
//! loopback. Calls start at an even pace over the run, about ten at a time; each is two
//! fresh users ([`call`]), whose sides ([`side`]) send numbered `candidate`s through
//! signaling and numbered datagrams through the relay, and drop their sockets at moments
//! drawn from the seed. Every loop is bounded in count and time; all traffic stays on
//! 127.0.0.0/8.

mod call;
mod relay;
mod report;
mod samples;
mod sequence;
mod session;
mod side;

use std::path::PathBuf;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior, sleep_until};

use crate::server_process::ServerProcess;
use bench_support::BenchError;
use call::CallPlan;
use report::{Report, Totals};
use samples::Sample;

/// Calls in progress at once, about.
const CONCURRENT: f64 = 10.0;
/// The shortest and longest call.
const CALL_LENGTH: (Duration, Duration) = (Duration::from_secs(4), Duration::from_secs(30));
/// The share of a call spent sending (the rest is setup, resumes and the ending).
const TALKING: f64 = 0.7;

/// What `--soak` runs.
#[derive(Debug, Clone)]
pub struct SoakArgs {
    /// The signaling server binary.
    pub server: PathBuf,
    /// How long the run lasts, seconds.
    pub seconds: u64,
    /// How many calls it makes.
    pub calls: usize,
    /// Seeds the drops: the same seed drops the same sockets at the same moments.
    pub seed: u64,
}

/// Runs the soak and prints its table. Fails if a call failed or a signaling message was
/// lost, duplicated or reordered (datagram losses are reported, not failed on: UDP).
pub async fn run(args: SoakArgs) -> Result<(), BenchError> {
    if args.calls == 0 || args.seconds < 2 * CALL_LENGTH.0.as_secs() {
        return Err(BenchError::Setup(format!(
            "--soak needs at least one call and {} seconds",
            2 * CALL_LENGTH.0.as_secs()
        )));
    }
    let server = ServerProcess::start_with_relay(&args.server).await?;
    let total = Duration::from_secs(args.seconds);
    let length = total
        .mul_f64(CONCURRENT / args.calls as f64)
        .clamp(CALL_LENGTH.0, CALL_LENGTH.1.min(total / 2));
    let spacing = (total - length).div_f64(args.calls as f64);
    let talking = length.mul_f64(TALKING);
    let messages = (talking.as_millis() / side::MESSAGE_EVERY.as_millis()) as u64;
    let datagrams = (talking.as_millis() / side::DATAGRAM_EVERY.as_millis()) as u64;
    let every = Duration::from_secs((args.seconds / 100).clamp(1, 5));
    let warm_up = Duration::from_secs((args.seconds / 10).min(60));

    let start = Instant::now();
    let mut samples = vec![sample(&server, Duration::ZERO)?];
    let mut tick = tokio::time::interval_at(start + every, every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut running = JoinSet::new();
    let mut totals = Totals::default();
    let mut next = 0;
    while next < args.calls || !running.is_empty() {
        let due = start + spacing.mul_f64(next as f64);
        tokio::select! {
            _ = tick.tick() => samples.push(sample(&server, start.elapsed())?),
            _ = sleep_until(due), if next < args.calls => {
                let plan = CallPlan::new(args.seed, next, length, messages, datagrams)?;
                let (addr, index) = (server.addr, next);
                running.spawn(async move { (index, call::run(addr, plan).await) });
                next += 1;
            }
            Some(done) = running.join_next() => match done? {
                (_, Ok(outcome)) => totals.add(&outcome),
                (index, Err(e)) => {
                    eprintln!("soak: call {index} failed: {e}");
                    totals.calls_failed += 1;
                }
            },
        }
    }
    let elapsed = start.elapsed();
    samples.push(sample(&server, elapsed)?);
    Report {
        command: format!(
            "cargo run --release -p signaling-bench -- --soak --seconds {} --calls {} --seed {}",
            args.seconds, args.calls, args.seed
        ),
        seconds: elapsed.as_secs_f64(),
        totals: &totals,
        samples: &samples,
        warm_up_s: warm_up.as_secs_f64(),
        sample_every_s: every.as_secs_f64(),
    }
    .print();
    if totals.calls_failed > 0 || !totals.messages.clean() {
        return Err(BenchError::Protocol(format!(
            "soak: {} calls failed; signaling messages: {} lost, {} duplicated, {} reordered",
            totals.calls_failed,
            totals.messages.lost,
            totals.messages.duplicated,
            totals.messages.reordered
        )));
    }
    Ok(())
}

/// The server's memory and descriptors now, `at` into the run.
fn sample(server: &ServerProcess, at: Duration) -> Result<Sample, BenchError> {
    Ok(Sample {
        at_s: at.as_secs_f64(),
        rss_kib: server.rss()? as f64 / 1024.0,
        fds: server.open_fds()? as f64,
    })
}
