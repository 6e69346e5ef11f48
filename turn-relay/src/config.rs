//! Configuration of the standalone `turn-relay` binary: defaults, then the TOML file,
//! then `TURN_*` variables, then flags. Every setting has one name everywhere:
//! `--max-allocations-per-user`, `max_allocations_per_user`, `TURN_MAX_ALLOCATIONS_PER_USER`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ipnet::IpNet;
use serde::Deserialize;
use server_kit::rustls;

use crate::Listeners;
use turn_proto::{RelaySettings, Users};

pub use server_kit::{ConfigError, invalid, read_toml};

/// Command line of the `turn-relay` binary.
#[derive(Debug, Parser)]
#[command(
    name = "turn-relay",
    version,
    about = "STUN/TURN relay (RFC 8489/8656) over UDP, TCP and TLS"
)]
pub struct Cli {
    /// TOML file with any of the settings below (same names, snake_case).
    #[arg(long, env = "TURN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `turn_relay=debug` (RUST_LOG works too).
    #[arg(long, env = "TURN_LOG", default_value = "info")]
    pub log: String,
    #[command(flatten)]
    pub settings: Settings,
}

impl Cli {
    /// File settings under environment and flags, resolved.
    pub fn resolve(&self) -> Result<ResolvedConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        file.overlay(self.settings.clone()).resolve()
    }
}

/// Every setting, optional at each layer.
#[derive(Debug, Default, Clone, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// UDP and TCP listen addresses, comma-separated [default: 0.0.0.0:3478].
    #[arg(long, env = "TURN_LISTEN", value_delimiter = ',')]
    pub listen: Option<Vec<SocketAddr>>,
    /// TLS (turns:) listen addresses, comma-separated; needs tls_cert and tls_key.
    #[arg(long, env = "TURN_TLS_LISTEN", value_delimiter = ',')]
    pub tls_listen: Option<Vec<SocketAddr>>,
    /// PEM certificate chain for TLS.
    #[arg(long, env = "TURN_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long, env = "TURN_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Realm of the long-term credentials [default: turn-relay].
    #[arg(long, env = "TURN_REALM")]
    pub realm: Option<String>,
    /// Fixed users as name:password, comma-separated.
    #[arg(
        long,
        env = "TURN_USERS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub users: Option<Vec<String>>,
    /// TURN REST shared secret: usernames `<unix expiry>:<user>`, password
    /// base64(HMAC-SHA1(secret, username)).
    #[arg(long, env = "TURN_REST_SECRET", hide_env_values = true)]
    pub rest_secret: Option<String>,
    /// IPv4 address relay sockets bind to [default: the listen address, or the
    /// address of the default route when listening on 0.0.0.0].
    #[arg(long, env = "TURN_RELAY_IP")]
    pub relay_ip: Option<Ipv4Addr>,
    /// IPv6 address relay sockets bind to; without it IPv6 allocations get 440.
    #[arg(long, env = "TURN_RELAY_IPV6")]
    pub relay_ipv6: Option<std::net::Ipv6Addr>,
    /// Public IPv4 address advertised in XOR-RELAYED-ADDRESS (1:1 NAT, e.g. cloud VMs).
    #[arg(long, env = "TURN_EXTERNAL_IP")]
    pub external_ip: Option<Ipv4Addr>,
    /// Relay port range, `low-high` [default: 49152-65535].
    #[arg(long, env = "TURN_RELAY_PORTS")]
    pub relay_ports: Option<String>,
    /// Peer ranges to allow although special-purpose (e.g. 10.0.0.0/8), comma-separated.
    #[arg(long, env = "TURN_ALLOW_PEERS", value_delimiter = ',')]
    pub allow_peers: Option<Vec<IpNet>>,
    /// Peer ranges to refuse in addition to the built-in ones, comma-separated.
    #[arg(long, env = "TURN_DENY_PEERS", value_delimiter = ',')]
    pub deny_peers: Option<Vec<IpNet>>,
    /// Allocations per username [default: 10].
    #[arg(long, env = "TURN_MAX_ALLOCATIONS_PER_USER")]
    pub max_allocations_per_user: Option<usize>,
    /// Allocations in total [default: 10000].
    #[arg(long, env = "TURN_MAX_ALLOCATIONS")]
    pub max_allocations: Option<usize>,
    /// Permissions per allocation [default: 100].
    #[arg(long, env = "TURN_MAX_PERMISSIONS")]
    pub max_permissions: Option<usize>,
    /// Channel bindings per allocation [default: 100].
    #[arg(long, env = "TURN_MAX_CHANNELS")]
    pub max_channels: Option<usize>,
    /// Bytes a second per allocation, both directions; 0 for no cap [default: 0].
    #[arg(long, env = "TURN_BANDWIDTH_PER_ALLOCATION")]
    pub bandwidth_per_allocation: Option<u64>,
    /// Longest allocation lifetime granted, seconds [default: 3600].
    #[arg(long, env = "TURN_MAX_LIFETIME_S")]
    pub max_lifetime_s: Option<u64>,
    /// Address of the Prometheus /metrics endpoint; keep it private [default: off].
    #[arg(long, env = "TURN_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

