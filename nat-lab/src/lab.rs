//! One lab: `scripts/nat-lab` builds the namespaces, the signaling server (with its
//! embedded relay) runs in the "public" one. Everything is torn down when the [`NatLab`]
//! drops, pass or fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use test_support::example::Example;
use test_support::require::{require, require_root};

use crate::pki::Pki;

/// The public address of the signaling server and relay inside the lab.
pub const PUBLIC: &str = "198.51.100.1";
/// The signaling server's metrics port (`--metrics-listen`), beside its 8080.
const METRICS_PORT: u16 = 9464;

/// One lab at a time in a process: each runs a signaling server and WebRTC peers.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The programs the lab runs: the nat-lab crate's `lab-*` binaries. Tests name them with
/// `env!("CARGO_BIN_EXE_…")`; `lab-matrix` finds them beside itself.
#[derive(Clone, Debug)]
pub struct Programs {
    /// `lab-signaling`: the signaling server with its embedded relay.
    pub signaling: PathBuf,
    /// `lab-call`: the SDK's `call` example.
    pub call: PathBuf,
    /// `lab-answer`: the SDK's `answer` example.
    pub answer: PathBuf,
    /// `lab-shaper`: the userspace netem behind `scripts/nat-lab shape`.
    pub shaper: PathBuf,
}

impl Programs {
    /// The `lab-*` binaries in the directory of the running program (`target/<profile>/`).
    pub fn beside_this_program() -> Programs {
        let exe = std::env::current_exe().expect("the running program's path");
        let dir = exe.parent().expect("a directory").to_owned();
        Programs {
            signaling: dir.join("lab-signaling"),
            call: dir.join("lab-call"),
            answer: dir.join("lab-answer"),
            shaper: dir.join("lab-shaper"),
        }
    }
}

/// A running lab: its namespaces (under its prefix) and its signaling server.
pub struct NatLab {
    prefix: String,
    programs: Programs,
    /// Signaling flags every (re)start gets: the relay's TLS listener, with a PKI.
    tls_args: Vec<String>,
    /// The CA the SDK peers trust (`--ca`), with a PKI.
    ca: Option<PathBuf>,
    signaling: Option<Example>,
    /// Numbers the users of successive calls, so that a call never meets a user of the
    /// one before that the server has not seen leave yet.
    calls: AtomicU32,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

/// `scripts/nat-lab`.
pub(crate) fn script() -> PathBuf {
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
    /// Builds the lab under `prefix` (unique per test) and starts signaling in it. With
    /// `pki`, the relay also listens for TURN over TLS on 5349 (`turns:` in the welcome)
    /// and the SDK peers trust its CA.
    pub async fn up(prefix: &str, programs: Programs, pki: Option<&Pki>) -> Option<NatLab> {
        if !lab_possible() {
            return None;
        }
        let serial = ONE_AT_A_TIME.lock().await;
        let mut lab = NatLab {
            prefix: prefix.to_owned(),
            programs,
            tls_args: pki.map(Pki::signaling_args).unwrap_or_default(),
            ca: pki.map(|p| p.ca.clone()),
            signaling: None,
            calls: AtomicU32::new(0),
            _serial: serial,
        };
        lab.script(&["down"]);
        lab.script(&["up"]);
        lab.start_signaling(&[]).await;
        Some(lab)
    }

    /// The programs this lab runs.
    pub fn programs(&self) -> &Programs {
        &self.programs
    }

    /// The prefix of the lab's namespaces (`NAT_LAB_PREFIX` of the script).
    pub fn prefix(&self) -> &str {
        &self.prefix
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

    /// Drops `percent`% of what namespace `name` sends and receives, at random.
    pub fn lossy(&self, name: &str, percent: u32) {
        self.script(&["lossy", name, &percent.to_string()]);
    }

    /// Runs `exe` inside namespace `name` of the lab.
    pub fn spawn(&self, name: &str, exe: &str, args: &[&str]) -> Example {
        let ns = format!("{}{name}", self.prefix);
        let mut all = vec!["netns", "exec", &ns, exe];
        all.extend_from_slice(args);
        Example::start("ip", &all)
    }

    /// Runs one of the SDK's examples in `name`: signed in as `user`, trusting the lab's
    /// CA if it has one, with `extra` flags.
    pub fn spawn_peer(&self, name: &str, exe: &Path, user: &str, extra: &[&str]) -> Example {
        let ws = self.ws_url();
        let mut args = vec!["--server", &ws, "--user", user];
        let ca = self.ca.as_ref().map(|c| c.display().to_string());
        if let Some(ca) = &ca {
            args.extend(["--ca", ca]);
        }
        args.extend_from_slice(extra);
        self.spawn(name, &exe.display().to_string(), &args)
    }

    /// A fresh number for the users of the next call.
    pub fn next_call(&self) -> u32 {
        self.calls.fetch_add(1, Ordering::Relaxed)
    }

    /// (Re)starts the signaling server and relay in the public namespace, with the TLS
    /// listener of the lab's PKI and `extra` flags.
    pub async fn start_signaling(&mut self, extra: &[&str]) {
        // Gone for good before the new one binds the same ports (a kill alone returns
        // before the process has closed its sockets: the new one then failed to bind).
        if let Some(old) = self.signaling.take() {
            old.stop().await;
        }
        let listen = format!("{PUBLIC}:8080");
        let turn = format!("{PUBLIC}:3478");
        // Metrics on their own port, as an operator keeps them (read from inside `pub`).
        let metrics = format!("{PUBLIC}:{METRICS_PORT}");
        let mut args = vec![
            "--listen",
            &listen,
            "--turn-listen",
            &turn,
            "--metrics-listen",
            &metrics,
        ];
        args.extend(self.tls_args.iter().map(String::as_str));
        args.extend_from_slice(extra);
        let exe = self.programs.signaling.display().to_string();
        let server = self.spawn("pub", &exe, &args);
        server
            .wait_line("the server to listen", |l| l.contains("open http://"))
            .await;
        self.signaling = Some(server);
    }

    /// The signaling server's WebSocket URL, as peers inside the lab reach it.
    pub fn ws_url(&self) -> String {
        format!("ws://{PUBLIC}:8080/ws")
    }

    /// Runs a program in a namespace of the lab from a shell script (Chromium's wrapper).
    pub fn netns_exec(&self, name: &str) -> String {
        format!("ip netns exec {}{name}", self.prefix)
    }

    /// The server's Prometheus text, fetched from inside the public namespace.
    pub fn metrics(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &format!("{}pub", self.prefix)])
            .args([
                "curl",
                "-sf",
                &format!("http://{PUBLIC}:{METRICS_PORT}/metrics"),
            ])
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
