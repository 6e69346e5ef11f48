//! The signaling server on a free loopback port, configured by the test.

use signaling::EmbeddedTurn;
use signaling::{Config, Server};

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
