//! Several nodes sharing a private redis-server: three nodes in one call, a node killed
//! with SIGKILL mid-call, Redis stopped and restarted mid-call. (Every call flow and every
//! resume runs on two nodes in wire_calls.rs and wire_resume.rs.)

#![allow(clippy::unwrap_used)] // a test that cannot set up must fail loudly
#![allow(clippy::disallowed_methods)] // bounded polling of /readyz

#[macro_use]
mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use signaling::ClusterSettings;
use signaling_protocol::{EndReason, Hello, ServerMessage};
use support::*;
use test_support::redis_server::RedisServer;

/// A short lease, so that a dead node is noticed within a test's patience.
const LEASE: Duration = Duration::from_millis(1000);

/// A node of the cluster at `redis` in this process.
async fn node(redis: &RedisServer, name: &str) -> signaling::Server {
    server_with(|c| {
        let mut cluster = ClusterSettings::new(&redis.url(), name).unwrap();
        cluster.lease = LEASE;
        c.cluster = Some(cluster);
    })
    .await
}

/// A node of the cluster at `redis` as its own process (so that it can be killed); returns
/// it with its address.
fn node_process(redis: &RedisServer, name: &str) -> (Child, SocketAddr) {
    node_process_with(redis, name, &[])
}

/// [`node_process`] with more flags.
fn node_process_with(redis: &RedisServer, name: &str, flags: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_signaling"))
        .env_remove("RUST_LOG")
        .args(["--listen", "127.0.0.1:0", "--no-turn", "--log", "warn"])
        .args(["--redis-url", &redis.url(), "--node-id", name])
        .args(["--node-lease-ms", &LEASE.as_millis().to_string()])
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn signaling");
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let addr = printed_url(&line)
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    // Keep reading its stdout so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in reader.lines() {});
    (child, addr)
}

