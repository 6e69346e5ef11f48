//! Configuration: defaults, then the TOML file, then `SIGNALING_*` variables, then flags.
//!
//! Every setting has the same name everywhere: `--ring-timeout-s` on the command line,
//! `ring_timeout_s` in the TOML file, `SIGNALING_RING_TIMEOUT_S` in the environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::auth::{Auth, JwtAlgorithm, JwtAuth};
use crate::ice::IceConfig;

use crate::turn::EmbeddedTurn;

pub use server_kit::ConfigError;
use server_kit::invalid;

/// The resolved configuration of one server.
#[derive(Clone)]
pub struct Config {
    /// Address of the HTTP and WebSocket listener.
    pub listen: SocketAddr,
    /// How `hello` is authenticated.
    pub auth: Auth,
    /// Origins allowed to open a WebSocket; empty: any.
    pub allowed_origins: Vec<String>,
    /// STUN/TURN URLs handed out in `welcome.ice_servers`.
    pub ice_urls: Vec<String>,
    /// TURN REST secret for the credentials in `welcome.ice_servers`.
    pub turn_secret: Option<String>,
    /// How long those credentials are valid.
    pub turn_credential_ttl: Duration,
    /// WebSocket ping interval; a connection silent for twice this long is closed.
    pub heartbeat: Duration,
    /// How long a dropped session waits for a resume.
    pub resume_ttl: Duration,
    /// How long an invite rings.
    pub ring_timeout: Duration,
    /// Largest message accepted.
    pub max_message_bytes: usize,
    /// Messages per second per connection, sustained.
    pub rate_per_s: u32,
    /// Messages per connection in a burst.
    pub rate_burst: u32,
    /// Calls a session may take part in at once.
    pub max_calls_per_session: usize,
    /// Queued messages past which a connected reader is dropped as too slow.
    pub send_queue: usize,
    /// Queued messages past which a detached session ends.
    pub resume_queue: usize,
    /// Open WebSockets past which new ones are refused with 503.
    pub max_connections: usize,
    /// The embedded TURN relay; `None` with `--no-turn` (and in `Config::default()`).
    pub turn: Option<EmbeddedTurn>,
}

impl Default for Config {
    /// The defaults of PROTOCOL.md, listening on 127.0.0.1:8080 in open mode.
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            auth: Auth::Open,
            allowed_origins: Vec::new(),
            ice_urls: Vec::new(),
            turn_secret: None,
            turn_credential_ttl: Duration::from_secs(24 * 3600),
            heartbeat: Duration::from_secs(20),
            resume_ttl: Duration::from_secs(30),
            ring_timeout: Duration::from_secs(45),
            max_message_bytes: 64 * 1024,
            rate_per_s: 50,
            rate_burst: 200,
            max_calls_per_session: 8,
            send_queue: 256,
            resume_queue: 1024,
            max_connections: 100_000,
            turn: None,
        }
    }
}

impl Config {
    pub(crate) fn ice(&self) -> IceConfig {
        IceConfig {
            urls: self.ice_urls.clone(),
            turn_secret: self.turn_secret.clone(),
            credential_ttl: self.turn_credential_ttl,
        }
    }

    pub(crate) fn switchboard(&self) -> switchboard::Settings {
        switchboard::Settings {
            heartbeat: self.heartbeat,
            resume_ttl: self.resume_ttl,
            ring_timeout: self.ring_timeout,
            max_calls_per_session: self.max_calls_per_session,
            send_queue: self.send_queue,
            resume_queue: self.resume_queue,
        }
    }
}

/// Command line of the `signaling` binary.
#[derive(Debug, Parser)]
#[command(
    name = "signaling",
    version,
    about = "WebRTC signaling server: WebSocket signaling, web demo, metrics"
)]
pub struct Cli {
    /// TOML file with any of the settings below (same names, snake_case).
    #[arg(long, env = "SIGNALING_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `signaling=debug` (RUST_LOG works too).
    #[arg(long, env = "SIGNALING_LOG", default_value = "info")]
    pub log: String,
    /// The settings given as flags and environment variables.
    #[command(flatten)]
    pub settings: Settings,
}

