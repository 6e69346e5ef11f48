//! The signaling server on a free loopback port, configured by the test.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;

use signaling::{Config, Server};
use signaling::{EmbeddedTls, EmbeddedTurn};

/// Starts a server on 127.0.0.1:0 with `tweak` applied to the default configuration.
pub async fn server_with(tweak: impl FnOnce(&mut Config)) -> Server {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    tweak(&mut config);
    Server::start(config).await.unwrap()
}

/// A server with the default configuration.
pub async fn server() -> Server {
    server_with(|_| {}).await
}

/// The embedded TURN relay on 127.0.0.1:0, with the default peer policy.
pub fn loopback_turn() -> EmbeddedTurn {
    EmbeddedTurn::new("127.0.0.1:0".parse().unwrap())
}

/// A server with the embedded TURN relay on loopback, loopback peers allowed.
pub async fn server_with_turn() -> Server {
    server_with(|c| {
        let mut turn = loopback_turn();
        turn.allow_peers = vec!["127.0.0.0/8".parse().unwrap()];
        c.turn = Some(turn);
    })
    .await
}

/// How a client reaches the relay, as a `welcome` URL offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayOver {
    /// `turn:…?transport=udp`
    Udp,
    /// `turn:…?transport=tcp`
    Tcp,
    /// `turns:…?transport=tcp`
    Tls,
}

/// A port free on 127.0.0.1 for both UDP and TCP at this moment (the relay listens on
/// both with one port, and the URLs must be written before it starts).
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1 in 100 tries");
}

/// A server with the embedded relay on loopback (loopback peers allowed, TLS with
/// `tls`'s certificate when given) whose `welcome` offers the relay only `over` the
/// listed transports, as a network that lets only those out would leave a client.
pub async fn server_with_relay_over(
    over: &[RelayOver],
    tls: Option<Arc<turn_relay::rustls::ServerConfig>>,
) -> Server {
    let port = free_port_pair();
    let tls_port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let urls = over
        .iter()
        .map(|t| match t {
            RelayOver::Udp => format!("turn:127.0.0.1:{port}?transport=udp"),
            RelayOver::Tcp => format!("turn:127.0.0.1:{port}?transport=tcp"),
            RelayOver::Tls => format!("turns:127.0.0.1:{tls_port}?transport=tcp"),
        })
        .collect();
    server_with(|c| {
        let mut turn = EmbeddedTurn::new(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        turn.allow_peers = vec!["127.0.0.0/8".parse().unwrap()];
        turn.tls = tls.map(|config| EmbeddedTls {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, tls_port)),
            config,
            host: None,
        });
        c.turn = Some(turn);
        c.ice_urls = urls;
    })
    .await
}

/// A raw HTTP/1.1 GET (with optional extra headers); returns status line + headers + body.
pub async fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(15),
        stream.read_to_end(&mut out),
    )
    .await
    .unwrap()
    .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// One signaling node, or several sharing a private `redis-server`: what the wire tests run
/// against, so that each runs with its parties on one node and on different nodes.
pub struct Deployment {
    /// The nodes, in the order `addr` hands them out.
    pub nodes: Vec<Server>,
    /// The cluster's Redis (none for one node).
    pub redis: Option<crate::redis_server::RedisServer>,
}

impl Deployment {
    /// `n` nodes (one: no Redis) with `tweak` applied to each node's configuration; `None`
    /// (a loud skip, or a failure under `CI=true`) when several are asked for and
    /// redis-server is missing.
    pub async fn new(n: usize, tweak: impl Fn(&mut Config)) -> Option<Self> {
        let redis = if n > 1 {
            Some(crate::redis_server::RedisServer::start()?)
        } else {
            None
        };
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let cluster = redis.as_ref().map(|r| {
                let mut settings = signaling::ClusterSettings::new(&r.url(), &format!("node{i}"))
                    .expect("a valid node id");
                // Short, so that a dead node is noticed within a test's patience.
                settings.lease = std::time::Duration::from_millis(1500);
                settings
            });
            nodes.push(
                server_with(|c| {
                    tweak(c);
                    c.cluster = cluster;
                })
                .await,
            );
        }
        Some(Self { nodes, redis })
    }

    /// The address of the node for the `i`-th party of a test: parties take the nodes in
    /// turn, so that with two nodes the first two parties are on different nodes.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i % self.nodes.len()].local_addr()
    }

    /// Stops every node.
    pub async fn shutdown(self) {
        for node in self.nodes {
            node.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_servers_listen_on_loopback() {
        let plain = server().await;
        assert!(plain.local_addr().ip().is_loopback());
        assert!(plain.turn().is_none());
        let relayed = server_with_turn().await;
        assert!(relayed.turn().unwrap().udp[0].ip().is_loopback());
    }
}