/// `GET /readyz` until its status line contains `status`, for at most 10 s.
async fn readyz_becomes(addr: SocketAddr, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = http_get(addr, "/readyz", &[]).await;
        if response.lines().next().is_some_and(|l| l.contains(status)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never said {status}: {response}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// alice on a node of its own process (`name`, with `flags`), bob on an in-process
/// survivor, in call `c1`.
struct CallAcrossAProcess {
    redis: RedisServer,
    process: Child,
    survivor: signaling::Server,
    alice: Client,
    bob: Client,
}

impl CallAcrossAProcess {
    /// `None`: no redis-server (a loud skip outside CI).
    async fn start(name: &str, flags: &[&str]) -> Option<Self> {
        let redis = RedisServer::start()?;
        let (process, addr) = node_process_with(&redis, name, flags);
        let survivor = node(&redis, "survivor").await;
        let mut alice = Client::join(addr, "alice").await;
        let mut bob = Client::join(survivor.local_addr(), "bob").await;
        connected_call(&mut alice, &mut bob, "c1", "alice", "bob").await;
        Some(Self {
            redis,
            process,
            survivor,
            alice,
            bob,
        })
    }
}

/// Sends `signal` (`-TERM`, …) to `child`.
fn signal(child: &Child, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

#[tokio::test]
async fn a_callee_with_devices_on_two_nodes_and_a_caller_on_a_third() {
    let Some(d) = Deployment::new(3, |_| {}).await else {
        return;
    };
    let mut phone = Client::join(d.addr(0), "bob").await;
    let mut laptop = Client::join(d.addr(1), "bob").await;
    let mut alice = Client::join(d.addr(2), "alice").await;
    alice.invite("c1", "bob").await;
    phone.expect_invite("c1", "alice").await;
    laptop.expect_invite("c1", "alice").await;
    alice.expect_ringing("c1").await;
    alice.send(&candidate("c1", "to every device")).await;
    assert!(matches!(phone.recv().await, ServerMessage::Candidate(_)));
    assert!(matches!(laptop.recv().await, ServerMessage::Candidate(_)));
    laptop.accept("c1").await;
    assert!(matches!(alice.recv().await, ServerMessage::Accepted(_)));
    phone.expect_ended("c1", EndReason::AnsweredElsewhere).await;
    laptop.send(&candidate("c1", "from the laptop")).await;
    assert!(matches!(alice.recv().await, ServerMessage::Candidate(_)));
    alice.hangup("c1").await;
    laptop.expect_ended("c1", EndReason::Hangup).await;
    phone.expect_silence(Duration::from_millis(200)).await;
    d.shutdown().await;
}

#[tokio::test]
async fn a_node_killed_mid_call_is_peer_lost_and_its_users_sign_in_elsewhere() {
    let Some(CallAcrossAProcess {
        redis,
        process: mut doomed,
        survivor,
        alice: _alice,
        mut bob,
    }) = CallAcrossAProcess::start("doomed", &[]).await
    else {
        return;
    };
    doomed.kill().unwrap(); // SIGKILL: no goodbye to Redis or to anyone
    doomed.wait().unwrap();
    let killed = Instant::now();
    bob.expect_ended("c1", EndReason::PeerLost).await;
    let noticed = killed.elapsed();
    assert!(
        noticed < LEASE * 4,
        "peer_lost {noticed:?} after the kill (lease {LEASE:?})"
    );
    // alice signs in again at once, on the survivor, and can be called there.
    let mut alice = Client::join(survivor.local_addr(), "alice").await;
    bob.invite("c2", "alice").await;
    alice.expect_invite("c2", "bob").await;
    bob.expect_ringing("c2").await;
    alice.accept("c2").await;
    assert!(matches!(bob.recv().await, ServerMessage::Accepted(_)));
    // No ghost of the dead node is left: an observer sees alice on the survivor only.
    let observer = signaling_cluster::ClusterConfig::new(
        redis.url(),
        signaling_cluster::NodeId::new("observer").unwrap(),
    );
    let (observer, _inbox) = signaling_cluster::Cluster::connect(observer).await.unwrap();
    let sessions = observer.sessions("alice").await.unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0].node.as_str(), "survivor");
    let live = observer.live_nodes().await.unwrap();
    assert!(live.iter().all(|n| n.as_str() != "doomed"), "{live:?}");
    observer.leave().await.unwrap();
    survivor.shutdown().await;
}

/// A node killed and restarted under the same id at once (systemd's `Restart=`), quicker
/// than the others' grace for a missing lease: they still see that the process holding its
/// lease changed, so the calls of its old process end (`peer_lost`) instead of hanging.
#[tokio::test]
async fn a_node_restarted_under_the_same_id_mid_call_is_peer_lost() {
    let Some(CallAcrossAProcess {
        redis,
        process: mut first,
        survivor,
        alice: _alice,
        mut bob,
    }) = CallAcrossAProcess::start("phoenix", &[]).await
    else {
        return;
    };
    first.kill().unwrap();
    first.wait().unwrap();
    let (mut second, second_addr) = node_process(&redis, "phoenix");
    bob.expect_ended("c1", EndReason::PeerLost).await;
    // The new process serves: alice signs in there and is called from the survivor.
    let mut alice = Client::join(second_addr, "alice").await;
    ring(&mut bob, &mut alice, "c2", "bob", "alice").await;
    second.kill().unwrap();
    second.wait().unwrap();
    survivor.shutdown().await;
}

#[tokio::test]
async fn redis_stopped_and_restarted_mid_call() {
    let Some(mut d) = Deployment::new(2, |_| {}).await else {
        return;
    };
    let mut alice = Client::join(d.addr(0), "alice").await;
    let mut bob = Client::join(d.addr(1), "bob").await;
    connected_call(&mut alice, &mut bob, "c1", "alice", "bob").await;
    let mut carol = Client::join(d.addr(0), "carol").await;
    let mut dave = Client::join(d.addr(0), "dave").await;
    connected_call(&mut carol, &mut dave, "k1", "carol", "dave").await;

    d.redis.as_mut().unwrap().stop();
    for addr in [d.addr(0), d.addr(1)] {
        readyz_becomes(addr, "503").await;
    }
    // A call whose parties share a node goes on without Redis.
    carol.send(&candidate("k1", "no redis needed")).await;
    assert!(matches!(dave.recv().await, ServerMessage::Candidate(_)));
    dave.send(&candidate("k1", "and back")).await;
    assert!(matches!(carol.recv().await, ServerMessage::Candidate(_)));

    d.redis.as_mut().unwrap().restart(); // empty: the nodes register everything again
    for addr in [d.addr(0), d.addr(1)] {
        readyz_becomes(addr, "200").await;
    }
    // The cross-node call works again, without restarting any node.
    alice.send(&candidate("c1", "redis is back")).await;
    assert!(matches!(bob.recv().await, ServerMessage::Candidate(_)));
    bob.send(&candidate("c1", "so it is")).await;
    assert!(matches!(alice.recv().await, ServerMessage::Candidate(_)));
    // Presence was registered again: a new cross-node call finds dave on node 0.
    bob.invite("c2", "dave").await;
    dave.expect_invite("c2", "bob").await;
    bob.expect_ringing("c2").await;
    d.shutdown().await;
}

/// A client of the draining node: reads (counting, for `received`) until the node tells it
/// to move with close code 4001; returns the candidate texts it got before that.
async fn until_told_to_move(c: &mut Client, received: &mut u64) -> Vec<String> {
    let mut texts = Vec::new();
    loop {
        match c.recv_close_or_message().await {
            Ok(msg) => {
                *received += 1;
                if let ServerMessage::Candidate(cand) = msg {
                    texts.extend(cand.candidate.map(|c| c.candidate));
                }
            }
            Err(code) => {
                assert_eq!(code, Some(switchboard::CLOSE_MOVE), "told to move");
                return texts;
            }
        }
    }
}

/// Reads `n` candidates and returns their texts.
async fn candidates(c: &mut Client, n: usize) -> Vec<String> {
    let mut texts = Vec::new();
    while texts.len() < n {
        match c.recv().await {
            ServerMessage::Candidate(cand) => texts.extend(cand.candidate.map(|c| c.candidate)),
            other => panic!("expected a candidate, got {other:?}"),
        }
    }
    texts
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix} {i}")).collect()
}

