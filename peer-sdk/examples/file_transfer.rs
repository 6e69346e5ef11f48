//! Sends a file over a reliable data channel, with progress on both sides:
//!
//! ```sh
//! cargo run -p peer-sdk --example file_transfer -- --user bob --receive-dir /tmp
//! cargo run -p peer-sdk --example file_transfer -- --user alice --to bob --send ./big.iso
//! ```
//!
//! The sender announces `{"name", "size"}` as text, then sends 16 KiB chunks (the
//! channel's send buffer paces it), then `done`; the receiver answers `ok <bytes>`
//! once everything is written.

#![allow(clippy::disallowed_methods)] // an app: it reads the clock for its progress line

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use peer_sdk::{
    AcceptOptions, CallEvent, CallOptions, ChannelSpec, Client, ClientEvent, DataChannel,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHUNK: usize = 16 * 1024;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    connect: common::Connect,
    /// Call this user and send them `--send`.
    #[arg(long, requires = "send")]
    to: Option<String>,
    /// The file to send.
    #[arg(long)]
    send: Option<PathBuf>,
    /// Where received files go (receiving side).
    #[arg(long, default_value = ".")]
    receive_dir: PathBuf,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let client = args.connect.client().await;
    let result = match (&args.to, &args.send) {
        (Some(to), Some(file)) => send(&client, to, file).await,
        _ => receive(&client, &args.receive_dir).await,
    };
    if let Err(e) = result {
        fail(&e);
    }
    client.close().await;
}

fn fail(message: &str) {
    eprintln!("{message}");
    std::process::exit(1);
}

/// The progress line, redrawn at most four times a second (and at the end).
struct Progress {
    started: Instant,
    drawn: Option<Instant>,
}

impl Progress {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            drawn: None,
        }
    }

    fn update(&mut self, done: u64, total: u64) {
        let due = self
            .drawn
            .is_none_or(|t| t.elapsed() >= std::time::Duration::from_millis(250));
        if due || done == total {
            self.drawn = Some(Instant::now());
            progress(done, total, self.started);
        }
    }

    /// "N bytes in S s, R MB/s".
    fn summary(&self, done: u64) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        format!(
            "{done} bytes in {secs:.1} s, {:.1} MB/s",
            done as f64 / secs / 1e6
        )
    }
}

fn progress(done: u64, total: u64, started: Instant) {
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    let pct = if total == 0 {
        100.0
    } else {
        done as f64 * 100.0 / total as f64
    };
    eprint!(
        "\r{done}/{total} bytes ({pct:.0}%), {:.1} MB/s   ",
        done as f64 / secs / 1e6
    );
}

async fn send(client: &Client, to: &str, path: &Path) -> Result<(), String> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let size = file.metadata().await.map_err(|e| e.to_string())?.len();
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("file")
        .to_owned();
    let call = client
        .call(
            to,
            CallOptions {
                channels: vec![ChannelSpec::reliable("file")],
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("call failed: {}", common::report(&e)))?;
    let channel = call.data_channel("file").ok_or("no channel")?;
    channel.opened().await.map_err(|e| e.to_string())?;
    let header = serde_json::json!({ "name": name, "size": size }).to_string();
    channel
        .send_text(&header)
        .await
        .map_err(|e| e.to_string())?;
    let mut shown = Progress::new();
    let (mut sent, mut buf) = (0u64, vec![0u8; CHUNK]);
    loop {
        let n = file.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        channel
            .send(buf[..n].to_vec())
            .await
            .map_err(|e| e.to_string())?;
        sent += n as u64;
        shown.update(sent, size);
    }
    channel.send_text("done").await.map_err(|e| e.to_string())?;
    let reply = channel
        .recv()
        .await
        .ok_or("the receiver closed the channel")?;
    eprintln!();
    println!("sent {}", shown.summary(sent));
    let stats = call.stats().await;
    if let Some((local, remote)) = stats.pair {
        let relay = stats
            .relay_transport
            .map(|t| format!(", relay {t}"))
            .unwrap_or_default();
        println!("path {local}/{remote}{relay}");
    }
    println!("receiver says: {}", reply.text().unwrap_or("?"));
    call.hangup().await;
    Ok(())
}

async fn receive(client: &Client, dir: &Path) -> Result<(), String> {
    println!("waiting for a file as {}", client.user());
    let incoming = loop {
        match client.next_event().await {
            Some(ClientEvent::Incoming(call)) => break call,
            Some(_) => continue,
            None => return Err("session closed".into()),
        }
    };
    println!("{} sends a file", incoming.from());
    let call = incoming
        .accept(AcceptOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let channel = loop {
        match call.next_event().await {
            Some(CallEvent::DataChannel(c)) if c.label() == "file" => break c,
            Some(CallEvent::Ended(reason)) => return Err(format!("call ended: {reason}")),
            Some(_) => continue,
            None => return Err("call over".into()),
        }
    };
    let written = save(&channel, dir).await?;
    channel
        .send_text(&format!("ok {written}"))
        .await
        .map_err(|e| e.to_string())?;
    call.ended().await;
    Ok(())
}

async fn save(channel: &DataChannel, dir: &Path) -> Result<u64, String> {
    let header = channel.recv().await.ok_or("no header")?;
    let header: serde_json::Value =
        serde_json::from_slice(&header.data).map_err(|e| format!("bad header: {e}"))?;
    let size = header["size"].as_u64().ok_or("header without size")?;
    // Only the file name, never a path from the other side.
    let name = header["name"]
        .as_str()
        .and_then(|n| Path::new(n).file_name())
        .ok_or("header without a file name")?;
    let target = dir.join(name);
    let mut file = tokio::fs::File::create(&target)
        .await
        .map_err(|e| e.to_string())?;
    let (mut shown, mut written) = (Progress::new(), 0u64);
    while let Some(msg) = channel.recv().await {
        if msg.is_text && msg.text() == Some("done") {
            break;
        }
        file.write_all(&msg.data).await.map_err(|e| e.to_string())?;
        written += msg.data.len() as u64;
        shown.update(written, size);
    }
    file.flush().await.map_err(|e| e.to_string())?;
    eprintln!();
    if written != size {
        return Err(format!("got {written} of {size} bytes"));
    }
    println!("saved {} ({})", target.display(), shown.summary(written));
    Ok(written)
}
