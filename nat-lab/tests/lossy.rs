//! An impaired network (issue 16): alice's LAN host drops 5% of what it sends and of what it
//! receives, at random (`scripts/nat-lab lossy`, iptables `statistic`). Signaling (TCP)
//! retransmits, ICE retries its checks, and SCTP repairs the data channel: the call
//! connects, and a 4 MiB file arrives byte for byte. Only loss here; delay, jitter and
//! reordering on top of it are `impaired.rs`, through the lab's userspace shaper (`tc
//! netem` is not in this machine's kernel). docs/nat-lab.md.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::time::Duration;

/// 4 MiB: with 5% loss each way, SCTP gets through at about 0.15 MB/s here (many
/// retransmission timeouts: docs/nat-lab.md), so about half a minute.
const SIZE: usize = 4 << 20;

/// Bounds the transfer: many times what it takes here.
const TRANSFER_LIMIT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_five_percent_loss_a_call_connects_and_a_file_arrives_intact() {
    let Some(lab) = support::lab("nl10-", None).await else {
        return;
    };
    lab.lossy("lana", 5);
    let started = std::time::Instant::now();
    let done = support::transfer(&lab, "nl10", SIZE, None, TRANSFER_LIMIT).await;
    // Both behind port-restricted cones: a direct path (relay only if ICE gave up on it).
    assert!(done.path.starts_with("path "), "{}", done.path);
    eprintln!("{} in {:?} with 5% loss", done.path, started.elapsed());
}
