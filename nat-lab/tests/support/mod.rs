//! What the lab's tests share beyond the nat-lab library: the programs cargo built for
//! them, and a place for their PKI.
#![allow(dead_code)]

use std::path::PathBuf;

pub use nat_lab::{NatLab, Pki, Programs};

/// The `lab-*` binaries, as cargo names them for integration tests.
pub fn programs() -> Programs {
    Programs {
        signaling: env!("CARGO_BIN_EXE_lab-signaling").into(),
        call: env!("CARGO_BIN_EXE_lab-call").into(),
        answer: env!("CARGO_BIN_EXE_lab-answer").into(),
        shaper: env!("CARGO_BIN_EXE_lab-shaper").into(),
    }
}

/// A lab under `prefix` (unique per test), with TURN over TLS when given a PKI.
pub async fn lab(prefix: &str, pki: Option<&Pki>) -> Option<NatLab> {
    NatLab::up(prefix, programs(), pki).await
}

/// Where a test under `prefix` keeps its PKI.
pub fn pki_dir(prefix: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("nat-lab-{prefix}pki"))
}

/// A PKI for a browser test: `None` (a loud skip, or a failure under `CI=true`) without
/// Chromium or certutil.
pub fn browser_pki(prefix: &str) -> Option<Pki> {
    if !test_support::browser::browser_installed() {
        return None;
    }
    Pki::new(&pki_dir(prefix))
}

/// What [`transfer`] saw: the sender's path line, its summary, and the relay's byte count
/// during it.
pub struct Transfer {
    /// `path <local>/<remote>[, relay <t>]`.
    pub path: String,
    /// `sent <n> bytes in <s> s, <r> MB/s`: from the channel's opening to the receiver's
    /// reply.
    pub sent: String,
    /// What the relay carried meanwhile, both ways.
    pub relayed: u64,
}

/// Alice in `lana` sends bob in `lanb` a file of `size` pseudo-random bytes with the SDK's
/// `file_transfer` example (trusting `ca` if given) and waits at most `limit` for bob's
/// answer. Asserts that both ends succeed and that the file arrived byte for byte.
pub async fn transfer(
    lab: &NatLab,
    name: &str,
    size: usize,
    ca: Option<&str>,
    limit: std::time::Duration,
) -> Transfer {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("nat-lab-{name}-files"));
    let _ = std::fs::remove_dir_all(&dir);
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    // Not compressible, not periodic: a byte out of place shows.
    let mut data = vec![0u8; size];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let file = dir.join("payload.bin");
    std::fs::write(&file, &data).unwrap();
    let ws = lab.ws_url();
    let (file_arg, inbox_arg) = (file.display().to_string(), inbox.display().to_string());
    let exe = env!("CARGO_BIN_EXE_lab-file-transfer");
    let trust: Vec<&str> = ca.map(|ca| vec!["--ca", ca]).unwrap_or_default();
    let mut bob_args = vec![
        "--server",
        &ws,
        "--user",
        "bob",
        "--receive-dir",
        &inbox_arg,
    ];
    bob_args.extend(&trust);
    let bob = lab.spawn("lanb", exe, &bob_args);
    bob.wait_line("bob to sign in", |l| l.contains("waiting for a file"))
        .await;
    let relayed_before = lab.relayed_bytes();
    let mut alice_args = vec![
        "--server", &ws, "--user", "alice", "--to", "bob", "--send", &file_arg,
    ];
    alice_args.extend(&trust);
    let alice = lab.spawn("lana", exe, &alice_args);
    let reply = alice
        .wait_line_for(limit, "the receiver's reply", |l| {
            l.starts_with("receiver says")
        })
        .await;
    assert_eq!(reply, format!("receiver says: ok {size}"));
    let path = alice
        .wait_line("the path", |l| l.starts_with("path "))
        .await;
    let sent = alice
        .wait_line("the sender's summary", |l| l.starts_with("sent "))
        .await;
    assert!(alice.exit().await, "the sender failed");
    assert!(bob.exit().await, "the receiver failed");
    let received = std::fs::read(inbox.join("payload.bin")).unwrap();
    assert_eq!(received.len(), size);
    assert!(received == data, "the file arrived changed");
    let relayed = lab.relayed_bytes() - relayed_before;
    let _ = std::fs::remove_dir_all(&dir);
    Transfer {
        path,
        sent,
        relayed,
    }
}
