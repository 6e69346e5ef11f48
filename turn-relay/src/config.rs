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
use server_kit::config_file::env_from_ids;
use server_kit::rustls;
use server_kit::startup::ServerCli;

use crate::Listeners;
use turn_proto::{RelaySettings, Users};

pub use server_kit::{ConfigError, invalid, read_toml};

/// Command line of the `turn-relay` binary. Each argument's environment variable is `TURN_`
/// and its name in upper case.
#[derive(Debug, Parser)]
#[command(
    name = "turn-relay",
    version,
    about = "STUN/TURN relay (RFC 8489/8656) over UDP, TCP and TLS",
    mut_args = env_from_ids("TURN_")
)]
pub struct Cli {
    /// TOML file with any of the settings below (same names, snake_case).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `turn_relay=debug` (RUST_LOG works too).
    #[arg(long, default_value = "info")]
    pub log: String,
    /// Every relay setting; the TOML file may set the same ones.
    #[command(flatten)]
    pub settings: Settings,
}

impl ServerCli for Cli {
    type Settings = Settings;
    type Config = ResolvedConfig;

    fn config_file(&self) -> Option<&Path> {
        self.config.as_deref()
    }

    fn settings_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }

    fn log_filter(&self) -> &str {
        &self.log
    }

    fn resolve(self) -> Result<ResolvedConfig, ConfigError> {
        self.settings.resolve()
    }
}

/// Every setting, declared once: the field name is the flag, the TOML key and (after
/// `TURN_`) the environment variable; `default_value` is the default everywhere, also in
/// `--help` and in docs/turn.md's table.
#[derive(Debug, Clone, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// UDP and TCP listen addresses, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.0.0.0:3478")]
    pub listen: Vec<SocketAddr>,
    /// TLS (turns:) listen addresses, comma-separated; needs tls_cert and tls_key.
    #[arg(long, value_delimiter = ',')]
    pub tls_listen: Vec<SocketAddr>,
    /// PEM certificate chain for TLS.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Realm of the long-term credentials.
    #[arg(long, default_value = "turn-relay")]
    pub realm: String,
    /// Fixed users as name:password, comma-separated (a TOML array in the file).
    #[arg(long, value_delimiter = ',', hide_env_values = true)]
    pub users: Vec<String>,
    /// TURN REST shared secret (the signaling server's turn_secret): usernames
    /// `<unix expiry>:<user>`, password base64(HMAC-SHA1(secret, username)).
    #[arg(long, hide_env_values = true)]
    pub rest_secret: Option<String>,
    /// IPv4 address relay sockets bind to; unset: the listen address, or the address of
    /// the default route when listening on 0.0.0.0.
    #[arg(long)]
    pub relay_ip: Option<Ipv4Addr>,
    /// IPv6 address relay sockets bind to; without it IPv6 allocations get 440.
    #[arg(long)]
    pub relay_ipv6: Option<std::net::Ipv6Addr>,
    /// Public IPv4 address advertised in XOR-RELAYED-ADDRESS (1:1 NAT, e.g. cloud VMs).
    #[arg(long)]
    pub external_ip: Option<Ipv4Addr>,
    /// Relay port range, `low-high`.
    #[arg(long, default_value_t = default_port_range())]
    pub relay_ports: String,
    /// Peer ranges to allow although special-purpose (e.g. 10.0.0.0/8), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub allow_peers: Vec<IpNet>,
    /// Peer ranges to refuse in addition to the built-in ones, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub deny_peers: Vec<IpNet>,
    /// Allocations per user (a TURN REST username counts for the user it names, whatever its expiry); more get 486.
    #[arg(long, default_value_t = relay_defaults().max_allocations_per_user)]
    pub max_allocations_per_user: usize,
    /// Allocations in total; more get 508.
    #[arg(long, default_value_t = relay_defaults().max_allocations)]
    pub max_allocations: usize,
    /// Permissions per allocation; more get 508.
    #[arg(long, default_value_t = relay_defaults().max_permissions)]
    pub max_permissions: usize,
    /// Channel bindings per allocation; more get 508.
    #[arg(long, default_value_t = relay_defaults().max_channels)]
    pub max_channels: usize,
    /// Bytes a second per allocation, both directions; 0 for no cap.
    #[arg(long, default_value_t = 0)]
    pub bandwidth_per_allocation: u64,
    /// Longest allocation lifetime granted, seconds (at least 600).
    #[arg(long, default_value_t = relay_defaults().max_lifetime.as_secs())]
    pub max_lifetime_s: u64,
    /// Threads serving UDP: the listeners (one SO_REUSEPORT socket each) and every relay
    /// socket; 0: one per CPU the process may run on, at most 8.
    #[arg(long, default_value_t = 0)]
    pub udp_threads: usize,
    /// Address of the Prometheus /metrics endpoint (its URL is printed at start); keep it
    /// private. Unset: no endpoint.
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for Settings {
    /// The defaults of the declarations above.
    fn default() -> Self {
        server_kit::config_file::defaults().expect("the declared defaults parse")
    }
}

