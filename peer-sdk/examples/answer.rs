//! Waits for calls and answers each with a synthetic camera and microphone; chat on
//! stdin/stdout:
//!
//! ```sh
//! cargo run -p peer-sdk --example answer -- --server ws://127.0.0.1:8080/ws --user bob
//! ```

mod common;

use clap::Parser;
use peer_sdk::{AcceptOptions, ClientEvent, MediaKind};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    connect: common::Connect,
    /// Answer one call, then exit.
    #[arg(long)]
    once: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let client = args.connect.client().await;
    println!("signed in as {}; waiting for calls", client.user());
    while let Some(event) = client.next_event().await {
        match event {
            ClientEvent::Incoming(incoming) => {
                println!(
                    "{} calls (meta: {:?}); answering",
                    incoming.from(),
                    incoming.meta()
                );
                let accepted = incoming
                    .accept(AcceptOptions {
                        tracks: vec![MediaKind::Audio, MediaKind::Video],
                        ..Default::default()
                    })
                    .await;
                match accepted {
                    Ok(call) => common::run(call).await,
                    Err(e) => eprintln!("could not answer: {}", common::report(&e)),
                }
                if args.once {
                    break;
                }
            }
            ClientEvent::Closed(e) => {
                eprintln!("session closed: {}", common::report(&e));
                break;
            }
            other => println!("{other:?}"),
        }
    }
    client.close().await;
}
