//! Shared by the examples: a synthetic camera and microphone (looping VP8 and Opus
//! files), a stdin chat, and a status line with the connection type and stats.
#![allow(dead_code)]

use std::io::Cursor;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use peer_sdk::{Call, CallEvent, DataChannel, LocalTrack, MediaKind, RemoteTrack};
use rtc::media::io::ivf_reader::IVFReader;
use rtc::media::io::ogg_reader::OggReader;

const VIDEO: &[u8] = include_bytes!("../media/testsrc.ivf");
const AUDIO: &[u8] = include_bytes!("../media/sine.ogg");

/// Sends the looping test pattern or tone on `track` until the call ends.
pub fn feed(track: LocalTrack) {
    tokio::spawn(async move {
        let frames = match track.kind() {
            MediaKind::Video => video_frames(),
            MediaKind::Audio => audio_frames(),
        };
        let (frames, every) = match frames {
            Ok(f) => f,
            Err(e) => return eprintln!("cannot read the synthetic media: {e}"),
        };
        let mut tick = tokio::time::interval(every);
        for frame in frames.iter().cycle() {
            tick.tick().await;
            match track.write_sample(frame.clone(), every).await {
                Ok(()) | Err(peer_sdk::Error::NotNegotiated) => {}
                Err(_) => return, // the call is over
            }
        }
    });
}

fn video_frames() -> Result<(Vec<Bytes>, Duration), String> {
    let (mut reader, header) = IVFReader::new(Cursor::new(VIDEO)).map_err(|e| e.to_string())?;
    let every = Duration::from_secs_f64(
        f64::from(header.timebase_numerator) / f64::from(header.timebase_denominator.max(1)),
    );
    let mut frames = Vec::new();
    while let Ok((frame, _)) = reader.parse_next_frame() {
        frames.push(frame.freeze());
    }
    Ok((frames, every))
}

fn audio_frames() -> Result<(Vec<Bytes>, Duration), String> {
    let (mut reader, _) = OggReader::new(Cursor::new(AUDIO), true).map_err(|e| e.to_string())?;
    let mut frames = Vec::new();
    while let Ok((page, _)) = reader.parse_next_page() {
        // The first two pages are the Opus head and tags, not audio.
        if !page.starts_with(b"OpusHead") && !page.starts_with(b"OpusTags") {
            frames.push(page.freeze());
        }
    }
    Ok((frames, Duration::from_millis(20)))
}

/// Lines typed on stdin go to `chat`.
pub fn chat_from_stdin(chat: DataChannel) {
    tokio::spawn(async move {
        // One call at a time reads stdin; the next call takes over when this one ends.
        let mut lines = stdin_lines().lock().await;
        while let Some(line) = lines.recv().await {
            if let Err(e) = chat.send_text(&line).await {
                eprintln!("chat: {e}");
                return;
            }
        }
    });
}

/// Stdin, line by line, read on a thread of its own: tokio's stdin would keep the runtime
/// from shutting down (and the program from exiting) until the next line or end of input.
fn stdin_lines() -> &'static tokio::sync::Mutex<tokio::sync::mpsc::Receiver<String>> {
    static LINES: OnceLock<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<String>>> =
        OnceLock::new();
    LINES.get_or_init(|| {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { return };
                if tx.blocking_send(line).is_err() {
                    return;
                }
            }
        });
        tokio::sync::Mutex::new(rx)
    })
}

/// Messages received on `chat` are printed.
pub fn print_chat(chat: DataChannel, from: String) {
    tokio::spawn(async move {
        while let Some(msg) = chat.recv().await {
            println!("{from}: {}", msg.text().unwrap_or("<binary>"));
        }
    });
}

/// Counts the packets of a remote track; the call's first packet (of any track) is
/// announced at once, so a harness can time the call's setup more finely than the 2 s
/// status line allows.
fn count(track: RemoteTrack, counter: std::sync::Arc<std::sync::atomic::AtomicU64>) {
    tokio::spawn(async move {
        while track.recv().await.is_some() {
            if counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0 {
                println!("first RTP packet in ({})", track.mime_type());
            }
        }
    });
}

