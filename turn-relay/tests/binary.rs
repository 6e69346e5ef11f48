//! The `turn-relay` binary as an operator runs it: printed listeners, config errors with
//! exit code 2, graceful exit on SIGTERM.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn relay() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_turn-relay"));
    cmd.env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .args(["--log", "warn"]);
    cmd
}

#[test]
fn prints_its_listeners_answers_stun_and_stops_on_sigterm() {
    let mut child = relay()
        .args(["--listen", "127.0.0.1:0", "--users", "alice:pw"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut line, mut metrics_line) = (String::new(), String::new());
    stdout.read_line(&mut line).unwrap();
    stdout.read_line(&mut metrics_line).unwrap();
    assert!(
        line.starts_with("turn-relay: listening on udp 127.0.0.1:"),
        "{line}"
    );
    let udp = line
        .split_whitespace()
        .nth(4)
        .unwrap()
        .trim_end_matches(',');
    // A STUN Binding request gets a success response (0x0101).
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    request.extend_from_slice(&[7u8; 12]);
    socket.send_to(&request, udp).unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = socket.recv_from(&mut buf).unwrap();
    assert!(n >= 20 && buf[..2] == [0x01, 0x01], "{:?}", &buf[..n]);
    assert_eq!(buf[8..20], request[8..20], "same transaction id");
    // The metrics endpoint serves the relay's counters.
    let url = metrics_line.trim().rsplit(' ').next().unwrap();
    let host = url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics");
    let mut http = std::net::TcpStream::connect(host).unwrap();
    write!(
        http,
        "GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    http.read_to_string(&mut response).unwrap();
    assert!(response.contains("turn_allocations"), "{response}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success());
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("turn-relay did not exit within 5 s of SIGTERM");
}

#[test]
fn configuration_errors_name_the_setting_and_exit_2() {
    for (args, key) in [
        (vec!["--listen", "127.0.0.1:0"], "`users`"),
        (
            vec!["--listen", "127.0.0.1:0", "--users", "alice"],
            "`users`",
        ),
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--rest-secret",
                "s",
                "--relay-ports",
                "9-8",
            ],
            "`relay_ports`",
        ),
        (
            vec![
                "--tls-listen",
                "127.0.0.1:0",
                "--rest-secret",
                "s",
                "--listen",
                "127.0.0.1:0",
            ],
            "`tls_cert`",
        ),
    ] {
        let out = relay().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("configuration error") && stderr.contains(key),
            "{stderr}"
        );
    }
}

/// Runs the relay to its exit; returns its exit code and standard error.
fn run(cmd: &mut Command) -> (Option<i32>, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn each_layer_names_the_bad_setting() {
    let dir = std::env::temp_dir().join(format!("turn-relay-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("turn.toml");
    // A value of the wrong type in the file: the file, the key, what was expected, where.
    std::fs::write(&file, "rest_secret = \"s\"\nlisten = 5\n").unwrap();
    let (code, stderr) = run(relay().arg("--config").arg(&file));
    assert_eq!(code, Some(2), "{stderr}");
    let wanted = format!(
        "turn-relay: configuration error: config file {}: key `listen`: invalid type: integer `5`, expected a sequence (line 2, column 10)",
        file.display()
    );
    assert!(stderr.contains(&wanted), "{stderr}");
    // An unknown key in the file.
    std::fs::write(&file, "rest_secret = \"s\"\nmax_chanels = 5\n").unwrap();
    let (code, stderr) = run(relay().env("TURN_CONFIG", &file));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "config file {}: key `max_chanels`: unknown field",
            file.display()
        )) && stderr.contains("(line 2, column 1)"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    // A bad value in the environment names the variable and the flag.
    let (code, stderr) = run(relay().env("TURN_MAX_CHANNELS", "many"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("configuration error: environment variable TURN_MAX_CHANNELS: invalid value 'many' for '--max-channels <MAX_CHANNELS>'"),
        "{stderr}"
    );
    // A bad value of a flag: clap's error, which names the flag.
    let (code, stderr) = run(relay().args(["--max-channels", "many"]));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("'--max-channels <MAX_CHANNELS>'"),
        "{stderr}"
    );
    // A flag beats the variable, which is not read then.
    let (code, stderr) = run(relay().env("TURN_MAX_CHANNELS", "many").args([
        "--max-channels",
        "0",
        "--users",
        "a:b",
        "--listen",
        "127.0.0.1:0",
    ]));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("`max_channels`: must be at least 1"),
        "{stderr}"
    );
}

#[test]
fn help_documents_the_security_settings() {
    let out = relay().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--allow-peers",
        "--deny-peers",
        "--rest-secret",
        "--max-allocations-per-user",
        "--tls-cert",
        "--external-ip",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    // Defaults and variables come from the declarations; secrets are not shown.
    assert!(
        help.contains("[env: TURN_MAX_CHANNELS=") && help.contains("[default: 100]"),
        "{help}"
    );
    let out = relay()
        .arg("--help")
        .env("TURN_REST_SECRET", "hunter2")
        .env("TURN_USERS", "a:hunter3")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(help.contains("[env: TURN_REST_SECRET]"), "{help}");
    assert!(!help.contains("hunter"), "{help}");
}
