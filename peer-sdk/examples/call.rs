//! Calls someone with a synthetic camera and microphone and a chat on stdin/stdout:
//!
//! ```sh
//! cargo run -p peer-sdk --example call -- --server ws://127.0.0.1:8080/ws --user alice --to bob
//! ```
//!
//! Run `--example answer -- --user bob` first, in another terminal.

mod common;

use clap::Parser;
use peer_sdk::{CallOptions, ChannelSpec, MediaKind};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    connect: common::Connect,
    /// Who to call.
    #[arg(long)]
    to: String,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let client = args.connect.client().await;
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
            eprintln!("call failed: {}", common::report(&e));
            std::process::exit(1);
        }
    }
    client.close().await;
}