/// SIGTERM on a node mid-call drains it: it stops taking connections, tells its clients to
/// resume elsewhere (4001), and their sessions and calls move to the nodes they come back
/// on, with nothing lost or repeated; it exits once empty, long before its drain timeout,
/// and the calls go on without it.
#[tokio::test]
async fn a_node_drained_with_sigterm_mid_call_hands_its_calls_over() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (mut draining, draining_addr) = node_process(&redis, "draining");
    let one = node(&redis, "one").await;
    let two = node(&redis, "two").await;
    let counting = |user: &str| Hello {
        received: Some(0),
        ..hello(user)
    };
    // alice (draining) calls bob (one); carol calls dave, both on the draining node.
    let (mut alice, alice_w) = Client::join_with(draining_addr, counting("alice")).await;
    let (mut bob, _) = Client::join_with(one.local_addr(), counting("bob")).await;
    let (mut carol, carol_w) = Client::join_with(draining_addr, counting("carol")).await;
    let (mut dave, dave_w) = Client::join_with(draining_addr, counting("dave")).await;
    connected_call(&mut alice, &mut bob, "c1", "alice", "bob").await;
    connected_call(&mut carol, &mut dave, "c2", "carol", "dave").await;
    // Messages on their way to the draining node's clients as it starts draining.
    for text in numbered("to alice", 20) {
        bob.send(&candidate("c1", &text)).await;
    }
    for text in numbered("to dave", 20) {
        carol.send(&candidate("c2", &text)).await;
    }
    signal(&draining, "-TERM");
    let sigterm = Instant::now();
    // Each client reads what came before the move, counting from what it has read so far
    // (a caller `ringing` and `accepted`, a callee its `invite`), then resumes elsewhere.
    let (mut alice_n, mut carol_n, mut dave_n) = (2u64, 2u64, 1u64);
    let mut to_alice = until_told_to_move(&mut alice, &mut alice_n).await;
    let _ = until_told_to_move(&mut carol, &mut carol_n).await;
    let mut to_dave = until_told_to_move(&mut dave, &mut dave_n).await;
    // The node no longer takes connections.
    assert!(
        tokio::net::TcpStream::connect(draining_addr).await.is_err(),
        "the draining node refuses new connections"
    );
    let resume = |user: &str, token: &str, received: u64| Hello {
        resume: Some(token.into()),
        received: Some(received),
        ..hello(user)
    };
    let (mut alice, w) =
        Client::join_with(two.local_addr(), resume("alice", &alice_w.session, alice_n)).await;
    assert!(w.resumed);
    let (mut carol, w) =
        Client::join_with(one.local_addr(), resume("carol", &carol_w.session, carol_n)).await;
    assert!(w.resumed);
    let (mut dave, w) =
        Client::join_with(two.local_addr(), resume("dave", &dave_w.session, dave_n)).await;
    assert!(w.resumed);
    let rest = 20 - to_alice.len();
    to_alice.extend(candidates(&mut alice, rest).await);
    assert_eq!(to_alice, numbered("to alice", 20), "once each, in order");
    let rest = 20 - to_dave.len();
    to_dave.extend(candidates(&mut dave, rest).await);
    assert_eq!(to_dave, numbered("to dave", 20), "once each, in order");
    // The node exits on its own once its sessions and calls have moved.
    let exited = loop {
        if let Some(status) = draining.try_wait().unwrap() {
            break status;
        }
        assert!(
            sigterm.elapsed() < Duration::from_secs(20),
            "the drained node did not exit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exited.success(), "{exited:?}");
    // Long after it is gone (its lease and the others' patience), the calls go on.
    tokio::time::sleep(LEASE * 4).await;
    for ((a, b), call) in [(&mut alice, &mut bob), (&mut carol, &mut dave)]
        .into_iter()
        .zip(["c1", "c2"])
    {
        a.send(&candidate(call, "after the exit")).await;
        assert_eq!(candidates(b, 1).await, vec!["after the exit".to_owned()]);
        b.send(&candidate(call, "and back")).await;
        assert_eq!(candidates(a, 1).await, vec!["and back".to_owned()]);
    }
    alice.hangup("c1").await;
    bob.expect_ended("c1", EndReason::Hangup).await;
    dave.hangup("c2").await;
    carol.expect_ended("c2", EndReason::Hangup).await;
    one.shutdown().await;
    two.shutdown().await;
}

/// SIGTERM while a client of the node never comes back: the node waits for it at most
/// `--drain-timeout-s`, then exits (0) all the same; its session ends with it, and the other
/// party hears `peer_lost` once the others see the node gone.
#[tokio::test]
async fn a_drain_gives_up_on_a_client_that_never_comes_back() {
    let flags = ["--drain-timeout-s", "1"];
    let Some(CallAcrossAProcess {
        redis: _redis,
        process: mut draining,
        survivor,
        mut alice,
        mut bob,
    }) = CallAcrossAProcess::start("draining", &flags).await
    else {
        return;
    };
    signal(&draining, "-TERM");
    let sigterm = Instant::now();
    let _ = until_told_to_move(&mut alice, &mut 2).await;
    drop(alice); // gone for good: no resume anywhere
    let exited = loop {
        if let Some(status) = draining.try_wait().unwrap() {
            break status;
        }
        assert!(sigterm.elapsed() < Duration::from_secs(15), "never exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exited.success(), "{exited:?}");
    assert!(
        sigterm.elapsed() >= Duration::from_secs(1),
        "it waited for the client, up to the drain timeout"
    );
    bob.expect_ended("c1", EndReason::PeerLost).await;
    survivor.shutdown().await;
}
