//! The embedded relay: `welcome.ice_servers` names it, and the credentials in the
//! welcome allocate and relay on it, checked with coturn's independent client.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // waits for an external peer process to bind

mod support;

use std::process::Stdio;
use std::time::Duration;

use signaling::turn::EmbeddedTurn;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn welcome_credentials_work_on_the_embedded_relay() {
    let server = support::server_with(|c| {
        let mut turn = EmbeddedTurn::new("127.0.0.1:0".parse().unwrap());
        turn.allow_peers = vec!["127.0.0.0/8".parse().unwrap()];
        c.turn = Some(turn);
    })
    .await;
    let relay = server.turn().unwrap();
    let (udp, tcp) = (relay.udp[0], relay.tcp[0]);
    let (_alice, welcome) =
        support::Client::join_with(server.local_addr(), support::hello("alice")).await;
    let ice = &welcome.ice_servers[0];
    assert_eq!(
        ice.urls,
        vec![
            format!("stun:127.0.0.1:{}", udp.port()),
            format!("turn:127.0.0.1:{}?transport=udp", udp.port()),
            format!("turn:127.0.0.1:{}?transport=tcp", tcp.port()),
        ]
    );
    let (username, password) = (
        ice.username.clone().unwrap(),
        ice.credential.clone().unwrap(),
    );
    assert!(username.ends_with(":alice"), "{username}");

    if !support::require("turnutils_uclient", "coturn")
        || !support::require("turnutils_peer", "coturn")
    {
        return;
    }
    let peer_port = std::net::UdpSocket::bind("127.0.0.2:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _peer = tokio::process::Command::new("turnutils_peer")
        .args(["-L", "127.0.0.2", "-p", &peer_port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let run = tokio::process::Command::new("turnutils_uclient")
        .args([
            "-u",
            &username,
            "-w",
            &password,
            "-e",
            "127.0.0.2",
            "-r",
            &peer_port.to_string(),
        ])
        .args([
            "-m",
            "2",
            "-l",
            "100",
            "-n",
            "50",
            "-z",
            "1",
            "-c",
            "-p",
            &udp.port().to_string(),
            "127.0.0.1",
        ])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .unwrap()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("tot_send_msgs=100, tot_recv_msgs=100"),
        "{text}"
    );
    assert!(text.contains("Total lost packets 0 "), "{text}");
    // The signaling /metrics shows the relay's traffic.
    let metrics = support::http_get(server.local_addr(), "/metrics", &[]).await;
    assert!(
        metrics.contains("turn_relayed_bytes_total{direction=\"to_peer\"} 10000"),
        "{metrics}"
    );
    server.shutdown().await;
}