macro_rules! overlay {
    ($low:ident, $high:ident, $($field:ident),*) => {
        Settings { $($field: $high.$field.or($low.$field)),* }
    };
}

/// Everything needed to start a relay.
pub struct ResolvedConfig {
    pub settings: RelaySettings,
    pub listeners: Listeners,
    pub metrics_listen: Option<SocketAddr>,
}

impl Settings {
    /// `self` with every setting of `high` that is set taking precedence.
    pub fn overlay(self, high: Settings) -> Settings {
        let low = self;
        overlay!(
            low,
            high,
            listen,
            tls_listen,
            tls_cert,
            tls_key,
            realm,
            users,
            rest_secret,
            relay_ip,
            relay_ipv6,
            external_ip,
            relay_ports,
            allow_peers,
            deny_peers,
            max_allocations_per_user,
            max_allocations,
            max_permissions,
            max_channels,
            bandwidth_per_allocation,
            max_lifetime_s,
            metrics_listen
        )
    }

    /// Reads a TOML file of settings.
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        read_toml(path)
    }

    /// Applies defaults and checks every value.
    pub fn resolve(self) -> Result<ResolvedConfig, ConfigError> {
        let listen = self
            .listen
            .unwrap_or_else(|| vec![SocketAddr::from(([0, 0, 0, 0], 3478))]);
        let tls_listen = self.tls_listen.unwrap_or_default();
        if listen.is_empty() && tls_listen.is_empty() {
            return Err(invalid("listen", "no listen address"));
        }
        let users = parse_users(self.users.unwrap_or_default())?;
        if users.fixed.is_empty() && self.rest_secret.is_none() {
            // Secure by default: an open relay is an open proxy.
            return Err(invalid(
                "users",
                "no credentials: set users (name:password) or rest_secret",
            ));
        }
        let users = Users {
            rest_secret: self.rest_secret,
            ..users
        };
        let mut s = RelaySettings::new(self.realm.as_deref().unwrap_or("turn-relay"), users);
        if s.realm.is_empty() {
            return Err(invalid("realm", "must not be empty"));
        }
        let first = listen.iter().chain(&tls_listen).next().map(|a| a.ip());
        s.relay_ipv4 = Some(match (self.relay_ip, first) {
            (Some(ip), _) => ip,
            (None, Some(IpAddr::V4(ip))) if !ip.is_unspecified() => ip,
            _ => default_route_ipv4().ok_or_else(|| {
                invalid(
                    "relay_ip",
                    "cannot tell which address to relay from: set it",
                )
            })?,
        });
        s.relay_ipv6 = self.relay_ipv6;
        s.external_ipv4 = self.external_ip;
        if let Some(ports) = &self.relay_ports {
            s.ports = parse_ports(ports)?;
        }
        s.policy.allow = self.allow_peers.unwrap_or_default();
        s.policy.deny = self.deny_peers.unwrap_or_default();
        s.policy.own = own_addresses(&s, &listen, &tls_listen);
        let positive = |key: &'static str, v: Option<usize>, d: usize| match v {
            Some(0) => Err(invalid(key, "must be at least 1")),
            Some(n) => Ok(n),
            None => Ok(d),
        };
        s.max_allocations_per_user = positive(
            "max_allocations_per_user",
            self.max_allocations_per_user,
            s.max_allocations_per_user,
        )?;
        s.max_allocations = positive("max_allocations", self.max_allocations, s.max_allocations)?;
        s.max_permissions = positive("max_permissions", self.max_permissions, s.max_permissions)?;
        s.max_channels = positive("max_channels", self.max_channels, s.max_channels)?;
        s.bandwidth_per_allocation = self.bandwidth_per_allocation.filter(|b| *b > 0);
        if let Some(max) = self.max_lifetime_s {
            if max < s.default_lifetime.as_secs() {
                return Err(invalid("max_lifetime_s", "must be at least 600"));
            }
            s.max_lifetime = Duration::from_secs(max);
        }
        let tls_config = match (&self.tls_cert, &self.tls_key, tls_listen.is_empty()) {
            (_, _, true) => None,
            (Some(cert), Some(key), false) => Some(load_tls(cert, key)?),
            _ => return Err(invalid("tls_cert", "tls_listen needs tls_cert and tls_key")),
        };
        Ok(ResolvedConfig {
            settings: s,
            listeners: Listeners {
                udp: listen.clone(),
                tcp: listen,
                tls: tls_listen,
                tls_config,
                streams: Default::default(),
            },
            metrics_listen: self.metrics_listen,
        })
    }
}

fn parse_users(entries: Vec<String>) -> Result<Users, ConfigError> {
    let mut fixed = HashMap::new();
    for entry in entries {
        let Some((name, password)) = entry.split_once(':') else {
            return Err(invalid("users", "each entry is name:password"));
        };
        if name.is_empty() || password.is_empty() {
            return Err(invalid("users", "empty name or password"));
        }
        fixed.insert(name.to_owned(), password.to_owned());
    }
    Ok(Users {
        fixed,
        rest_secret: None,
    })
}

