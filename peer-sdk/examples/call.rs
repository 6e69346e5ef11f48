//! Calls someone with a synthetic camera and microphone and a chat on stdin/stdout:
//!
//! ```sh
//! cargo run -p peer-sdk --example call -- --server ws://127.0.0.1:8080/ws --user alice --to bob
//! ```
//!
//! Run `--example answer -- --user bob` first, in another terminal.

mod common;

use clap::Parser;
use peer_sdk::{CallOptions, ChannelSpec, Client, MediaKind};

#[derive(Parser)]
struct Args {
    /// The signaling server's WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    server: String,
    /// Who you are.
    #[arg(long)]
    user: String,
    /// Who to call.
    #[arg(long)]
    to: String,
    /// A JWT, if the server requires one.
    #[arg(long)]
    token: Option<String>,
    /// Send media through the TURN relay only.
    #[arg(long)]
    relay_only: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let options = common::peer_options(args.relay_only);
    let client = match Client::connect_with(
        &args.server,
        &args.user,
        args.token.as_deref(),
        options,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot connect: {e}");
            std::process::exit(1);
        }
    };
    println!("signed in as {}; calling {}", client.user(), args.to);
    let call = client
        .call(
            &args.to,
            CallOptions {
                tracks: vec![MediaKind::Audio, MediaKind::Video],
                channels: vec![ChannelSpec::reliable("chat")],
                meta: Some(serde_json::json!({ "app": "peer-sdk example" })),
                ..Default::default()
            },
        )
        .await;
    match call {
        Ok(call) => {
            println!("{} answered; type to chat, Ctrl-C to hang up", call.peer());
            common::run(call).await;
        }
        Err(e) => {
            eprintln!("call failed: {e}");
            std::process::exit(1);
        }
    }
    client.close().await;
}
