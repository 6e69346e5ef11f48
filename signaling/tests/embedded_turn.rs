//! The embedded relay: `welcome.ice_servers` names it, and the credentials in the
//! welcome allocate and relay on it, checked with coturn's independent client.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use signaling::EmbeddedTurn;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn welcome_credentials_work_on_the_embedded_relay() {
    let server = support::server_with(|c| {
        let mut turn = EmbeddedTurn::new("127.0.0.1:0".parse().unwrap());
        turn.allow_peers = vec!["127.0.0.0/8".parse().unwrap()];
        c.turn = Some(turn);
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
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

    if !coturn_installed() {
        return;
    }
    relays_with_coturn(&username, &password, &[], udp.port()).await;
    // The signaling /metrics shows the relay's traffic.
    let metrics = support::http_get(server.metrics_addr().unwrap(), "/metrics", &[]).await;
    assert!(
        metrics.contains("turn_relayed_bytes_total{direction=\"to_peer\"} 10000"),
        "{metrics}"
    );
    server.shutdown().await;
}

/// coturn's test client and peer are installed (a failure under `CI=true` if not).
fn coturn_installed() -> bool {
    support::require("turnutils_uclient", "coturn") && support::require("turnutils_peer", "coturn")
}

/// coturn's `turnutils_uclient` allocates on the relay at 127.0.0.1:`port` with the
/// credentials (over what `flags` choose: `-t` TCP, `-S` TLS) and relays 100 messages to
/// a `turnutils_peer` and back, none lost.
async fn relays_with_coturn(username: &str, password: &str, flags: &[&str], port: u16) {
    let (_peer, peer) = support::echo_peer("127.0.0.2").await;
    let peer_port = peer.port();
    let run = tokio::process::Command::new("turnutils_uclient")
        .args(flags)
        .args([
            "-u",
            username,
            "-w",
            password,
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
            &port.to_string(),
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_tls_listener_the_welcome_names_turns_and_coturn_relays_over_it() {
    let dir = std::env::temp_dir().join(format!("embedded-turn-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["turn.example.test".into()]).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    // What an operator writes: the TOML keys (the CLI flags have the same names).
    let toml = dir.join("signaling.toml");
    std::fs::write(
        &toml,
        format!(
            "listen = \"127.0.0.1:0\"\nturn_listen = \"127.0.0.1:0\"\nturn_allow_peers = [\"127.0.0.0/8\"]\n\
             turn_tls_listen = \"127.0.0.1:0\"\nturn_tls_cert = {cert_path:?}\nturn_tls_key = {key_path:?}\n\
             turn_tls_host = \"turn.example.test\"\nmetrics_listen = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    let config = signaling::Settings::from_file(&toml)
        .unwrap()
        .resolve()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let server = signaling::Server::start(config).await.unwrap();
    let relay = server.turn().unwrap();
    let tls = relay.tls[0];
    let (_alice, welcome) =
        support::Client::join_with(server.local_addr(), support::hello("alice")).await;
    let ice = &welcome.ice_servers[0];
    assert_eq!(
        ice.urls.last().unwrap(),
        &format!("turns:turn.example.test:{}?transport=tcp", tls.port())
    );
    if !coturn_installed() {
        return;
    }
    let (username, password) = (
        ice.username.clone().unwrap(),
        ice.credential.clone().unwrap(),
    );
    relays_with_coturn(&username, &password, &["-t", "-S"], tls.port()).await;
    let metrics = support::http_get(server.metrics_addr().unwrap(), "/metrics", &[]).await;
    assert!(
        metrics.contains("turn_relayed_bytes_total{direction=\"to_peer\"} 10000"),
        "{metrics}"
    );
    server.shutdown().await;
}