fn parse_ports(text: &str) -> Result<std::ops::RangeInclusive<u16>, ConfigError> {
    parse_port_range(text).ok_or_else(|| {
        invalid(
            "relay_ports",
            format!("{text:?} is not low-high (1024-65535)"),
        )
    })
}

/// `low-high` with 1024 <= low <= high.
pub fn parse_port_range(text: &str) -> Option<std::ops::RangeInclusive<u16>> {
    let (lo, hi) = text.split_once('-')?;
    let lo: u16 = lo.trim().parse().ok()?;
    let hi: u16 = hi.trim().parse().ok()?;
    (lo >= 1024 && lo <= hi).then_some(lo..=hi)
}

/// The relay's own addresses, never valid peers (except as relay addresses).
fn own_addresses(s: &RelaySettings, listen: &[SocketAddr], tls: &[SocketAddr]) -> Vec<IpAddr> {
    let mut own: Vec<IpAddr> = listen.iter().chain(tls).map(|a| a.ip()).collect();
    own.extend(s.relay_ipv4.map(IpAddr::V4));
    own.extend(s.relay_ipv6.map(IpAddr::V6));
    own.extend(s.external_ipv4.map(IpAddr::V4));
    own.retain(|ip| !ip.is_unspecified());
    own.sort();
    own.dedup();
    own
}

/// The local address of the default IPv4 route (no packet is sent).
pub fn default_route_ipv4() -> Option<Ipv4Addr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    match socket.local_addr().ok()?.ip() {
        IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
        _ => None,
    }
}

/// Loads the TLS listener's certificate and key.
pub fn load_tls(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    server_kit::tls::load_tls(cert, key, "tls_cert", "tls_key")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Settings {
        Settings {
            listen: Some(vec!["127.0.0.1:0".parse().unwrap()]),
            users: Some(vec!["alice:pw".into()]),
            ..Settings::default()
        }
    }

    fn key_of(e: ConfigError) -> &'static str {
        match e {
            ConfigError::Invalid { key, .. } => key,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn defaults_are_authenticated_and_closed() {
        let c = base().resolve().unwrap();
        assert_eq!(c.settings.relay_ipv4, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(c.settings.realm, "turn-relay");
        assert_eq!(c.settings.max_allocations_per_user, 10);
        assert!(
            c.settings
                .policy
                .check("127.0.0.2".parse().unwrap())
                .is_err()
        );
        assert_eq!(
            c.settings.policy.own,
            vec![IpAddr::from(Ipv4Addr::LOCALHOST)]
        );
        let no_users = Settings {
            users: None,
            ..base()
        };
        assert_eq!(key_of(no_users.resolve().err().unwrap()), "users");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: Vec<(Settings, &str)> = vec![
            (
                Settings {
                    users: Some(vec!["nopassword".into()]),
                    ..base()
                },
                "users",
            ),
            (
                Settings {
                    relay_ports: Some("80-90".into()),
                    ..base()
                },
                "relay_ports",
            ),
            (
                Settings {
                    relay_ports: Some("5000".into()),
                    ..base()
                },
                "relay_ports",
            ),
            (
                Settings {
                    max_channels: Some(0),
                    ..base()
                },
                "max_channels",
            ),
            (
                Settings {
                    max_lifetime_s: Some(60),
                    ..base()
                },
                "max_lifetime_s",
            ),
            (
                Settings {
                    tls_listen: Some(vec!["127.0.0.1:0".parse().unwrap()]),
                    ..base()
                },
                "tls_cert",
            ),
            (
                Settings {
                    realm: Some(String::new()),
                    ..base()
                },
                "realm",
            ),
        ];
        for (settings, key) in cases {
            assert_eq!(key_of(settings.resolve().err().unwrap()), key);
        }
    }

    #[test]
    fn file_then_flags() {
        let dir = std::env::temp_dir().join(format!("turn-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("turn.toml");
        std::fs::write(
            &path,
            "listen = [\"127.0.0.1:3478\"]\nrest_secret = \"s\"\nrelay_ports = \"50000-50100\"\nallow_peers = [\"127.0.0.0/8\"]\n",
        )
        .unwrap();
        let file = Settings::from_file(&path).unwrap();
        let flags = Settings {
            relay_ports: Some("51000-51010".into()),
            ..Settings::default()
        };
        let c = file.overlay(flags).resolve().unwrap();
        assert_eq!(c.settings.ports, 51_000..=51_010);
        assert_eq!(
            c.settings.policy.check("127.0.0.2".parse().unwrap()),
            Ok(())
        );
        assert!(c.settings.users.rest_secret.is_some());
        std::fs::write(&path, "unknown_key = 1\n").unwrap();
        assert!(matches!(
            Settings::from_file(&path),
            Err(ConfigError::Parse { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