/// Runs a connected call until it ends or Ctrl-C: sends media, chats, prints stats.
pub async fn run(call: Call) {
    for track in call.local_tracks() {
        feed(track);
    }
    if let Some(chat) = call.data_channel("chat") {
        print_chat(chat.clone(), call.peer().to_string());
        chat_from_stdin(chat);
    }
    let received = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut status = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            event = call.next_event() => match event {
                Some(CallEvent::Track(track)) => {
                    println!("receiving {} ({})", track.mime_type(), call.peer());
                    count(track, received.clone());
                }
                Some(CallEvent::DataChannel(chat)) => {
                    println!("data channel '{}' opened by {}", chat.label(), call.peer());
                    print_chat(chat.clone(), call.peer().to_string());
                    chat_from_stdin(chat);
                }
                Some(CallEvent::Connection(state)) => println!("connection: {state:?}"),
                Some(CallEvent::Ended(reason)) => {
                    println!("call ended: {reason}");
                    return;
                }
                Some(other) => println!("{other:?}"),
                None => return,
            },
            _ = status.tick() => {
                let stats = call.stats().await;
                let path = match stats.pair {
                    Some((local, remote)) => format!("{local}/{remote}"),
                    None => "not connected yet".to_owned(),
                };
                // ", relay tcp": how this side reaches its relay, when it uses one.
                let relay = stats
                    .relay_transport
                    .map(|t| format!(", relay {t}"))
                    .unwrap_or_default();
                let rtt = stats.rtt.map(|r| format!("{:.1} ms", r.as_secs_f64() * 1e3));
                println!(
                    "path {path}{relay}, rtt {}, sent {} B, received {} B, {} RTP packets in",
                    rtt.unwrap_or_else(|| "-".into()),
                    stats.bytes_sent,
                    stats.bytes_received,
                    received.load(std::sync::atomic::Ordering::Relaxed),
                );
            }
            _ = tokio::signal::ctrl_c() => {
                println!("hanging up");
                call.hangup().await;
                return;
            }
        }
    }
}

// How every example signs in (flattened into each one's arguments; a doc comment here
// would become every example's --help title).
#[derive(clap::Args)]
pub struct Connect {
    /// The signaling server's WebSocket URL (ws:// or wss://).
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub server: String,
    /// A PEM file of CA certificates to trust for wss:// besides the built-in roots (a
    /// self-hosted server's own CA).
    #[arg(long)]
    pub ca: Option<std::path::PathBuf>,
    /// Who you are.
    #[arg(long)]
    pub user: String,
    /// A JWT, if the server requires one.
    #[arg(long)]
    pub token: Option<String>,
    /// Send media and data through the TURN relay only.
    #[arg(long)]
    pub relay_only: bool,
}

impl Connect {
    /// Signs in, or exits with the reason.
    pub async fn client(&self) -> peer_sdk::Client {
        logs();
        let mut options = peer_sdk::ClientOptions::default();
        if self.relay_only {
            options.peer.policy = peer_sdk::IcePolicy::RelayOnly;
        }
        if let Some(path) = &self.ca {
            match std::fs::read(path) {
                Ok(pem) => options.extra_ca_pem = Some(pem),
                Err(e) => {
                    eprintln!("cannot read --ca {}: {e}", path.display());
                    std::process::exit(1);
                }
            }
        }
        let token = self.token.as_deref();
        match peer_sdk::Client::connect_with(&self.server, &self.user, token, options).await {
            Ok(client) => client,
            Err(e) => {
                eprintln!("cannot connect: {}", report(&e));
                if let Some(hint) = hint(&e) {
                    eprintln!("{hint}");
                }
                std::process::exit(1);
            }
        }
    }
}

/// An error and its sources, on one line: the SDK's message says what failed, the
/// sources say why (e.g. `Connection refused (os error 111)`).
pub fn report(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut next = e.source();
    while let Some(source) = next {
        line.push_str(": ");
        line.push_str(&source.to_string());
        next = source.source();
    }
    line
}

/// What the user can do about a failed connect, for the failures that have a remedy.
fn hint(e: &peer_sdk::Error) -> Option<&'static str> {
    use peer_sdk::ConnectErrorKind as Kind;
    let peer_sdk::Error::Connect(e) = e else {
        return None;
    };
    match e.kind() {
        Kind::Dns => Some("check the host name in --server"),
        Kind::Tcp if e.io_kind() == Some(std::io::ErrorKind::ConnectionRefused) => {
            Some("nothing listens there: is the signaling server running?")
        }
        Kind::Handshake { status: Some(404) } => Some("check the path in --server (usually /ws)"),
        Kind::Handshake {
            status: Some(401 | 403),
        } => Some("the server, or a proxy in front of it, refused the request"),
        Kind::Handshake { status: Some(503) } => Some("the server is full: try again later"),
        Kind::Tls => match e.tls_failure() {
            Some(peer_sdk::TlsFailure::UnknownIssuer) => {
                Some("a self-hosted server's own CA: pass it with --ca ca.pem")
            }
            Some(peer_sdk::TlsFailure::NameMismatch) => {
                Some("use the host name or address the certificate was issued for in --server")
            }
            _ => None,
        },
        _ => None,
    }
}

/// With `RUST_LOG` set (e.g. `RUST_LOG=peer_sdk=debug,rtc_dtls=trace`), the SDK's and
/// webrtc-rs's logs go to stderr; without it, nothing is logged.
fn logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
}
