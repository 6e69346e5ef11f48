//! The NAT lab from a test: `scripts/nat-lab` builds the namespaces, the signaling server
//! (with its embedded relay) runs in the "public" one, and the SDK's examples call each
//! other from the LANs. Everything is torn down when the [`NatLab`] drops, pass or fail.
#![allow(dead_code, clippy::unwrap_used, clippy::disallowed_methods)]

use std::path::PathBuf;
use std::process::Command;

use test_support::browser::{Driver, Launch, Page, browser_installed};
#[allow(unused_imports)]
pub use test_support::example;
use test_support::example::{Example, receives_rtp};
use test_support::pki::{Leaf, TestCa};
use test_support::require::{require, require_root};

/// The public address of the signaling server and relay inside the lab.
pub const PUBLIC: &str = "198.51.100.1";

/// One lab at a time: each runs a signaling server and two WebRTC peers.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct NatLab {
    prefix: String,
    signaling: Option<Example>,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/nat-lab")
}

/// Root and the tools the lab needs; if not, a loud skip, or a failure under `CI=true`.
fn lab_possible() -> bool {
    require_root("the NAT lab (network namespaces)")
        && require("ip", "iproute2")
        && require("iptables", "iptables")
        && require("conntrack", "conntrack")
        && require("curl", "curl")
}

impl NatLab {
    /// Builds the lab under `prefix` (unique per test) and starts signaling in it.
    pub async fn up(prefix: &str, signaling_args: &[&str]) -> Option<NatLab> {
        if !lab_possible() {
            return None;
        }
        let serial = ONE_AT_A_TIME.lock().await;
        let mut lab = NatLab {
            prefix: prefix.to_owned(),
            signaling: None,
            _serial: serial,
        };
        lab.script(&["down"]);
        lab.script(&["up"]);
        lab.start_signaling(signaling_args).await;
        Some(lab)
    }

    fn script(&self, args: &[&str]) {
        let status = Command::new(script())
            .args(args)
            .env("NAT_LAB_PREFIX", &self.prefix)
            .status()
            .expect("run scripts/nat-lab");
        assert!(status.success(), "scripts/nat-lab {args:?} failed");
    }

    /// Sets NAT box `a` or `b` to `mode` (`prc`, `cone`, `sym`, `udpblock`, `tlsonly`).
    pub fn nat(&self, nat_box: &str, mode: &str) {
        self.script(&["nat", nat_box, mode]);
    }

    /// Runs `exe` inside namespace `name` of the lab.
    pub fn spawn(&self, name: &str, exe: &str, args: &[&str]) -> Example {
        let ns = format!("{}{name}", self.prefix);
        let mut all = vec!["netns", "exec", &ns, exe];
        all.extend_from_slice(args);
        Example::start("ip", &all)
    }

    /// (Re)starts the signaling server and relay in the public namespace.
    pub async fn start_signaling(&mut self, extra: &[&str]) {
        self.signaling = None; // kill_on_drop: the old one is gone
        let listen = format!("{PUBLIC}:8080");
        let turn = format!("{PUBLIC}:3478");
        let mut args = vec!["--listen", &listen, "--turn-listen", &turn];
        args.extend_from_slice(extra);
        let server = self.spawn("pub", env!("CARGO_BIN_EXE_lab-signaling"), &args);
        server
            .wait_line("the server to listen", |l| l.contains("open http://"))
            .await;
        self.signaling = Some(server);
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{PUBLIC}:8080/ws")
    }

