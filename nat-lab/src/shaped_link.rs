//! An impaired link in a lab: `scripts/nat-lab shape` routes a LAN host's traffic through
//! `lab-shaper` in its NAT box, which drops, delays and reorders it as `tc netem` would
//! (this kernel has no netem). docs/nat-lab.md ("An impaired network").

use std::path::Path;
use std::time::Duration;

use test_support::example::Example;

use crate::lab::{NatLab, script};
use crate::shaper::{Counters, Impairment};

/// A running shaper; [`ShapedLink::stop`] ends it and says what it did.
pub struct ShapedLink {
    run: Example,
}

/// What the shaper did each way, from its exit lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShapedCounters {
    /// From the shaped host (its NAT box's LAN) towards the internet.
    pub up: Counters,
    /// From the internet towards the shaped host.
    pub down: Counters,
}

/// `lab-shaper`'s flags for `impairment`, `seed`: milliseconds and percent, as its
/// command line takes them (sub-millisecond parts are cut).
pub fn shaper_flags(impairment: &Impairment, seed: u64) -> Vec<String> {
    let ms = |d: Duration| d.as_millis().to_string();
    [
        ("--loss", (impairment.loss * 100.0).to_string()),
        ("--delay-ms", ms(impairment.delay)),
        ("--jitter-ms", ms(impairment.jitter)),
        ("--reorder", (impairment.reorder * 100.0).to_string()),
        ("--limit", impairment.limit.to_string()),
        ("--seed", seed.to_string()),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_owned(), value])
    .collect()
}

/// Whether the shaper can run here: it needs `/dev/net/tun` (and root, and the lab's
/// tools, which [`NatLab::up`] checked). If not: a panic under `CI=true`, else a loud skip.
pub fn shaping_possible() -> bool {
    if Path::new("/dev/net/tun").exists() {
        return true;
    }
    let msg = "the lab's shaper needs /dev/net/tun (the kernel's tun driver)";
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

impl NatLab {
    /// Impairs the traffic of the LAN host behind NAT box `nat_box` (`a`: lana, `b`:
    /// lanb) with `impairment` each way, its random choices seeded with `seed`, until the
    /// returned link is stopped. Waits until the shaper runs. `None` (a loud skip, or a
    /// failure under `CI=true`) where it cannot run.
    pub async fn shape(
        &self,
        nat_box: &str,
        impairment: &Impairment,
        seed: u64,
    ) -> Option<ShapedLink> {
        if !shaping_possible() {
            return None;
        }
        let mut args = vec![
            // A shell cannot trap a signal it was started ignoring, and a test run started
            // in the background ignores SIGINT: give the script its Ctrl-C back.
            "--default-signal=INT".to_owned(),
            format!("NAT_LAB_PREFIX={}", self.prefix()),
            format!("NAT_LAB_SHAPER={}", self.programs().shaper.display()),
            script().display().to_string(),
            "shape".to_owned(),
            nat_box.to_owned(),
        ];
        args.extend(shaper_flags(impairment, seed));
        // Its counters on stderr as it goes: where a transfer stalls, they show whether
        // packets still flow.
        args.extend(["--report-every".to_owned(), "10".to_owned()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        // `env` execs the script: Ctrl-C reaches it, and it stops the shaper.
        let run = Example::start("env", &args);
        run.wait_line("the shaper to start", |l| l.starts_with("shaping "))
            .await;
        Some(ShapedLink { run })
    }
}

impl ShapedLink {
    /// Stops the shaper (the script undoes the routing: the host's traffic flows plain
    /// again) and returns its counters. Panics if it failed.
    pub async fn stop(self) -> ShapedCounters {
        self.run.interrupt();
        let counters = |dir: &'static str| {
            let run = &self.run;
            async move {
                let line = run
                    .wait_line("the shaper's counters", |l| l.starts_with(dir))
                    .await;
                Counters::from_line(&line[dir.len()..])
                    .unwrap_or_else(|| panic!("no counters in {line:?}"))
            }
        };
        let up = counters("up: ").await;
        let down = counters("down: ").await;
        assert!(self.run.exit().await, "scripts/nat-lab shape failed");
        ShapedCounters { up, down }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_say_what_the_impairment_is() {
        let impairment = Impairment {
            loss: 0.05,
            jitter: Duration::from_millis(30),
            ..Impairment::fixed_delay(Duration::from_millis(100))
        };
        let flags = shaper_flags(&impairment, 3).join(" ");
        assert_eq!(
            flags,
            "--loss 5 --delay-ms 100 --jitter-ms 30 --reorder 0 --limit 1000 --seed 3"
        );
    }
}
