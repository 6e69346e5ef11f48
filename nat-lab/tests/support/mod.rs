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
