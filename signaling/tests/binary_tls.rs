//! The `signaling` binary with `--tls-cert`/`--tls-key`: HTTPS and WSS on its listener, and
//! a renewed certificate picked up on SIGHUP while open connections stay.

#![allow(clippy::unwrap_used)] // a test that cannot set up must fail loudly

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use test_support::pki::{CertFiles, Leaf, TestCa};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use tokio_tungstenite::tungstenite::{self, Message, WebSocket};

const WAIT: Duration = Duration::from_secs(10);

/// The server process, killed if the test fails before it stops it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The binary on a free port with TLS from `files`; returns it, the first line it
/// printed, and its log lines as they come.
fn start(files: &CertFiles) -> (Running, String, Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_signaling"))
        .env_remove("RUST_LOG")
        .args(["--listen", "127.0.0.1:0", "--no-turn", "--log", "info"])
        .arg("--tls-cert")
        .arg(&files.cert)
        .arg("--tls-key")
        .arg(&files.key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn signaling");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read the first line");
    let (tx, logs) = channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (Running(child), line, logs)
}

/// Waits for a log line containing `needle`.
fn wait_log(logs: &Receiver<String>, needle: &str) -> String {
    loop {
        let line = logs
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("no log line with {needle:?}: {e}"));
        if line.contains(needle) {
            return line;
        }
    }
}

fn client_config(ca: &TestCa) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A TLS connection to `addr`, handshake done (the certificate checked against `config`).
fn tls_connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> Tls {
    let name = ServerName::try_from(addr.ip().to_string()).unwrap();
    let mut conn = ClientConnection::new(config.clone(), name).unwrap();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    StreamOwned::new(conn, tcp)
}

/// The certificate a new connection is served.
fn served(addr: SocketAddr, config: &Arc<ClientConfig>) -> CertificateDer<'static> {
    let tls = tls_connect(addr, config);
    tls.conn.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

fn file_cert(files: &CertFiles) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(&files.cert).unwrap()
}

/// A signed-in WebSocket over TLS.
fn open_wss(addr: SocketAddr, config: &Arc<ClientConfig>) -> WebSocket<Tls> {
    let tls = tls_connect(addr, config);
    let (mut ws, _) = tungstenite::client(format!("wss://{addr}/ws"), tls).unwrap();
    let hello = r#"{"type":"hello","version":1,"user":"alice"}"#;
    ws.send(Message::text(hello)).unwrap();
    expect_text(&mut ws, "\"welcome\"");
    ws
}

fn expect_text(ws: &mut WebSocket<Tls>, needle: &str) {
    loop {
        match ws.read().unwrap() {
            Message::Text(text) if text.contains(needle) => return,
            Message::Text(text) => panic!("expected {needle}, got {text}"),
            _ => {}
        }
    }
}

/// The open WebSocket still answers.
fn ping(ws: &mut WebSocket<Tls>) {
    ws.send(Message::text(r#"{"type":"ping"}"#)).unwrap();
    expect_text(ws, "\"pong\"");
}

fn https_get(addr: SocketAddr, config: &Arc<ClientConfig>, path: &str) -> String {
    let mut tls = tls_connect(addr, config);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    // A close without close_notify is an error here; what came before it is the answer.
    let _ = tls.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn serves_https_and_wss_and_reloads_the_certificate_on_sighup() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("binary-tls");
    let _ = std::fs::remove_dir_all(&dir);
    let ca = TestCa::new(&dir, "binary-tls");
    let files = ca.issue("server", &Leaf::default());
    let first = file_cert(&files);
    let (mut child, line, logs) = start(&files);

    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .unwrap_or_else(|| panic!("no https:// URL in {line:?}"));
    assert!(line.contains("wss://127.0.0.1:"), "{line}");
    let addr: SocketAddr = url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let config = client_config(&ca);
    let health = https_get(addr, &config, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let mut ws = open_wss(addr, &config);
    assert_eq!(served(addr, &config), first);

    // A renewed certificate: new handshakes get it, the open WebSocket stays.
    let renewed = Leaf {
        serial: 2,
        ..Leaf::default()
    };
    let renewed = file_cert(&ca.issue("server", &renewed));
    assert_ne!(renewed, first);
    signal(&child.0, "HUP");
    wait_log(&logs, "TLS certificate reloaded");
    assert_eq!(served(addr, &config), renewed);
    ping(&mut ws);

    // A broken file: the reload fails, says so, and the renewed certificate stays.
    std::fs::write(&files.cert, "not a certificate").unwrap();
    signal(&child.0, "HUP");
    let error = wait_log(&logs, "not reloaded");
    assert!(error.contains("tls_cert"), "{error}");
    assert_eq!(served(addr, &config), renewed);
    ping(&mut ws);
    let mut fresh = open_wss(addr, &config);
    ping(&mut fresh);

    signal(&child.0, "TERM");
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status}");
}
