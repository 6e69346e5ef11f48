//! The `signaling` binary as an operator runs it: flags, config file, printed URL,
//! graceful shutdown on SIGTERM.

#![allow(clippy::unwrap_used)] // a test that cannot set up must fail loudly

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn signaling() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_signaling"));
    cmd.env_remove("RUST_LOG").stdin(Stdio::null());
    cmd
}

/// Starts the binary on a free port; returns it with the URL it printed.
fn start(args: &[&str]) -> (Child, String) {
    let (child, url, _) = start_printing(args);
    (child, url)
}

/// [`start`], also returning the metrics URL it printed (with `--metrics-listen`).
fn start_printing(args: &[&str]) -> (Child, String, Option<String>) {
    let mut child = signaling()
        .args(["--listen", "127.0.0.1:0", "--turn-listen", "127.0.0.1:0"])
        .args(["--log", "warn"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn signaling");
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).expect("read the first line");
    let url = support::printed_url(&line).to_string();
    // The relay line, then the metrics line when there is a metrics listener.
    let mut rest = String::new();
    reader.read_line(&mut rest).expect("read the relay line");
    let metrics_url = args.contains(&"--metrics-listen").then(|| {
        let mut metrics = String::new();
        reader
            .read_line(&mut metrics)
            .expect("read the metrics line");
        support::printed_url(&metrics)
            .trim_end_matches("metrics")
            .to_string()
    });
    (child, url, metrics_url)
}

fn http_get(url: &str, path: &str) -> String {
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    response
}

fn terminate(mut child: Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    for _ in 0..100 {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("signaling did not exit within 5 s of SIGTERM");
}

#[test]
fn prints_the_url_serves_and_stops_on_sigterm() {
    let (child, url, metrics_url) = start_printing(&["--metrics-listen", "127.0.0.1:0"]);
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0/"),
        "{url}"
    );
    let health = http_get(&url, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let page = http_get(&url, "/");
    assert!(
        page.contains("text/html") && page.contains("<html"),
        "{page}"
    );
    // Metrics are on their own listener (its URL printed), not on the user-facing one.
    let public = http_get(&url, "/metrics");
    assert!(public.starts_with("HTTP/1.1 404"), "{public}");
    let metrics = http_get(&metrics_url.unwrap(), "/metrics");
    assert!(metrics.contains("signaling_connections"), "{metrics}");
    // The embedded relay's metrics are in the same exposition, which ends once.
    assert!(metrics.contains("turn_allocations"), "{metrics}");
    assert_eq!(metrics.matches("# EOF").count(), 1, "{metrics}");
    assert!(terminate(child).success());
}

#[test]
fn reads_a_toml_file_and_flags_override_it() {
    let dir = std::env::temp_dir().join(format!("signaling-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("signaling.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:1\"\nring_timeout_s = 5\n").unwrap();
    // --listen from start() overrides the file's unusable port 1.
    let (child, url) = start(&["--config", file.to_str().unwrap()]);
    assert!(!url.contains(":1/"), "{url}");
    assert!(terminate(child).success());
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let out = signaling().args(["--heartbeat-s", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("heartbeat_s"), "{err}");

    let out = signaling()
        .env("SIGNALING_JWT_SECRET", "short")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("jwt_secret"));

    let dir = std::env::temp_dir().join(format!("signaling-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("typo.toml");
    let shown = file.display();
    // Each layer's error names where the value came from and the setting.
    for (toml, env, args, wanted) in [
        (
            "ring_timout_s = 5\n",
            None,
            &[][..],
            format!("config file {shown}: key `ring_timout_s`: unknown field `ring_timout_s`"),
        ),
        (
            "heartbeat_s = 20\nlisten = 5\n",
            None,
            &[],
            format!(
                "config file {shown}: key `listen`: invalid type: integer `5`, expected socket address (line 2, column 10)"
            ),
        ),
        (
            "",
            Some(("SIGNALING_RING_TIMEOUT_S", "soon")),
            &[],
            "environment variable SIGNALING_RING_TIMEOUT_S: invalid value 'soon' for '--ring-timeout-s <RING_TIMEOUT_S>'".into(),
        ),
        (
            "",
            None,
            &["--ring-timeout-s", "soon"][..],
            "invalid value 'soon' for '--ring-timeout-s <RING_TIMEOUT_S>'".into(),
        ),
        (
            "ring_timeout_s = 5\n",
            Some(("SIGNALING_RING_TIMEOUT_S", "0")),
            &[],
            "configuration error: `ring_timeout_s`: must be between 1 and 86400".into(),
        ),
    ] {
        std::fs::write(&file, toml).unwrap();
        let mut cmd = signaling();
        cmd.arg("--config").arg(&file).args(args);
        if let Some((var, value)) = env {
            cmd.env(var, value);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(&wanted), "{wanted:?} not in {stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_documents_every_setting() {
    let out = signaling().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--config",
        "--jwt-secret",
        "--jwt-public-key",
        "--jwt-algorithm",
        "--allowed-origins",
        "--ice-urls",
        "--turn-secret",
        "--turn-credential-ttl-s",
        "--heartbeat-s",
        "--resume-ttl-s",
        "--ring-timeout-s",
        "--max-message-bytes",
        "--rate-per-s",
        "--rate-burst",
        "--max-calls-per-session",
        "--send-queue",
        "--resume-queue",
        "--max-connections",
        "--log",
        "SIGNALING_LISTEN",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    // Defaults and variables come from the declarations; secrets are not shown.
    assert!(
        help.contains("[env: SIGNALING_RING_TIMEOUT_S=") && help.contains("[default: 45]"),
        "{help}"
    );
    let out = signaling()
        .arg("--help")
        .env("SIGNALING_JWT_SECRET", "hunter2-hunter2-hunter2")
        .env("SIGNALING_TURN_SECRET", "hunter3")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("[env: SIGNALING_JWT_SECRET]"), "{help}");
    assert!(!help.contains("hunter"), "{help}");
}

#[test]
#[allow(clippy::disallowed_methods)] // times the start to show that it does not hang
fn an_unreachable_redis_is_a_clear_error_at_start() {
    // A port nobody listens on (bound, read, closed), with a password that must not show.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let out = signaling()
        .args(["--listen", "127.0.0.1:0", "--no-turn", "--log", "off"])
        .args(["--redis-url", &url])
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "no hang");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("cannot connect to Redis"),
        "names the URL and the error: {stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "the password is hidden: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // --node-id is checked like any setting: a bad one is a configuration error (exit 2).
    let out = signaling()
        .args(["--redis-url", &url, "--node-id", "no spaces"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("node_id"));
}
