//! A userspace `tc netem` for the NAT lab (this machine's kernel has no netem): reads the
//! IP packets the NAT box routes into a TUN device, drops, delays and reorders them with
//! [`nat_lab::shaper::Shaper`] (one per direction), and writes the rest back into the
//! device, from where the kernel forwards them on. `scripts/nat-lab shape` sets up the
//! device and the routing and runs it; on SIGINT or SIGTERM it prints what it did, one
//! line per direction, and exits. docs/nat-lab.md ("An impaired network").
//!
//! The shell around the sans-IO shaper: it owns the clock.
#![allow(clippy::disallowed_methods)]

mod tun;

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use nat_lab::shaper::{Impairment, Shaper};
use tokio::signal::unix::{SignalKind, signal};

use crate::tun::Tun;

#[derive(Parser)]
struct Args {
    /// The TUN device to attach to (made by `scripts/nat-lab shape`, or made here).
    #[arg(long, default_value = "shaper")]
    dev: String,
    /// The shaped host: packets from it go "up", all others "down".
    #[arg(long)]
    host: Ipv4Addr,
    /// Percent of the packets dropped at random, each way.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Mean delay added each way, in milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// The delay varies uniformly within delay ± jitter (milliseconds).
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Percent of the packets sent at once, overtaking the queue (netem's `reorder`).
    #[arg(long, default_value_t = 0.0)]
    reorder: f64,
    /// How many packets may wait at a time, each way.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// Seeds the random choices (the downstream direction takes seed + 1).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also print the counters to stderr every this many seconds (0: only at the end).
    #[arg(long, default_value_t = 0)]
    report_every: u64,
}

impl Args {
    fn impairment(&self) -> Impairment {
        Impairment {
            loss: self.loss / 100.0,
            delay: Duration::from_millis(self.delay_ms),
            jitter: Duration::from_millis(self.jitter_ms),
            reorder: self.reorder / 100.0,
            limit: self.limit,
        }
    }
}

/// The two directions through the shaped host's NAT box.
struct Directions {
    host: [u8; 4],
    up: Shaper,
    down: Shaper,
}

impl Directions {
    /// Hands a packet read from the device to its direction's shaper. Anything but IPv4
    /// (the device has IPv6 off, so nothing should come) is dropped uncounted.
    fn arrive(&mut self, packet: Vec<u8>, now: Instant) {
        if packet.len() < 20 || packet[0] >> 4 != 4 {
            return;
        }
        let shaper = if packet[12..16] == self.host {
            &mut self.up
        } else {
            &mut self.down
        };
        shaper.handle_packet(packet, now);
    }

    /// Writes back every packet that is due.
    fn release(&mut self, tun: &Tun, now: Instant) {
        for shaper in [&mut self.up, &mut self.down] {
            while let Some(packet) = shaper.poll_transmit(now) {
                if let Err(e) = tun.write(&packet) {
                    eprintln!("lab-shaper: writing a packet back: {e}");
                }
            }
        }
    }

    fn next_release(&self) -> Option<Instant> {
        match (self.up.poll_timeout(), self.down.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let tun = match Tun::attach(&args.dev) {
        Ok(tun) => tun,
        Err(e) => {
            eprintln!("lab-shaper: cannot attach to TUN device {}: {e}", args.dev);
            return ExitCode::FAILURE;
        }
    };
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        eprintln!("lab-shaper: cannot handle signals");
        return ExitCode::FAILURE;
    };
    let impairment = args.impairment();
    let mut dirs = Directions {
        host: args.host.octets(),
        up: Shaper::new(impairment, args.seed),
        down: Shaper::new(impairment, args.seed.wrapping_add(1)),
    };
    println!(
        "shaping {} for {}: loss {}%, delay {} ms ± {} ms, reorder {}%, each way",
        args.dev, args.host, args.loss, args.delay_ms, args.jitter_ms, args.reorder
    );
    let started = Instant::now();
    let every = Duration::from_secs(args.report_every.max(1));
    let mut report = tokio::time::interval_at((started + every).into(), every);
    loop {
        dirs.release(&tun, Instant::now());
        let wake = dirs.next_release();
        tokio::select! {
            read = tun.read_all(|p| dirs.arrive(p, Instant::now())) => {
                if let Err(e) = read {
                    eprintln!("lab-shaper: reading from {}: {e}", args.dev);
                    return ExitCode::FAILURE;
                }
            }
            _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now).into()), if wake.is_some() => {}
            _ = report.tick(), if args.report_every > 0 => {
                let secs = started.elapsed().as_secs();
                eprintln!("lab-shaper: {secs} s: up: {}", dirs.up.counters());
                eprintln!("lab-shaper: {secs} s: down: {}", dirs.down.counters());
            }
            _ = int.recv() => break,
            _ = term.recv() => break,
        }
    }
    println!("up: {}", dirs.up.counters());
    println!("down: {}", dirs.down.counters());
    ExitCode::SUCCESS
}
