//! An impaired network with delay and reordering (issue 16): alice's LAN host loses 5% of
//! its packets each way and waits 100 ms ± 30 ms each way (uniform jitter, which reorders
//! packets sent closer together than 60 ms), through `lab-shaper`, the lab's userspace
//! `tc netem` (`scripts/nat-lab shape`; this kernel has no netem). An SDK call connects
//! with media both ways, and a file crosses a reliable data channel byte for byte; the
//! shaper's counters show that it really dropped, delayed and reordered packets both ways.
//! docs/nat-lab.md ("An impaired network").
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::time::{Duration, Instant};

use nat_lab::{Counters, Impairment};

/// 1 MiB: with a round trip of about 200 ms more and 5% loss each way, SCTP gets through
/// at tens of KB/s here (docs/nat-lab.md), so well under a minute.
const SIZE: usize = 1 << 20;

/// Bounds the transfer: several times what it takes here.
const TRANSFER_LIMIT: Duration = Duration::from_secs(150);

fn netem_like() -> Impairment {
    Impairment {
        loss: 0.05,
        jitter: Duration::from_millis(30),
        ..Impairment::fixed_delay(Duration::from_millis(100))
    }
}

/// The shaper did its job on one direction: it dropped, delayed and reordered.
fn impaired(dir: &str, c: &Counters) {
    assert!(c.received > 100, "{dir}: {c}");
    assert!(c.dropped > 0, "{dir}: nothing dropped: {c}");
    assert!(
        c.delayed >= c.received - c.dropped - c.overflowed,
        "{dir}: {c}"
    );
    assert!(c.reordered > 0, "{dir}: nothing reordered: {c}");
    let share = c.dropped as f64 / c.received as f64;
    assert!(
        (0.02..0.10).contains(&share),
        "{dir}: dropped {share:.3}: {c}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_loss_delay_and_reordering_a_call_connects_and_a_file_arrives_intact() {
    let Some(lab) = support::lab("nl11-", None).await else {
        return;
    };
    let Some(link) = lab.shape("a", &netem_like(), 11).await else {
        return;
    };
    // A call with media: both behind port-restricted cones, so direct.
    let call = lab.call("lanb", &[], "lana", &[]).await;
    assert!(!call.uses_relay(), "{call:?}");
    let started = Instant::now();
    let done = support::transfer(&lab, "nl11", SIZE, None, TRANSFER_LIMIT).await;
    let took = started.elapsed();
    assert!(done.path.starts_with("path "), "{}", done.path);
    let counters = link.stop().await;
    impaired("up", &counters.up);
    impaired("down", &counters.down);
    eprintln!(
        "media call set up in {:?} ({} / {}); {} ({}) in {took:?} with sign-in; \
         shaper up: {}; down: {}",
        call.setup, call.alice, call.bob, done.sent, done.path, counters.up, counters.down
    );
}
