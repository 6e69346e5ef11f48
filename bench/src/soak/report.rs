//! The soak's totals over every call, and the markdown table printed at the end.

use super::call::CallOutcome;
use super::samples::{Sample, Trend};
use super::side::SideOutcome;

/// A stream's totals: what was sent, what arrived, and what was wrong.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StreamTotals {
    /// Sent, all calls and both directions.
    pub sent: u64,
    /// Arrived, duplicates included.
    pub received: u64,
    /// Never arrived.
    pub lost: u64,
    /// Arrived more than once.
    pub duplicated: u64,
    /// Arrived after a later one.
    pub reordered: u64,
}

impl StreamTotals {
    /// Whether every one arrived once and in order.
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.reordered == 0
    }
}

/// Totals over every call of the run.
#[derive(Debug, Default)]
pub struct Totals {
    /// Calls that ran to their end.
    pub calls_done: u64,
    /// Calls that failed (an error, an unexpected message, a deadline).
    pub calls_failed: u64,
    /// Signaling: the numbered `candidate`s with each side's closing `null`.
    pub messages: StreamTotals,
    /// Datagrams through the relay.
    pub datagrams: StreamTotals,
    /// Sockets dropped on purpose.
    pub drops: u64,
    /// Sessions resumed after a drop.
    pub resumes: u64,
    /// Messages thrown away with dropped sockets, which the server had to replay.
    pub discarded: u64,
}

impl Totals {
    /// Adds a call that ran to its end.
    pub fn add(&mut self, call: &CallOutcome) {
        self.calls_done += 1;
        for (receiver, sender) in [(&call.caller, &call.callee), (&call.callee, &call.caller)] {
            self.add_direction(receiver, sender);
        }
    }

    /// What `sender` sent and `receiver` got of it.
    fn add_direction(&mut self, receiver: &SideOutcome, sender: &SideOutcome) {
        // Each side closes its candidates with `null`, number `messages_sent`.
        let expected = sender.messages_sent + 1;
        let m = &receiver.messages;
        self.messages.sent += expected;
        self.messages.received += m.received;
        self.messages.lost += m.lost(expected);
        self.messages.duplicated += m.duplicated;
        self.messages.reordered += m.reordered;
        let d = &receiver.datagrams;
        self.datagrams.sent += sender.datagrams_sent;
        self.datagrams.received += d.received;
        self.datagrams.lost += d.lost(sender.datagrams_sent);
        self.datagrams.duplicated += d.duplicated;
        self.datagrams.reordered += d.reordered;
        self.drops += receiver.drops;
        self.resumes += receiver.resumes;
        self.discarded += receiver.discarded;
    }
}

/// The run as the table shows it.
pub struct Report<'a> {
    /// The command that reproduces the run.
    pub command: String,
    /// Wall-clock length of the run, seconds.
    pub seconds: f64,
    /// Totals over every call.
    pub totals: &'a Totals,
    /// The server's readings.
    pub samples: &'a [Sample],
    /// Readings before this are left out of the slopes, seconds.
    pub warm_up_s: f64,
    /// Seconds between two readings.
    pub sample_every_s: f64,
}

impl Report<'_> {
    /// Prints the markdown table.
    pub fn print(&self) {
        let t = self.totals;
        println!("command: `{}`\n", self.command);
        println!("| measure | value |\n|---|---|");
        println!(
            "| calls | {} done, {} failed, in {:.0} s |",
            t.calls_done, t.calls_failed, self.seconds
        );
        println!(
            "| signaling messages (numbered `candidate`s and each side's closing `null`) | {} |",
            stream(&t.messages)
        );
        println!(
            "| socket drops / resumes | {} / {} ({} messages thrown away with dropped sockets, replayed on resume) |",
            t.drops, t.resumes, t.discarded
        );
        println!(
            "| datagrams through the relay (ChannelData) | {} |",
            stream(&t.datagrams)
        );
        let kib = Trend::of(self.samples, self.warm_up_s, |s| s.rss_kib);
        let fds = Trend::of(self.samples, self.warm_up_s, |s| s.fds);
        if let Some(rss) = kib {
            println!(
                "| server RSS first / last / max | {:.1} / {:.1} / {:.1} MiB |",
                rss.first / 1024.0,
                rss.last / 1024.0,
                rss.max / 1024.0
            );
            println!(
                "| server RSS slope after {:.0} s of warm-up | {} KiB/min |",
                self.warm_up_s,
                per_minute(rss.per_minute)
            );
        }
        if let Some(fds) = fds {
            println!(
                "| server open fds first / last / max | {:.0} / {:.0} / {:.0} |",
                fds.first, fds.last, fds.max
            );
            println!(
                "| server fds slope after {:.0} s of warm-up | {} fds/min |",
                self.warm_up_s,
                per_minute(fds.per_minute)
            );
        }
        println!(
            "| server samples | {}, one every {:.0} s |",
            self.samples.len(),
            self.sample_every_s
        );
    }
}

fn stream(s: &StreamTotals) -> String {
    format!(
        "{} sent, {} received, {} lost, {} duplicated, {} reordered",
        s.sent, s.received, s.lost, s.duplicated, s.reordered
    )
}

/// A slope a minute, or "n/a" without one.
fn per_minute(slope: Option<f64>) -> String {
    slope.map_or("n/a".into(), |s| format!("{s:+.2}"))
}
