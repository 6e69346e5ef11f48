//! The NAT lab from a test: `scripts/nat-lab` builds the namespaces, the signaling server
//! (with its embedded relay) runs in the "public" one, and the SDK's examples call each
//! other from the LANs. Everything is torn down when the [`NatLab`] drops, pass or fail.
#![allow(dead_code, clippy::unwrap_used, clippy::disallowed_methods)]

use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

#[path = "../../../browser-tests/tests/support/example.rs"]
pub mod example;
#[path = "../../../signaling/tests/support/require.rs"]
mod require;

use example::{Example, receives_rtp};
use require::{require, require_root};

/// How long a test waits for something that must happen.
pub const WAIT: Duration = Duration::from_secs(30);

pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

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

    /// Sets NAT box `a` or `b` to `mode` (`prc`, `cone`, `sym`, `udpblock`).
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
        let rtp_lines = |ex: &Example| ex.lines().iter().filter(|l| receives_rtp(l)).count();
        let seen = rtp_lines(&bob);
        within("another status line at bob", async {
            while rtp_lines(&bob) <= seen {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
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

impl Drop for NatLab {
    fn drop(&mut self) {
        self.signaling = None;
        let _ = Command::new(script())
            .arg("down")
            .env("NAT_LAB_PREFIX", &self.prefix)
            .status();
    }
}