/// Every setting, optional at each layer.
#[derive(Debug, Default, Clone, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "SIGNALING_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// HS256 shared secret for JWT auth. Without it and without --jwt-public-key, any user
    /// name is accepted (open mode).
    #[arg(long, env = "SIGNALING_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM public key file for JWT auth (RS256 or EdDSA, see --jwt-algorithm).
    #[arg(long, env = "SIGNALING_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,
    /// Algorithm of --jwt-public-key [default: rs256].
    #[arg(long, env = "SIGNALING_JWT_ALGORITHM")]
    pub jwt_algorithm: Option<JwtAlgorithm>,
    /// Origins allowed to open a WebSocket, comma-separated (e.g. `https://app.example.com`).
    /// Empty: any. Requests without an Origin header (native apps) always pass.
    #[arg(long, env = "SIGNALING_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,
    /// STUN/TURN URLs for welcome.ice_servers, comma-separated
    /// (e.g. stun:turn.example.com:3478,turn:turn.example.com:3478?transport=udp).
    #[arg(long, env = "SIGNALING_ICE_URLS", value_delimiter = ',')]
    pub ice_urls: Option<Vec<String>>,
    /// TURN REST shared secret: each session gets credentials derived from it.
    #[arg(long, env = "SIGNALING_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,
    /// Lifetime of TURN credentials, seconds [default: 86400].
    #[arg(long, env = "SIGNALING_TURN_CREDENTIAL_TTL_S")]
    pub turn_credential_ttl_s: Option<u64>,
    /// Heartbeat interval, seconds; silent connections drop after twice this [default: 20].
    #[arg(long, env = "SIGNALING_HEARTBEAT_S")]
    pub heartbeat_s: Option<u64>,
    /// How long a session outlives its socket, waiting for a resume, seconds [default: 30].
    #[arg(long, env = "SIGNALING_RESUME_TTL_S")]
    pub resume_ttl_s: Option<u64>,
    /// How long an invite rings before `timeout`, seconds [default: 45].
    #[arg(long, env = "SIGNALING_RING_TIMEOUT_S")]
    pub ring_timeout_s: Option<u64>,
    /// Largest message, bytes; larger ones get `too_large` and close 1009 [default: 65536].
    #[arg(long, env = "SIGNALING_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<usize>,
    /// Sustained messages per second per connection [default: 50].
    #[arg(long, env = "SIGNALING_RATE_PER_S")]
    pub rate_per_s: Option<u32>,
    /// Burst of messages per connection [default: 200].
    #[arg(long, env = "SIGNALING_RATE_BURST")]
    pub rate_burst: Option<u32>,
    /// Calls a session may take part in at once [default: 8].
    #[arg(long, env = "SIGNALING_MAX_CALLS_PER_SESSION")]
    pub max_calls_per_session: Option<usize>,
    /// Messages queued for a connected client before it is dropped as too slow [default: 256].
    #[arg(long, env = "SIGNALING_SEND_QUEUE")]
    pub send_queue: Option<usize>,
    /// Messages kept for a disconnected session (and for replay) before it ends [default: 1024].
    #[arg(long, env = "SIGNALING_RESUME_QUEUE")]
    pub resume_queue: Option<usize>,
    /// Open WebSocket connections at most; more get HTTP 503 [default: 100000].
    #[arg(long, env = "SIGNALING_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// UDP and TCP address of the embedded STUN/TURN relay [default: 127.0.0.1:3478].
    #[arg(long, env = "SIGNALING_TURN_LISTEN")]
    pub turn_listen: Option<SocketAddr>,
    /// Do not run the embedded relay (use ice_urls for an external one).
    #[arg(
        long,
        env = "SIGNALING_NO_TURN",
        num_args = 0,
        default_missing_value = "true"
    )]
    pub no_turn: Option<bool>,
    /// Peer ranges the embedded relay may relay to although private or loopback,
    /// comma-separated (e.g. 10.0.0.0/8 for a LAN-only deployment).
    #[arg(long, env = "SIGNALING_TURN_ALLOW_PEERS", value_delimiter = ',')]
    pub turn_allow_peers: Option<Vec<ipnet::IpNet>>,
    /// Public IPv4 address of the embedded relay behind a 1:1 NAT.
    #[arg(long, env = "SIGNALING_TURN_EXTERNAL_IP")]
    pub turn_external_ip: Option<std::net::Ipv4Addr>,
    /// Relay port range of the embedded relay, `low-high` [default: 49152-65535].
    #[arg(long, env = "SIGNALING_TURN_RELAY_PORTS")]
    pub turn_relay_ports: Option<String>,
    /// TLS (turns:) address of the embedded relay, for networks that block UDP and let
    /// only TLS out (e.g. 0.0.0.0:443); needs turn_tls_cert and turn_tls_key.
    #[arg(long, env = "SIGNALING_TURN_TLS_LISTEN")]
    pub turn_tls_listen: Option<SocketAddr>,
    /// PEM certificate chain of the relay's TLS listener.
    #[arg(long, env = "SIGNALING_TURN_TLS_CERT")]
    pub turn_tls_cert: Option<PathBuf>,
    /// PEM private key of the relay's TLS listener.
    #[arg(long, env = "SIGNALING_TURN_TLS_KEY")]
    pub turn_tls_key: Option<PathBuf>,
    /// Host name in the turns: URL handed to clients, which must match the certificate
    /// [default: the relay's address].
    #[arg(long, env = "SIGNALING_TURN_TLS_HOST")]
    pub turn_tls_host: Option<String>,
}

