//! An app outside the peer-sdk workspace: signs in two clients (`alice`, `bob`) to the
//! signaling server at the URL given as the only argument, has alice call bob with a data
//! channel, sends a message each way, hangs up and prints the call's setup time.
//!
//! Prints `setup: <ms> ms` (from `call` to the channel open on alice's side), `path: …`
//! and `ok` at the end; exits with status 1 and a message on any failure or after 30 s.

use std::error::Error;
use std::time::{Duration, Instant};

use peer_sdk::{
    AcceptOptions, CallEvent, CallOptions, ChannelSpec, Client, ClientEvent, ClientOptions,
    DataChannel, PeerOptions,
};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

#[tokio::main]
async fn main() {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: outside-app ws://HOST:PORT/ws");
        std::process::exit(2);
    };
    match tokio::time::timeout(Duration::from_secs(30), run(&url)).await {
        Ok(Ok(())) => println!("ok"),
        Ok(Err(e)) => fail(&*e),
        Err(_) => fail(&*Box::<dyn Error>::from("timed out after 30 s")),
    }
}

/// Prints `e` with its sources and exits with status 1.
fn fail(e: &(dyn Error + 'static)) -> ! {
    let mut message = format!("outside-app failed: {e}");
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    eprintln!("{message}");
    std::process::exit(1);
}

/// Host candidates on loopback only: the call stays on this machine.
fn options() -> ClientOptions {
    ClientOptions {
        peer: PeerOptions {
            bind: vec!["127.0.0.1:0".parse().expect("a socket address")],
            ..PeerOptions::default()
        },
        ..ClientOptions::default()
    }
}

async fn run(url: &str) -> Result<()> {
    let alice = Client::connect_with(url, "alice", None, options()).await?;
    let bob = Client::connect_with(url, "bob", None, options()).await?;

    let answering = tokio::spawn({
        let bob = bob.clone();
        async move { answer(&bob).await }
    });
    let started = Instant::now();
    let call = alice
        .call(
            "bob",
            CallOptions {
                channels: vec![ChannelSpec::reliable("chat")],
                ..Default::default()
            },
        )
        .await?;
    let chat = call.data_channel("chat").ok_or("no chat channel")?;
    chat.opened().await?;
    let setup = started.elapsed();

    chat.send_text("hello from alice").await?;
    let (bob_call, bob_chat) = answering.await??;
    expect(&bob_chat, "hello from alice").await?;
    bob_chat.send_text("hello from bob").await?;
    expect(&chat, "hello from bob").await?;

    let stats = call.stats().await;
    println!("setup: {} ms", setup.as_millis());
    if let Some((local, remote)) = stats.pair {
        println!("path: {local}/{remote}");
    }
    call.hangup().await;
    bob_call.ended().await;
    alice.close().await;
    bob.close().await;
    Ok(())
}

/// Answers the next incoming call and returns it with the channel the caller opened.
async fn answer(bob: &Client) -> Result<(peer_sdk::Call, DataChannel)> {
    let incoming = loop {
        match bob.next_event().await {
            Some(ClientEvent::Incoming(incoming)) => break incoming,
            Some(_) => continue,
            None => return Err("bob's client closed before a call came in".into()),
        }
    };
    let call = incoming.accept(AcceptOptions::default()).await?;
    loop {
        match call.next_event().await {
            Some(CallEvent::DataChannel(channel)) => return Ok((call, channel)),
            Some(CallEvent::Ended(reason)) => return Err(format!("call ended: {reason}").into()),
            Some(_) => continue,
            None => return Err("no data channel from alice".into()),
        }
    }
}

async fn expect(channel: &DataChannel, text: &str) -> Result<()> {
    let message = channel.recv().await.ok_or("the channel closed")?;
    match message.text() {
        Some(got) if got == text => Ok(()),
        got => Err(format!("expected {text:?}, got {got:?}").into()),
    }
}
