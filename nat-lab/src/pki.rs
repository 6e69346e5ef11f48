//! TLS for the relay's `turns:` listener as a real deployment has it: a CA (made here), a
//! certificate for the relay's address signed by it, and Chromium's trust store (an NSS
//! database under `home`) trusting that CA and nothing else of ours.

use std::path::{Path, PathBuf};

use test_support::pki::{Leaf, TestCa};
use test_support::require::require;

use crate::lab::PUBLIC;

pub struct Pki {
    /// Where it all lives (also Chromium's wrapper scripts).
    pub dir: PathBuf,
    /// The CA certificate (PEM), for the SDK peers' `--ca`.
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The `HOME` whose NSS database trusts the CA.
    pub home: PathBuf,
}

impl Pki {
    /// A fresh PKI in `dir` (replacing what was there). `None` when certutil is missing
    /// (a failure under `CI=true`).
    pub fn new(dir: &Path) -> Option<Pki> {
        if !require("certutil", "libnss3-tools") {
            return None;
        }
        let _ = std::fs::remove_dir_all(dir);
        let home = dir.join("home");
        let ca = TestCa::new(dir, "nat-lab");
        let relay = ca.issue(
            "relay",
            &Leaf {
                names: &[PUBLIC],
                ..Leaf::default()
            },
        );
        ca.trust_in_nss(&home);
        Some(Pki {
            dir: dir.to_owned(),
            ca: ca.pem_path(),
            cert: relay.cert,
            key: relay.key,
            home,
        })
    }

    /// Signaling flags for the relay's TLS listener on 5349 with this certificate.
    pub fn signaling_args(&self) -> Vec<String> {
        vec![
            "--turn-tls-listen".into(),
            format!("{PUBLIC}:5349"),
            "--turn-tls-cert".into(),
            self.cert.display().to_string(),
            "--turn-tls-key".into(),
            self.key.display().to_string(),
        ]
    }
}