macro_rules! overlay {
    ($low:ident, $high:ident, $($field:ident),*) => {
        Settings { $($field: $high.$field.or($low.$field)),* }
    };
}

impl Settings {
    /// `self` with every setting of `high` that is set taking precedence.
    pub fn overlay(self, high: Settings) -> Settings {
        let low = self;
        overlay!(
            low,
            high,
            listen,
            jwt_secret,
            jwt_public_key,
            jwt_algorithm,
            allowed_origins,
            ice_urls,
            turn_secret,
            turn_credential_ttl_s,
            heartbeat_s,
            resume_ttl_s,
            ring_timeout_s,
            max_message_bytes,
            rate_per_s,
            rate_burst,
            max_calls_per_session,
            send_queue,
            resume_queue,
            max_connections,
            turn_listen,
            no_turn,
            turn_allow_peers,
            turn_external_ip,
            turn_relay_ports,
            turn_tls_listen,
            turn_tls_cert,
            turn_tls_key,
            turn_tls_host
        )
    }

    /// Reads a TOML file of settings.
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        server_kit::read_toml(path)
    }

    /// Applies defaults and checks every value.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let d = Config::default();
        let secs = |v: Option<u64>, default: Duration| v.map_or(default, Duration::from_secs);
        let turn = self.turn()?;
        let config = Config {
            listen: self.listen.unwrap_or(d.listen),
            auth: self.auth()?,
            allowed_origins: self.allowed_origins.unwrap_or_default(),
            ice_urls: self.ice_urls.unwrap_or_default(),
            turn_secret: self.turn_secret,
            turn_credential_ttl: secs(self.turn_credential_ttl_s, d.turn_credential_ttl),
            heartbeat: secs(self.heartbeat_s, d.heartbeat),
            resume_ttl: secs(self.resume_ttl_s, d.resume_ttl),
            ring_timeout: secs(self.ring_timeout_s, d.ring_timeout),
            max_message_bytes: self.max_message_bytes.unwrap_or(d.max_message_bytes),
            rate_per_s: self.rate_per_s.unwrap_or(d.rate_per_s),
            rate_burst: self.rate_burst.unwrap_or(d.rate_burst),
            max_calls_per_session: self
                .max_calls_per_session
                .unwrap_or(d.max_calls_per_session),
            send_queue: self.send_queue.unwrap_or(d.send_queue),
            resume_queue: self.resume_queue.unwrap_or(d.resume_queue),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            turn,
        };
        validate(&config)?;
        Ok(config)
    }

    /// The embedded relay: on unless `no_turn`.
    fn turn(&self) -> Result<Option<EmbeddedTurn>, ConfigError> {
        if self.no_turn == Some(true) {
            if self.turn_tls_listen.is_some()
                || self.turn_tls_cert.is_some()
                || self.turn_tls_key.is_some()
                || self.turn_tls_host.is_some()
            {
                return Err(invalid(
                    "turn_tls_listen",
                    "the embedded relay's TLS settings are set but no_turn is too",
                ));
            }
            return Ok(None);
        }
        let listen = self
            .turn_listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3478)));
        let mut turn = EmbeddedTurn::new(listen);
        turn.allow_peers = self.turn_allow_peers.clone().unwrap_or_default();
        turn.external_ip = self.turn_external_ip;
        if let Some(ports) = &self.turn_relay_ports {
            turn.relay_ports = turn_relay::config::parse_port_range(ports).ok_or_else(|| {
                invalid(
                    "turn_relay_ports",
                    format!("{ports:?} is not low-high (1024-65535)"),
                )
            })?;
        }
        turn.tls = self.turn_tls(listen)?;
        Ok(Some(turn))
    }

    /// The embedded relay's TLS listener: all of listen, cert and key, or none.
    fn turn_tls(
        &self,
        turn_listen: SocketAddr,
    ) -> Result<Option<crate::turn::EmbeddedTls>, ConfigError> {
        let (listen, cert, key) = match (
            &self.turn_tls_listen,
            &self.turn_tls_cert,
            &self.turn_tls_key,
        ) {
            (None, None, None) if self.turn_tls_host.is_none() => return Ok(None),
            (Some(listen), Some(cert), Some(key)) => (*listen, cert, key),
            _ => {
                return Err(invalid(
                    "turn_tls_listen",
                    "turn_tls_listen, turn_tls_cert and turn_tls_key go together (and turn_tls_host needs them)",
                ));
            }
        };
        if listen == turn_listen && listen.port() != 0 {
            return Err(invalid(
                "turn_tls_listen",
                format!("{listen} is also turn_listen (TURN over TCP); use another port"),
            ));
        }
        if let Some(host) = &self.turn_tls_host {
            let name_char = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
            if host.is_empty() || !host.chars().all(name_char) {
                return Err(invalid(
                    "turn_tls_host",
                    format!("{host:?} is not a host name or IPv4 address"),
                ));
            }
        }
        let config = server_kit::tls::load_tls(cert, key, "turn_tls_cert", "turn_tls_key")?;
        Ok(Some(crate::turn::EmbeddedTls {
            listen,
            config,
            host: self.turn_tls_host.clone(),
        }))
    }

    fn auth(&self) -> Result<Auth, ConfigError> {
        match (&self.jwt_secret, &self.jwt_public_key) {
            (Some(_), Some(_)) => Err(invalid(
                "jwt_secret",
                "set either jwt_secret or jwt_public_key, not both",
            )),
            (Some(secret), None) if secret.len() < 16 => {
                Err(invalid("jwt_secret", "must be at least 16 bytes"))
            }
            (Some(secret), None) => Ok(Auth::Jwt(JwtAuth::hs256(secret.as_bytes()))),
            (None, Some(path)) => {
                let pem = std::fs::read(path)
                    .map_err(|e| invalid("jwt_public_key", format!("{}: {e}", path.display())))?;
                let alg = self.jwt_algorithm.unwrap_or(JwtAlgorithm::Rs256);
                let jwt = JwtAuth::from_public_key_pem(alg, &pem)
                    .map_err(|e| invalid("jwt_public_key", e.to_string()))?;
                Ok(Auth::Jwt(jwt))
            }
            (None, None) if self.jwt_algorithm.is_some() => {
                Err(invalid("jwt_algorithm", "needs jwt_public_key"))
            }
            (None, None) => Ok(Auth::Open),
        }
    }
}