/// The relay core's defaults, which the limits above show and start from.
fn relay_defaults() -> RelaySettings {
    RelaySettings::new("", Users::default())
}

/// The relay core's default port range, as `low-high`.
pub fn default_port_range() -> String {
    let ports = relay_defaults().ports;
    format!("{}-{}", ports.start(), ports.end())
}

/// Everything needed to start a relay.
pub struct ResolvedConfig {
    /// What the core needs: realm, users, relay addresses, port range, policy, quotas.
    pub settings: RelaySettings,
    /// The UDP, TCP and TLS addresses to listen on, with the TLS configuration.
    pub listeners: Listeners,
    /// Where to serve Prometheus `/metrics`, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
}

impl Settings {
    /// Reads a TOML file of settings.
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        read_toml(path)
    }

    /// Checks every value and builds the relay's settings.
    pub fn resolve(self) -> Result<ResolvedConfig, ConfigError> {
        let (listen, tls_listen) = (self.listen, self.tls_listen);
        if listen.is_empty() && tls_listen.is_empty() {
            return Err(invalid("listen", "no listen address"));
        }
        let users = parse_users(self.users)?;
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
        let mut s = RelaySettings::new(&self.realm, users);
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
        s.ports = parse_ports(&self.relay_ports)?;
        s.policy.allow = self.allow_peers;
        s.policy.deny = self.deny_peers;
        s.policy.own = own_addresses(&s, &listen, &tls_listen);
        let positive = |key: &'static str, v: usize| match v {
            0 => Err(invalid(key, "must be at least 1")),
            n => Ok(n),
        };
        s.max_allocations_per_user =
            positive("max_allocations_per_user", self.max_allocations_per_user)?;
        s.max_allocations = positive("max_allocations", self.max_allocations)?;
        s.max_permissions = positive("max_permissions", self.max_permissions)?;
        s.max_channels = positive("max_channels", self.max_channels)?;
        s.bandwidth_per_allocation = Some(self.bandwidth_per_allocation).filter(|b| *b > 0);
        if self.max_lifetime_s < s.default_lifetime.as_secs() {
            return Err(invalid("max_lifetime_s", "must be at least 600"));
        }
        s.max_lifetime = Duration::from_secs(self.max_lifetime_s);
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
                udp_threads: self.udp_threads,
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
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            users: vec!["alice:pw".into()],
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
        assert_eq!(c.settings.ports, relay_defaults().ports);
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
            users: Vec::new(),
            ..base()
        };
        assert_eq!(key_of(no_users.resolve().err().unwrap()), "users");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: Vec<(Settings, &str)> = vec![
            (
                Settings {
                    users: vec!["nopassword".into()],
                    ..base()
                },
                "users",
            ),
            (
                Settings {
                    relay_ports: "80-90".into(),
                    ..base()
                },
                "relay_ports",
            ),
            (
                Settings {
                    relay_ports: "5000".into(),
                    ..base()
                },
                "relay_ports",
            ),
            (
                Settings {
                    max_channels: 0,
                    ..base()
                },
                "max_channels",
            ),
            (
                Settings {
                    max_lifetime_s: 60,
                    ..base()
                },
                "max_lifetime_s",
            ),
            (
                Settings {
                    tls_listen: vec!["127.0.0.1:0".parse().unwrap()],
                    ..base()
                },
                "tls_cert",
            ),
            (
                Settings {
                    realm: String::new(),
                    ..base()
                },
                "realm",
            ),
        ];
        for (settings, key) in cases {
            assert_eq!(key_of(settings.resolve().err().unwrap()), key);
        }
    }

    /// A TOML file in a fresh directory; removed with the returned guard's directory.
    fn toml_file(name: &str, text: &str) -> (PathBuf, TempDir) {
        let dir = std::env::temp_dir().join(format!("turn-config-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("turn.toml");
        std::fs::write(&path, text).unwrap();
        (path, TempDir(dir))
    }

    struct TempDir(PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn defaults_then_file_then_environment_then_flags() {
        let (path, _dir) = toml_file(
            "layers",
            "listen = [\"127.0.0.1:3478\"]\nrest_secret = \"s\"\nrelay_ports = \"50000-50100\"\n\
             allow_peers = [\"127.0.0.0/8\"]\nmax_channels = 7\nmax_permissions = 8\n",
        );
        let env = [
            ("TURN_CONFIG", path.to_str().unwrap()),
            ("TURN_MAX_CHANNELS", "9"),
            ("TURN_MAX_PERMISSIONS", "10"),
            ("OTHER", "x"),
        ];
        let args = [
            "turn-relay",
            "--relay-ports",
            "51000-51010",
            "--max-permissions",
            "11",
        ];
        let c = Cli::load(args, env).unwrap().resolve().unwrap();
        assert_eq!(c.settings.ports, 51_000..=51_010, "flag over file");
        assert_eq!(c.settings.max_channels, 9, "environment over file");
        assert_eq!(c.settings.max_permissions, 11, "flag over environment");
        assert_eq!(c.settings.max_allocations, 10_000, "default");
        assert_eq!(c.listeners.udp, ["127.0.0.1:3478".parse().unwrap()]);
        assert_eq!(
            c.settings.policy.check("127.0.0.2".parse().unwrap()),
            Ok(())
        );
        assert!(c.settings.users.rest_secret.is_some());
        // A comma-separated variable is a list, like a TOML array.
        let env = [("TURN_USERS", "a:1,b:2"), ("TURN_LISTEN", "127.0.0.1:0")];
        let c = Cli::load(["turn-relay"], env).unwrap().resolve().unwrap();
        assert_eq!(c.settings.users.fixed.len(), 2);
    }

    #[test]
    fn file_errors_name_the_file_the_key_and_the_position() {
        let (path, _dir) = toml_file("unknown", "realm = \"r\"\nunknown_key = 1\n");
        let err = Settings::from_file(&path).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Parse { key: Some(k), position: Some((2, 1)), .. } if k == "unknown_key"),
            "{err}"
        );
        let (path, _dir) = toml_file("type", "max_channels = \"many\"\n");
        let err = Settings::from_file(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "config file {}: key `max_channels`: invalid type",
                path.display()
            )) && err.ends_with("(line 1, column 16)"),
            "{err}"
        );
    }

    #[test]
    fn the_table_in_docs_turn_md_is_generated_from_the_declarations() {
        let keys = server_kit::config_file::arg_ids::<Settings>();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let table = server_kit::config_file::markdown_table(
            &<Cli as clap::CommandFactory>::command(),
            &keys,
        );
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/turn.md"))
            .unwrap();
        if let Err(e) = server_kit::config_file::check_generated(&doc, "turn-relay --help", &table)
        {
            panic!("docs/turn.md: {e}");
        }
    }
}
