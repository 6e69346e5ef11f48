//! How calls end before or instead of connecting, and bad input: every failure is typed.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use peer_sdk::{
    AcceptOptions, Argument, CallEvent, CallOptions, CallState, Client, ConnectErrorKind,
    EndReason, Error, ErrorCode, RejectReason,
};
use support::within;

fn chat() -> CallOptions {
    CallOptions {
        channels: vec![peer_sdk::ChannelSpec::reliable("chat")],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calling_someone_offline_fails_with_unavailable() {
    let server = support::server().await;
    let alice = support::connect(server.local_addr(), "alice").await;
    let result = within("the call", alice.call("nobody", chat())).await;
    assert!(
        matches!(result, Err(Error::CallEnded(EndReason::Unavailable))),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_reject_reaches_the_caller_as_busy() {
    let server = support::server().await;
    let alice = support::connect(server.local_addr(), "alice").await;
    let bob = support::connect(server.local_addr(), "bob").await;
    let call = alice.dial("bob", chat()).await.unwrap();
    assert!(matches!(call.state(), CallState::Dialing));
    let incoming = support::incoming(&bob).await;
    incoming.reject(RejectReason::Busy).unwrap();
    let result = within("the answer", call.answered()).await;
    assert!(
        matches!(result, Err(Error::CallEnded(EndReason::Busy))),
        "{result:?}"
    );
    assert_eq!(call.ended().await, EndReason::Busy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_call_times_out_on_both_sides() {
    let server = support::server_with(|c| c.ring_timeout = Duration::from_millis(300)).await;
    let alice = support::connect(server.local_addr(), "alice").await;
    let bob = support::connect(server.local_addr(), "bob").await;
    let call = alice.dial("bob", chat()).await.unwrap();
    let mut incoming = support::incoming(&bob).await;
    let result = within("the answer", call.answered()).await;
    assert!(
        matches!(result, Err(Error::CallEnded(EndReason::Timeout))),
        "{result:?}"
    );
    assert_eq!(
        within("ringing to stop", incoming.stopped_ringing()).await,
        EndReason::Timeout
    );
    // Answering now is refused with the reason, not sent.
    let late = incoming.accept(AcceptOptions::default()).await;
    assert!(
        matches!(late, Err(Error::CallEnded(EndReason::Timeout))),
        "{late:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_cancels_while_it_rings() {
    let server = support::server().await;
    let alice = support::connect(server.local_addr(), "alice").await;
    let bob = support::connect(server.local_addr(), "bob").await;
    let call = alice.dial("bob", chat()).await.unwrap();
    let mut incoming = support::incoming(&bob).await;
    call.hangup().await;
    assert_eq!(
        within("ringing to stop", incoming.stopped_ringing()).await,
        EndReason::Hangup
    );
    assert!(matches!(
        call.answered().await,
        Err(Error::CallEnded(EndReason::Hangup))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_devices_the_first_to_answer_wins() {
    let server = support::server().await;
    let alice = support::connect(server.local_addr(), "alice").await;
    let phone = support::connect(server.local_addr(), "bob").await;
    let laptop = support::connect(server.local_addr(), "bob").await;
    let call = alice.dial("bob", chat()).await.unwrap();
    let on_phone = support::incoming(&phone).await;
    let mut on_laptop = support::incoming(&laptop).await;
    assert_eq!(on_phone.id(), on_laptop.id());
    let bob_call = within("accept", on_phone.accept(AcceptOptions::default()))
        .await
        .unwrap();
    assert_eq!(
        within("the laptop to stop ringing", on_laptop.stopped_ringing()).await,
        EndReason::AnsweredElsewhere
    );
    within("the answer", call.answered()).await.unwrap();
    within("alice connected", call.connected()).await.unwrap();
    within("bob connected", bob_call.connected()).await.unwrap();
    bob_call.hangup().await;
    assert_eq!(within("the end", call.ended()).await, EndReason::Hangup);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_typed_errors() {
    let server = support::server_with(|c| {
        c.auth = signaling::Auth::Jwt(signaling::JwtAuth::hs256(b"secret-for-tests"));
    })
    .await;
    let url = support::url(server.local_addr());

    let bad_name = Client::connect(&url, "not a name!", None).await;
    assert!(
        matches!(
            bad_name,
            Err(Error::Invalid {
                what: Argument::User,
                ..
            })
        ),
        "{bad_name:?}"
    );

    let no_token = Client::connect(&url, "alice", None).await;
    assert!(
        matches!(
            no_token,
            Err(Error::Refused {
                code: ErrorCode::Unauthorized,
                ..
            })
        ),
        "{no_token:?}"
    );

    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("ws://{}/ws", closed_port.local_addr().unwrap());
    drop(closed_port);
    let unreachable = Client::connect(&dead, "alice", None).await;
    assert!(
        matches!(&unreachable, Err(Error::Connect(e)) if e.kind() == ConnectErrorKind::Tcp),
        "{unreachable:?}"
    );

    let open = support::server().await;
    let alice = support::connect(open.local_addr(), "alice").await;
    let big = serde_json::json!({ "blob": "x".repeat(5000) });
    let too_big = alice
        .dial(
            "bob",
            CallOptions {
                meta: Some(big),
                ..chat()
            },
        )
        .await;
    assert!(
        matches!(
            too_big,
            Err(Error::Invalid {
                what: Argument::Meta,
                ..
            })
        ),
        "{too_big:?}"
    );
    let bad_callee = alice.dial("no such user!", chat()).await;
    assert!(
        matches!(
            bad_callee,
            Err(Error::Invalid {
                what: Argument::Callee,
                ..
            })
        ),
        "{bad_callee:?}"
    );
    let empty = alice.dial("bob", CallOptions::default()).await;
    assert!(
        matches!(
            empty,
            Err(Error::Invalid {
                what: Argument::CallOptions,
                ..
            })
        ),
        "{empty:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hangup_and_close_arrive_even_if_the_program_exits_right_after() {
    let server = support::server().await;
    let addr = server.local_addr();
    let bob = support::connect(addr, "bob").await;
    // Alice lives on a runtime of her own, shut down at once after close(), as when a
    // program's main returns (the SDK examples do this on Ctrl-C).
    let alice = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let alice = support::connect(addr, "alice").await;
            let call = alice.call("bob", chat()).await.unwrap();
            call.hangup().await;
            alice.close().await;
        });
        runtime.shutdown_background();
    });
    let call = support::answer(&bob, AcceptOptions::default()).await;
    tokio::task::spawn_blocking(move || alice.join().unwrap())
        .await
        .unwrap();
    // Well before the 30 s resume ttl would turn it into peer_lost.
    let reason = support::call_event(&call, "the hangup", |e| match e {
        CallEvent::Ended(reason) => Some(reason),
        _ => None,
    })
    .await;
    assert_eq!(reason, EndReason::Hangup);
}
