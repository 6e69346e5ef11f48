//! The SDK paces what it sends under the server's message limit, which the server names in
//! `welcome` (`rate_per_s`, `rate_burst`; docs/protocol.md). Over the limit the server drops
//! a message and answers `rate_limited`; a dropped candidate, accept or hangup left a call
//! hanging (peer-bench stalled after about 30 back-to-back calls on the default 50/s,
//! burst 200). This runs calls back to back against a server limited to 5 messages/s,
//! burst 10: every call connects, and the server dropped nothing.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_calls_stay_under_the_servers_message_limit() {
    let server = support::server_with(|c| {
        c.rate_per_s = 5;
        c.rate_burst = 10;
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let (alice, bob) = support::alice_and_bob(server.local_addr(), support::options()).await;
    // Each call costs alice an invite, her candidates and a hangup, and bob an accept and
    // his candidates: four calls are well over a burst of 10 on both sockets.
    for _ in 0..4 {
        let (call, bob_call) = support::answered_chat_call(&alice, &bob).await;
        let chat = call.data_channel("chat").unwrap();
        support::within("the chat channel to open", chat.opened())
            .await
            .unwrap();
        call.hangup().await;
        support::within("bob to see the hangup", bob_call.ended()).await;
    }
    let metrics =
        test_support::signaling_server::http_get(server.metrics_addr().unwrap(), "/metrics", &[])
            .await;
    assert!(
        !metrics.contains("type=\"rate_limited\""),
        "the server dropped messages over its limit:\n{metrics}"
    );
    assert!(
        metrics.contains("signaling_messages_in_total{type=\"hangup\"} 4"),
        "all four hangups arrived:\n{metrics}"
    );
}
