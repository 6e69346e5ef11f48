//! The TURN relay embedded in the signaling binary: one process serves signaling, the
//! web demo and STUN/TURN, sharing the TURN REST secret so `welcome.ice_servers` works
//! with no setup.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;

use ipnet::IpNet;
use turn_relay::{Listeners, RelaySettings, StartError, TurnServer, Users};

/// Settings of the embedded relay (the standalone `turn-relay` binary has them all).
#[derive(Debug, Clone)]
pub struct EmbeddedTurn {
    /// UDP and TCP address of the relay.
    pub listen: SocketAddr,
    /// Peer ranges opened although special-purpose (tests open 127.0.0.0/8).
    pub allow_peers: Vec<IpNet>,
    /// The public address to advertise behind a 1:1 NAT.
    pub external_ip: Option<Ipv4Addr>,
    /// The ports relayed addresses are taken from.
    pub relay_ports: RangeInclusive<u16>,
    /// TURN over TLS (`turns:`), for networks that let only TLS out.
    pub tls: Option<EmbeddedTls>,
}

/// The TLS listener of the embedded relay.
#[derive(Debug, Clone)]
pub struct EmbeddedTls {
    /// TCP address of the TLS listener.
    pub listen: SocketAddr,
    /// Certificate and key.
    pub config: Arc<turn_relay::rustls::ServerConfig>,
    /// The name in the `turns:` URL, which clients check the certificate against; the
    /// relay's address when `None`.
    pub host: Option<String>,
}

impl EmbeddedTurn {
    /// A relay on `listen` (UDP and TCP), relaying from ports 49152-65535, no TLS, and
    /// no special-purpose peers allowed.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            allow_peers: Vec::new(),
            external_ip: None,
            relay_ports: 49_152..=65_535,
            tls: None,
        }
    }
}

/// Starts the relay with `secret` as its only credential scheme (TURN REST); returns it
/// and the URLs clients should use.
pub(crate) async fn start(
    turn: &EmbeddedTurn,
    secret: &str,
) -> Result<(TurnServer, Vec<String>), StartError> {
    let users = Users {
        fixed: Default::default(),
        rest_secret: Some(secret.to_owned()),
    };
    let mut settings = RelaySettings::new("signaling", users);
    let relay_ip = match turn.listen.ip() {
        IpAddr::V4(ip) if !ip.is_unspecified() => ip,
        _ => turn_relay::config::default_route_ipv4().unwrap_or(Ipv4Addr::LOCALHOST),
    };
    settings.relay_ipv4 = Some(relay_ip);
    settings.external_ipv4 = turn.external_ip;
    settings.ports = turn.relay_ports.clone();
    settings.policy.allow = turn.allow_peers.clone();
    settings.policy.own = [Some(IpAddr::V4(relay_ip)), turn.external_ip.map(IpAddr::V4)]
        .into_iter()
        .flatten()
        .collect();
    let mut listeners = Listeners {
        udp: vec![turn.listen],
        tcp: vec![turn.listen],
        ..Listeners::default()
    };
    if let Some(tls) = &turn.tls {
        listeners.tls = vec![tls.listen];
        listeners.tls_config = Some(tls.config.clone());
    }
    let server = TurnServer::start(settings, listeners).await?;
    let host = turn.external_ip.map_or(IpAddr::V4(relay_ip), IpAddr::V4);
    let (udp, tcp) = (server.udp[0].port(), server.tcp[0].port());
    let mut urls = vec![
        format!("stun:{host}:{udp}"),
        format!("turn:{host}:{udp}?transport=udp"),
        format!("turn:{host}:{tcp}?transport=tcp"),
    ];
    if let (Some(tls), Some(addr)) = (&turn.tls, server.tls.first()) {
        // The certificate's name; else the TLS listener's own address when it is a
        // specific one (and no external address is advertised).
        let name = match (&tls.host, tls.listen.ip(), turn.external_ip) {
            (Some(name), _, _) => name.clone(),
            (None, IpAddr::V4(ip), None) if !ip.is_unspecified() => ip.to_string(),
            _ => host.to_string(),
        };
        urls.push(format!("turns:{name}:{}?transport=tcp", addr.port()));
    }
    Ok((server, urls))
}
