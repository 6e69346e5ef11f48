//! `welcome.ice_servers`: the configured STUN/TURN URLs with fresh TURN REST credentials.

use std::time::Duration;

use signaling_protocol::{IceServer, UserName};

/// What the server hands each session for its RTCPeerConnection.
#[derive(Debug, Clone, Default)]
pub struct IceConfig {
    pub urls: Vec<String>,
    pub turn_secret: Option<String>,
    pub credential_ttl: Duration,
}

impl IceConfig {
    /// One RTCIceServer with every URL; with a TURN secret, credentials for `user`
    /// valid for `credential_ttl` from `now_unix`.
    pub fn servers_for(&self, user: &UserName, now_unix: u64) -> Vec<IceServer> {
        if self.urls.is_empty() {
            return Vec::new();
        }
        let cred = self.turn_secret.as_ref().map(|secret| {
            turn_relay::credentials::mint(
                secret.as_bytes(),
                user.as_str(),
                now_unix,
                self.credential_ttl.as_secs(),
            )
        });
        vec![IceServer {
            urls: self.urls.clone(),
            username: cred.as_ref().map(|c| c.username.clone()),
            credential: cred.map(|c| c.password),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_credentials() {
        let ice = IceConfig {
            urls: vec!["stun:h:3478".into(), "turn:h:3478?transport=udp".into()],
            turn_secret: Some("s".into()),
            credential_ttl: Duration::from_secs(86_400),
        };
        let servers = ice.servers_for(&UserName::new("alice").unwrap(), 1_000);
        assert_eq!(servers.len(), 1);
        assert_eq!(servers[0].username.as_deref(), Some("87400:alice"));
        assert_eq!(
            servers[0].credential.as_deref(),
            Some(turn_relay::credentials::password_for(b"s", "87400:alice").as_str())
        );
        let stun_only = IceConfig {
            turn_secret: None,
            ..ice
        };
        assert_eq!(
            stun_only.servers_for(&UserName::new("a").unwrap(), 0)[0].username,
            None
        );
        assert!(
            IceConfig::default()
                .servers_for(&UserName::new("a").unwrap(), 0)
                .is_empty()
        );
    }
}