fn validate(c: &Config) -> Result<(), ConfigError> {
    if c.heartbeat < Duration::from_secs(1) {
        return Err(invalid("heartbeat_s", "must be at least 1"));
    }
    if c.ring_timeout.is_zero() {
        return Err(invalid("ring_timeout_s", "must be at least 1"));
    }
    if !(1024..=16 * 1024 * 1024).contains(&c.max_message_bytes) {
        return Err(invalid(
            "max_message_bytes",
            "must be between 1024 and 16777216",
        ));
    }
    if c.rate_per_s == 0 || c.rate_burst == 0 {
        return Err(invalid(
            "rate_per_s",
            "rate_per_s and rate_burst must be at least 1",
        ));
    }
    for (key, v) in [
        ("max_calls_per_session", c.max_calls_per_session),
        ("send_queue", c.send_queue),
        ("resume_queue", c.resume_queue),
        ("max_connections", c.max_connections),
    ] {
        if v == 0 {
            return Err(invalid(key, "must be at least 1"));
        }
    }
    if let Some(url) = c
        .ice_urls
        .iter()
        .find(|u| !(u.starts_with("stun:") || u.starts_with("turn:") || u.starts_with("turns:")))
    {
        return Err(invalid(
            "ice_urls",
            format!("{url:?} is not a stun:, turn: or turns: URL"),
        ));
    }
    if c.turn.is_none()
        && c.turn_secret.is_some()
        && !c.ice_urls.iter().any(|u| u.starts_with("turn"))
    {
        return Err(invalid(
            "turn_secret",
            "is set but ice_urls has no turn: or turns: URL",
        ));
    }
    Ok(())
}