    /// The server's Prometheus text, fetched from inside the public namespace.
    pub fn metrics(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &format!("{}pub", self.prefix)])
            .args(["curl", "-sf", &format!("http://{PUBLIC}:8080/metrics")])
            .output()
            .unwrap();
        assert!(out.status.success(), "GET /metrics failed");
        String::from_utf8(out.stdout).unwrap()
    }

    /// The sum of the samples of `metric` (all label sets).
    pub fn metric(&self, metric: &str) -> u64 {
        self.metrics()
            .lines()
            .filter(|l| {
                l.strip_prefix(metric)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Bytes our relay has relayed, both directions.
    pub fn relayed_bytes(&self) -> u64 {
        self.metric("turn_relayed_bytes_total")
    }

    /// One call: the `answer` example as bob in `answer_ns`, the `call` example as alice in
    /// `call_ns`. Waits until both receive RTP, measures what the relay carried over one
    /// more status period, hangs up. Returns both sides' candidate pairs.
    pub async fn call(
        &self,
        answer_ns: &str,
        answer_args: &[&str],
        call_ns: &str,
        call_args: &[&str],
    ) -> CallOutcome {
        let ws = self.ws_url();
        let mut args = vec!["--server", &ws, "--user", "bob", "--once"];
        args.extend_from_slice(answer_args);
        let bob = self.spawn(answer_ns, env!("CARGO_BIN_EXE_lab-answer"), &args);
        bob.wait_line("bob to sign in", |l| l.contains("waiting for calls"))
            .await;
        let mut args = vec!["--server", &ws, "--user", "alice", "--to", "bob"];
        args.extend_from_slice(call_args);
        let alice = self.spawn(call_ns, env!("CARGO_BIN_EXE_lab-call"), &args);
        bob.wait_line("RTP at bob", receives_rtp).await;
        alice.wait_line("RTP at alice", receives_rtp).await;
        // Connected: from here on, what the relay carries is this call's media (if any).
        let before = self.relayed_bytes();
        bob.wait_another("another status line at bob", receives_rtp)
            .await;
        let relayed_in_call = self.relayed_bytes() - before;
        let outcome = CallOutcome {
            bob: last_pair(&bob),
            alice: last_pair(&alice),
            relayed_in_call,
        };
        alice.interrupt();
        bob.wait_line("the end of the call at bob", |l| {
            l.starts_with("call ended")
        })
        .await;
        assert!(alice.exit().await, "the call example failed");
        assert!(bob.exit().await, "the answer example failed");
        eprintln!("{outcome:?}");
        outcome
    }
}

/// The candidate pair (local, remote) of the last status line with RTP.
fn last_pair(ex: &Example) -> (String, String) {
    let line = ex
        .lines()
        .into_iter()
        .rev()
        .find(|l| receives_rtp(l))
        .expect("a status line");
    let path = line
        .strip_prefix("path ")
        .and_then(|l| l.split(',').next())
        .unwrap();
    let (local, remote) = path.split_once('/').unwrap();
    (local.to_owned(), remote.to_owned())
}

#[derive(Debug)]
pub struct CallOutcome {
    /// bob's (answerer's) selected pair: (local, remote) candidate types.
    pub bob: (String, String),
    pub alice: (String, String),
    /// Bytes the relay carried once both sides were receiving media, over ~2 s.
    pub relayed_in_call: u64,
}

impl CallOutcome {
    pub fn uses_relay(&self) -> bool {
        [&self.bob, &self.alice]
            .iter()
            .any(|(l, r)| l == "relay" || r == "relay")
    }
}

/// A browser peer: headless Chromium inside one of the lab's namespaces, driven by a
/// chromedriver outside it (over `--remote-debugging-pipe`, which crosses namespaces).
pub struct BrowserPeer {
    pub page: Page,
    _driver: Driver,
}

impl NatLab {
    /// Chromium in namespace `name` showing the web demo. It trusts `pki`'s CA for TURN
    /// over TLS, and treats the lab's plain-http demo as a secure origin (for the camera).
    pub async fn browser(&self, name: &str, pki: &Pki) -> BrowserPeer {
        assert!(
            pki.nss,
            "a browser needs Pki::new (its trust store), not Pki::for_sdk"
        );
        let wrapper = pki.dir.join(format!("chromium-in-{name}"));
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec ip netns exec {}{name} env HOME={} /usr/bin/chromium \"$@\"\n",
                self.prefix,
                pki.home.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let demo = format!("http://{PUBLIC}:8080");
        let launch = Launch {
            binary: wrapper,
            args: vec![
                "--remote-debugging-pipe".into(),
                format!("--unsafely-treat-insecure-origin-as-secure={demo}"),
            ],
        };
        let driver = Driver::start().await;
        let page = driver.page(&format!("{demo}/"), &launch).await;
        BrowserPeer {
            page,
            _driver: driver,
        }
    }
}

/// TLS for the relay's `turns:` listener as a real deployment has it: a CA (made here),
/// a certificate for the relay's address signed by it, and Chromium's trust store (an NSS
/// database under `home`) trusting that CA and nothing else of ours.
pub struct Pki {
    dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA certificate (PEM), for the SDK examples' `--ca`.
    pub ca: PathBuf,
    home: PathBuf,
    nss: bool,
}

impl Pki {
    /// `None` when Chromium or certutil is missing (a failure under `CI=true`).
    pub fn new(prefix: &str) -> Option<Pki> {
        if !(browser_installed() && require("certutil", "libnss3-tools")) {
            return None;
        }
        Some(Pki::make(prefix, true))
    }

    /// The CA and the relay's certificate for SDK peers only (no browser trust store).
    pub fn for_sdk(prefix: &str) -> Pki {
        Pki::make(prefix, false)
    }

    fn make(prefix: &str, nss: bool) -> Pki {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("nat-lab-{prefix}pki"));
        let _ = std::fs::remove_dir_all(&dir);
        let home = dir.join("home");
        let ca = TestCa::new(&dir, "nat-lab");
        let relay = ca.issue(
            "relay",
            &Leaf {
                names: &[PUBLIC],
                ..Leaf::default()
            },
        );
        if nss {
            ca.trust_in_nss(&home);
        }
        Pki {
            cert: relay.cert,
            key: relay.key,
            ca: ca.pem_path(),
            home,
            dir,
            nss,
        }
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

impl Drop for NatLab {
    fn drop(&mut self) {
        self.signaling = None;
        let _ = Command::new(script())
            .arg("down")
            .env("NAT_LAB_PREFIX", &self.prefix)
            .status();
    }
}
