//! Waits for calls and answers each with a synthetic camera and microphone; chat on
//! stdin/stdout:
//!
//! ```sh
//! cargo run -p peer-sdk --example answer -- --server ws://127.0.0.1:8080/ws --user bob
//! ```

mod common;

use clap::Parser;
use peer_sdk::{AcceptOptions, Client, ClientEvent, MediaKind};

#[derive(Parser)]
struct Args {
    /// The signaling server's WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    server: String,
    /// Who you are.
    #[arg(long)]
    user: String,
    /// A JWT, if the server requires one.
    #[arg(long)]
    token: Option<String>,
    /// Send media through the TURN relay only.
    #[arg(long)]
    relay_only: bool,
    /// Answer one call, then exit.
    #[arg(long)]
    once: bool,
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
                    Err(e) => eprintln!("could not answer: {e}"),
                }
                if args.once {
                    break;
                }
            }
            ClientEvent::Closed(e) => {
                eprintln!("session closed: {e}");
                break;
            }
            other => println!("{other:?}"),
        }
    }
    client.close().await;
}