impl Cli {
    /// Defaults < TOML file < environment and flags.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        file.overlay(self.settings).resolve()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_and_validation() {
        let file: Settings =
            toml::from_str("ring_timeout_s = 10\nrate_per_s = 5\nlisten = \"127.0.0.1:9000\"")
                .unwrap();
        let cli = Cli::parse_from(["signaling", "--rate-per-s", "7"]);
        let config = file.overlay(cli.settings).resolve().unwrap();
        assert_eq!(config.ring_timeout, Duration::from_secs(10));
        assert_eq!(config.rate_per_s, 7);
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.max_calls_per_session, 8);
        assert!(config.auth.is_open());

        let err = toml::from_str::<Settings>("ring_timout_s = 1").unwrap_err();
        assert!(err.to_string().contains("ring_timout_s"), "{err}");
        let bad = Settings {
            heartbeat_s: Some(0),
            ..Default::default()
        }
        .resolve();
        assert!(matches!(
            bad,
            Err(ConfigError::Invalid {
                key: "heartbeat_s",
                ..
            })
        ));
        let bad = Settings {
            jwt_secret: Some("short".into()),
            ..Default::default()
        }
        .resolve();
        assert!(matches!(
            bad,
            Err(ConfigError::Invalid {
                key: "jwt_secret",
                ..
            })
        ));
        // The relay's TLS listener needs its certificate and key, and they exist.
        let cli = Cli::parse_from(["signaling", "--turn-tls-listen", "127.0.0.1:5349"]);
        let bad = cli.settings.resolve();
        assert!(matches!(
            bad,
            Err(ConfigError::Invalid {
                key: "turn_tls_listen",
                ..
            })
        ));
        let cli = Cli::parse_from([
            "signaling",
            "--turn-tls-listen",
            "127.0.0.1:5349",
            "--turn-tls-cert",
            "/nonexistent/cert.pem",
            "--turn-tls-key",
            "/nonexistent/key.pem",
        ]);
        let Err(err) = cli.settings.resolve() else {
            panic!("a missing certificate was accepted")
        };
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    key: "turn_tls_cert",
                    ..
                }
            ),
            "{err}"
        );
        for (flags, key) in [
            (
                &[
                    "--turn-listen",
                    "127.0.0.1:5349",
                    "--turn-tls-host",
                    "turn.example.com",
                ][..],
                "turn_tls_listen",
            ),
            (
                &["--turn-tls-host", "turn.example.com:443"][..],
                "turn_tls_host",
            ),
            (&["--no-turn"][..], "turn_tls_listen"),
        ] {
            let mut args = vec![
                "signaling",
                "--turn-tls-listen",
                "127.0.0.1:5349",
                "--turn-tls-cert",
                "c.pem",
                "--turn-tls-key",
                "k.pem",
            ];
            args.extend_from_slice(flags);
            let bad = Cli::parse_from(args).settings.resolve();
            assert!(
                matches!(&bad, Err(ConfigError::Invalid { key: k, .. }) if *k == key),
                "{flags:?}: {:?}",
                bad.err()
            );
        }
        // Without the embedded relay, a TURN secret needs a turn: URL to go with it.
        let bad = Settings {
            turn_secret: Some("s".into()),
            no_turn: Some(true),
            ..Default::default()
        }
        .resolve();
        assert!(matches!(
            bad,
            Err(ConfigError::Invalid {
                key: "turn_secret",
                ..
            })
        ));
        let bad = Settings {
            ice_urls: Some(vec!["http://x".into()]),
            ..Default::default()
        }
        .resolve();
        let bad_ports = Settings {
            turn_relay_ports: Some("10-20".into()),
            ..Default::default()
        }
        .resolve();
        assert!(matches!(
            bad_ports,
            Err(ConfigError::Invalid {
                key: "turn_relay_ports",
                ..
            })
        ));
        let embedded = Settings::default().resolve().unwrap().turn.unwrap();
        assert_eq!(embedded.listen, SocketAddr::from(([127, 0, 0, 1], 3478)));
        let off = Settings {
            no_turn: Some(true),
            ..Default::default()
        };
        assert!(off.resolve().unwrap().turn.is_none());
        assert!(matches!(
            bad,
            Err(ConfigError::Invalid {
                key: "ice_urls",
                ..
            })
        ));
    }
}
