//! Configuration: defaults, then the TOML file, then `SIGNALING_*` variables, then flags.
//!
//! Every setting is one field of [`Settings`], with the same name everywhere:
//! `--ring-timeout-s` on the command line, `ring_timeout_s` in the TOML file,
//! `SIGNALING_RING_TIMEOUT_S` in the environment; its default and help text are on the
//! field too. `server_kit::config_file` does the layering.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::auth::{Auth, JwtAlgorithm, JwtAuth};
use crate::ice::IceConfig;
use crate::tls::ListenerTls;

use crate::turn::EmbeddedTurn;

pub use server_kit::ConfigError;
use server_kit::config_file::env_from_ids;
use server_kit::invalid;
use server_kit::startup::ServerCli;

/// The resolved configuration of one server.
#[derive(Clone)]
pub struct Config {
    /// Address of the HTTP and WebSocket listener.
    pub listen: SocketAddr,
    /// HTTPS and WSS on `listen` (`tls_cert`, `tls_key`); `None`: plain HTTP and WS.
    pub tls: Option<ListenerTls>,
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
    /// How long a new WebSocket may take to say `hello` before it is closed (1008).
    pub hello_timeout: Duration,
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
    /// Sessions (devices, tabs) one user may have at once.
    pub max_sessions_per_user: usize,
    /// Queued messages past which a connected reader is dropped as too slow.
    pub send_queue: usize,
    /// Queued messages past which a detached session ends.
    pub resume_queue: usize,
    /// Bytes queued for one session past which it is over its queue.
    pub queue_bytes: usize,
    /// Bytes queued and kept for replay, all sessions together.
    pub total_queue_bytes: usize,
    /// Open WebSockets past which new ones are refused with 503.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers (slowloris).
    pub http_header_timeout: Duration,
    /// Connections at the HTTP stage (not yet upgraded to a WebSocket) at most.
    pub max_http_connections: usize,
    /// Where `GET /metrics` is served; `None`: nowhere. Never on `listen`, which faces
    /// users.
    pub metrics_listen: Option<SocketAddr>,
    /// The embedded TURN relay; `None` with `--no-turn` (and in `Config::default()`).
    pub turn: Option<EmbeddedTurn>,
    /// Several nodes sharing state through Redis (`redis_url`); `None`: this node alone.
    pub cluster: Option<ClusterSettings>,
}

/// How this node joins a cluster (docs/architecture.md, "Several nodes").
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// `redis://[:password@]host:port[/db]` or `rediss://…`.
    pub redis_url: String,
    /// This node's name, unique in the cluster.
    pub node: signaling_cluster::NodeId,
    /// How long this node's entries outlive it in Redis if it dies without leaving.
    pub lease: Duration,
    /// How long a draining node (SIGTERM) waits for its clients to move before it exits.
    pub drain_timeout: Duration,
}

impl ClusterSettings {
    /// A cluster at `redis_url` joined as `node`, with the default lease (10 s).
    pub fn new(redis_url: &str, node: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            redis_url: redis_url.to_owned(),
            node: signaling_cluster::NodeId::new(node)
                .map_err(|e| invalid("node_id", e.to_string()))?,
            lease: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
        })
    }
}

impl Default for Config {
    /// The declared defaults of [`Settings`] (PROTOCOL.md's), listening on 127.0.0.1:8080 in
    /// open mode, without the embedded relay.
    fn default() -> Self {
        Settings {
            no_turn: true,
            ..Settings::default()
        }
        .resolve()
        .expect("the declared defaults are valid")
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
            max_sessions_per_user: self.max_sessions_per_user,
            send_queue: self.send_queue,
            resume_queue: self.resume_queue,
            queue_bytes: self.queue_bytes,
            total_queue_bytes: self.total_queue_bytes,
            rate: Some((self.rate_per_s, self.rate_burst)),
        }
    }
}

/// Command line of the `signaling` binary. Each argument's environment variable is
/// `SIGNALING_` and its name in upper case.
#[derive(Debug, Parser)]
#[command(
    name = "signaling",
    version,
    about = "WebRTC signaling server: WebSocket signaling, web demo, metrics",
    mut_args = env_from_ids("SIGNALING_")
)]
pub struct Cli {
    /// TOML file with any of the settings below (same names, snake_case).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `signaling=debug` (RUST_LOG works too).
    #[arg(long, default_value = "info")]
    pub log: String,
    /// The settings given as flags and environment variables.
    #[command(flatten)]
    pub settings: Settings,
}

/// Every setting, declared once: the field name is the flag, the TOML key and (after
/// `SIGNALING_`) the environment variable; `default_value` is the default everywhere, also
/// in `--help` and in the README's table.
#[derive(Debug, Clone, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// PEM certificate chain: serve HTTPS and WSS on listen instead of HTTP and WS
    /// (browsers give the web demo the camera only over https:// off localhost). Needs
    /// tls_key; reread on SIGHUP.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of tls_cert.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// HS256 shared secret for JWT auth, at least 16 bytes. Without it and without
    /// --jwt-public-key, any user name is accepted (open mode).
    #[arg(long, hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM public key file for JWT auth (RS256 or EdDSA, see --jwt-algorithm).
    #[arg(long)]
    pub jwt_public_key: Option<PathBuf>,
    /// Algorithm of --jwt-public-key; unset: rs256.
    #[arg(long)]
    pub jwt_algorithm: Option<JwtAlgorithm>,
    /// Audience a JWT's `aud` must contain (e.g. `calls.example.com`); unset: `aud` is not
    /// checked.
    #[arg(long)]
    pub jwt_audience: Option<String>,
    /// Issuer a JWT's `iss` must be (e.g. `https://id.example.com`); unset: `iss` is not
    /// checked.
    #[arg(long)]
    pub jwt_issuer: Option<String>,
    /// Origins allowed to open a WebSocket, comma-separated (e.g. `https://app.example.com`).
    /// Empty: any. Requests without an Origin header (native apps) always pass.
    #[arg(long, value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// STUN/TURN URLs for welcome.ice_servers, comma-separated
    /// (e.g. stun:turn.example.com:3478,turn:turn.example.com:3478?transport=udp). Empty
    /// with the embedded relay: the relay's own.
    #[arg(long, value_delimiter = ',')]
    pub ice_urls: Vec<String>,
    /// TURN REST shared secret: each session gets credentials derived from it. Unset with
    /// the embedded relay: a random one per run.
    #[arg(long, hide_env_values = true)]
    pub turn_secret: Option<String>,
    /// Lifetime of TURN credentials, seconds.
    #[arg(long, default_value_t = 24 * 3600)]
    pub turn_credential_ttl_s: u64,
    /// Heartbeat interval, seconds; silent connections drop after twice this.
    #[arg(long, default_value_t = 20)]
    pub heartbeat_s: u64,
    /// Seconds a new WebSocket may take to send hello; then it is closed with 1008.
    #[arg(long, default_value_t = 10)]
    pub hello_timeout_s: u64,
    /// How long a session outlives its socket, waiting for a resume, seconds.
    #[arg(long, default_value_t = 30)]
    pub resume_ttl_s: u64,
    /// How long an invite rings before `timeout`, seconds.
    #[arg(long, default_value_t = 45)]
    pub ring_timeout_s: u64,
    /// Largest message, bytes; larger ones get `too_large` and close 1009.
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_message_bytes: usize,
    /// Sustained messages per second per connection.
    #[arg(long, default_value_t = 50)]
    pub rate_per_s: u32,
    /// Burst of messages per connection.
    #[arg(long, default_value_t = 200)]
    pub rate_burst: u32,
    /// Calls a session may take part in at once.
    #[arg(long, default_value_t = 8)]
    pub max_calls_per_session: usize,
    /// Sessions (devices, tabs) one user may have at once; a new one over it ends the
    /// user's oldest session waiting for a resume, or is refused if all are connected.
    #[arg(long, default_value_t = 16)]
    pub max_sessions_per_user: usize,
    /// Messages queued for a connected client before it is dropped as too slow.
    #[arg(long, default_value_t = 256)]
    pub send_queue: usize,
    /// Messages kept for a disconnected session (and for replay) before it ends.
    #[arg(long, default_value_t = 1024)]
    pub resume_queue: usize,
    /// Bytes queued for one session (counted generously, per message) before it is over
    /// its queue: a connected client is dropped as too slow, a disconnected session ends.
    /// Its replay buffer keeps at most as many bytes besides.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub queue_bytes: usize,
    /// Bytes queued and kept for replay by all sessions together before the session a
    /// message is for is over its queue (unless it keeps up with what is sent to it).
    #[arg(long, default_value_t = 512 * 1024 * 1024)]
    pub total_queue_bytes: usize,
    /// Open WebSocket connections at most; more get HTTP 503.
    #[arg(long, default_value_t = 100_000)]
    pub max_connections: usize,
    /// Seconds a client may take to send an HTTP request's headers (and to start the next
    /// request on a kept-alive connection); then the connection is closed.
    #[arg(long, default_value_t = 10)]
    pub http_header_timeout_s: u64,
    /// Connections not yet upgraded to a WebSocket (reading a request, or idle between
    /// two) at most; more are closed when accepted.
    #[arg(long, default_value_t = 4096)]
    pub max_http_connections: usize,
    /// Address of the Prometheus /metrics endpoint, apart from listen (its URL is printed at
    /// start), e.g. 127.0.0.1:9464; keep it private. Unset: no endpoint
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// UDP and TCP address of the embedded STUN/TURN relay.
    #[arg(long, default_value = "127.0.0.1:3478")]
    pub turn_listen: SocketAddr,
    /// Do not run the embedded relay (use ice_urls for an external one).
    #[arg(
        long,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_value_t = false,
        default_missing_value = "true"
    )]
    pub no_turn: bool,
    /// Peer ranges the embedded relay may relay to although private or loopback,
    /// comma-separated (e.g. 10.0.0.0/8 for a LAN-only deployment).
    #[arg(long, value_delimiter = ',')]
    pub turn_allow_peers: Vec<ipnet::IpNet>,
    /// Public IPv4 address of the embedded relay behind a 1:1 NAT.
    #[arg(long)]
    pub turn_external_ip: Option<std::net::Ipv4Addr>,
    /// Redis shared by several signaling nodes behind one address, e.g.
    /// redis://127.0.0.1:6379 (rediss:// for TLS; a password as redis://:secret@host:6379).
    /// Unset: this node alone, with no Redis
    #[arg(long, hide_env_values = true)]
    pub redis_url: Option<String>,
    /// This node's name in the cluster (letters, digits, - and _, at most 64); unset: a
    /// random one, printed at start
    #[arg(long)]
    pub node_id: Option<String>,
    /// How long, in milliseconds, this node's sessions stay in Redis after it dies without
    /// leaving (its lease, refreshed every third of it); calls with parties on a dead node
    /// end about 2 1/3 leases after its last refresh
    #[arg(long, default_value_t = 10_000)]
    pub node_lease_ms: u64,
    /// In a cluster, SIGTERM drains the node: it stops taking connections, tells its
    /// clients to resume elsewhere (close code 4001), hands their sessions and calls to the
    /// nodes they come back on, and exits once it holds nothing more, or after this many
    /// seconds (a second SIGTERM: at once)
    #[arg(long, default_value_t = 30)]
    pub drain_timeout_s: u64,
    /// Relay port range of the embedded relay, `low-high`.
    #[arg(long, default_value_t = turn_relay::config::default_port_range())]
    pub turn_relay_ports: String,
    /// TLS (turns:) address of the embedded relay, for networks that block UDP and let
    /// only TLS out (e.g. 0.0.0.0:443); needs turn_tls_cert and turn_tls_key.
    #[arg(long)]
    pub turn_tls_listen: Option<SocketAddr>,
    /// PEM certificate chain of the relay's TLS listener.
    #[arg(long)]
    pub turn_tls_cert: Option<PathBuf>,
    /// PEM private key of the relay's TLS listener.
    #[arg(long)]
    pub turn_tls_key: Option<PathBuf>,
    /// Host name in the turns: URL handed to clients, which must match the certificate;
    /// unset: the relay's address.
    #[arg(long)]
    pub turn_tls_host: Option<String>,
}

impl Default for Settings {
    /// The defaults of the declarations above.
    fn default() -> Self {
        server_kit::config_file::defaults().expect("the declared defaults parse")
    }
}

impl Settings {
    /// Reads a TOML file of settings.
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        server_kit::read_toml(path)
    }

    /// Checks every value and builds the server's configuration.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let turn = self.turn()?;
        let cluster = self.cluster()?;
        let config = Config {
            listen: self.listen,
            tls: self.tls()?,
            auth: self.auth()?,
            allowed_origins: self.allowed_origins,
            ice_urls: self.ice_urls,
            turn_secret: self.turn_secret,
            turn_credential_ttl: Duration::from_secs(self.turn_credential_ttl_s),
            heartbeat: Duration::from_secs(self.heartbeat_s),
            hello_timeout: Duration::from_secs(self.hello_timeout_s),
            resume_ttl: Duration::from_secs(self.resume_ttl_s),
            ring_timeout: Duration::from_secs(self.ring_timeout_s),
            max_message_bytes: self.max_message_bytes,
            rate_per_s: self.rate_per_s,
            rate_burst: self.rate_burst,
            max_calls_per_session: self.max_calls_per_session,
            max_sessions_per_user: self.max_sessions_per_user,
            send_queue: self.send_queue,
            resume_queue: self.resume_queue,
            queue_bytes: self.queue_bytes,
            total_queue_bytes: self.total_queue_bytes,
            max_connections: self.max_connections,
            http_header_timeout: Duration::from_secs(self.http_header_timeout_s),
            max_http_connections: self.max_http_connections,
            metrics_listen: self.metrics_listen,
            turn,
            cluster,
        };
        validate(&config)?;
        Ok(config)
    }

    /// The cluster: a Redis URL, and this node's name (given or random).
    fn cluster(&self) -> Result<Option<ClusterSettings>, ConfigError> {
        let node = match &self.node_id {
            Some(id) => {
                signaling_cluster::NodeId::new(id).map_err(|e| invalid("node_id", e.to_string()))?
            }
            None => signaling_cluster::NodeId::random(),
        };
        if self.node_lease_ms < 300 {
            return Err(invalid("node_lease_ms", "at least 300 ms"));
        }
        Ok(self.redis_url.as_ref().map(|url| ClusterSettings {
            redis_url: url.clone(),
            node,
            lease: Duration::from_millis(self.node_lease_ms),
            drain_timeout: Duration::from_secs(self.drain_timeout_s),
        }))
    }

    /// The listener's TLS: both files or neither.
    fn tls(&self) -> Result<Option<ListenerTls>, ConfigError> {
        match (&self.tls_cert, &self.tls_key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => ListenerTls::load(cert, key).map(Some),
            (Some(_), None) => Err(invalid("tls_key", "tls_cert is set, tls_key is not")),
            (None, Some(_)) => Err(invalid("tls_cert", "tls_key is set, tls_cert is not")),
        }
    }

    /// The embedded relay: on unless `no_turn`.
    fn turn(&self) -> Result<Option<EmbeddedTurn>, ConfigError> {
        if self.no_turn {
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
        let listen = self.turn_listen;
        let mut turn = EmbeddedTurn::new(listen);
        turn.allow_peers = self.turn_allow_peers.clone();
        turn.external_ip = self.turn_external_ip;
        let ports = &self.turn_relay_ports;
        turn.relay_ports = turn_relay::config::parse_port_range(ports).ok_or_else(|| {
            invalid(
                "turn_relay_ports",
                format!("{ports:?} is not low-high (1024-65535)"),
            )
        })?;
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
        let restrict = |jwt: JwtAuth| {
            jwt.restricted_to(self.jwt_audience.as_deref(), self.jwt_issuer.as_deref())
        };
        let jwt_configured = self.jwt_secret.is_some() || self.jwt_public_key.is_some();
        if !jwt_configured && self.jwt_audience.is_some() {
            return Err(invalid(
                "jwt_audience",
                "needs jwt_secret or jwt_public_key",
            ));
        }
        if !jwt_configured && self.jwt_issuer.is_some() {
            return Err(invalid("jwt_issuer", "needs jwt_secret or jwt_public_key"));
        }
        match (&self.jwt_secret, &self.jwt_public_key) {
            (Some(_), Some(_)) => Err(invalid(
                "jwt_secret",
                "set either jwt_secret or jwt_public_key, not both",
            )),
            (Some(secret), None) if secret.len() < 16 => {
                Err(invalid("jwt_secret", "must be at least 16 bytes"))
            }
            (Some(secret), None) => Ok(Auth::Jwt(restrict(JwtAuth::hs256(secret.as_bytes())))),
            (None, Some(path)) => {
                let pem = std::fs::read(path)
                    .map_err(|e| invalid("jwt_public_key", format!("{}: {e}", path.display())))?;
                let alg = self.jwt_algorithm.unwrap_or(JwtAlgorithm::Rs256);
                let jwt = JwtAuth::from_public_key_pem(alg, &pem)
                    .map_err(|e| invalid("jwt_public_key", e.to_string()))?;
                Ok(Auth::Jwt(restrict(jwt)))
            }
            (None, None) if self.jwt_algorithm.is_some() => {
                Err(invalid("jwt_algorithm", "needs jwt_public_key"))
            }
            (None, None) => Ok(Auth::Open),
        }
    }
}

fn validate(c: &Config) -> Result<(), ConfigError> {
    // Upper bounds too: deadlines are `now + duration`, which must not overflow.
    const DAY: u64 = 24 * 3600;
    for (key, value, min) in [
        ("heartbeat_s", c.heartbeat, 1),
        ("hello_timeout_s", c.hello_timeout, 1),
        ("http_header_timeout_s", c.http_header_timeout, 1),
        ("ring_timeout_s", c.ring_timeout, 1),
        ("resume_ttl_s", c.resume_ttl, 0),
    ] {
        if !(min..=DAY).contains(&value.as_secs()) {
            return Err(invalid(key, format!("must be between {min} and {DAY}")));
        }
    }
    if c.turn_credential_ttl.as_secs() > 365 * DAY {
        return Err(invalid(
            "turn_credential_ttl_s",
            format!("must be at most {}", 365 * DAY),
        ));
    }
    if !(1024..=16 * 1024 * 1024).contains(&c.max_message_bytes) {
        return Err(invalid(
            "max_message_bytes",
            "must be between 1024 and 16777216",
        ));
    }
    if c.queue_bytes < c.max_message_bytes {
        return Err(invalid(
            "queue_bytes",
            "must be at least max_message_bytes (one message must fit)",
        ));
    }
    if c.total_queue_bytes < c.queue_bytes {
        return Err(invalid("total_queue_bytes", "must be at least queue_bytes"));
    }
    if c.rate_per_s == 0 || c.rate_burst == 0 {
        return Err(invalid(
            "rate_per_s",
            "rate_per_s and rate_burst must be at least 1",
        ));
    }
    for (key, v) in [
        ("max_calls_per_session", c.max_calls_per_session),
        ("max_sessions_per_user", c.max_sessions_per_user),
        ("send_queue", c.send_queue),
        ("resume_queue", c.resume_queue),
        ("max_connections", c.max_connections),
        ("max_http_connections", c.max_http_connections),
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

impl ServerCli for Cli {
    type Settings = Settings;
    type Config = Config;

    fn config_file(&self) -> Option<&Path> {
        self.config.as_deref()
    }

    fn settings_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }

    fn log_filter(&self) -> &str {
        &self.log
    }

    fn resolve(self) -> Result<Config, ConfigError> {
        self.settings.resolve()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_ENV: [(&str, &str); 0] = [];

    fn key_of(result: Result<Config, ConfigError>) -> &'static str {
        match result {
            Err(ConfigError::Invalid { key, .. }) => key,
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("accepted"),
        }
    }

    /// `flags` on the command line, no environment, resolved.
    fn load(flags: &[&str]) -> Result<Config, ConfigError> {
        let args = std::iter::once("signaling").chain(flags.iter().copied());
        Cli::load(args, NO_ENV).unwrap().resolve()
    }

    /// A TOML file in a fresh directory, removed when the guard drops.
    struct TomlFile(PathBuf);

    impl TomlFile {
        fn new(name: &str, text: &str) -> TomlFile {
            let dir = std::env::temp_dir()
                .join(format!("signaling-config-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("signaling.toml"), text).unwrap();
            TomlFile(dir)
        }

        fn path(&self) -> PathBuf {
            self.0.join("signaling.toml")
        }
    }

    impl Drop for TomlFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn defaults_then_file_then_environment_then_flags() {
        let file = TomlFile::new(
            "layers",
            "ring_timeout_s = 10\nrate_per_s = 5\nrate_burst = 6\nlisten = \"127.0.0.1:9000\"\n\
             allowed_origins = [\"https://a.example\", \"https://b.example\"]\nno_turn = true\n",
        );
        let path = file.path();
        let env = [
            ("SIGNALING_CONFIG", path.to_str().unwrap()),
            ("SIGNALING_RATE_PER_S", "7"),
            ("SIGNALING_RATE_BURST", "8"),
            ("SIGNALING_ICE_URLS", "stun:a.example,stun:b.example"),
            ("RATE_BURST", "1"),
        ];
        let cli = Cli::load(["signaling", "--rate-burst", "9", "--no-turn=false"], env).unwrap();
        let config = cli.resolve().unwrap();
        assert_eq!(config.max_calls_per_session, 8, "default");
        assert_eq!(config.ring_timeout, Duration::from_secs(10), "file");
        assert_eq!(config.listen.port(), 9000, "file");
        assert_eq!(config.rate_per_s, 7, "environment over file");
        assert_eq!(config.rate_burst, 9, "flag over environment");
        assert!(config.turn.is_some(), "--no-turn=false over the file");
        assert_eq!(config.allowed_origins.len(), 2, "a TOML array");
        assert_eq!(config.ice_urls.len(), 2, "a comma-separated variable");
        assert!(config.auth.is_open());
        // `--no-turn` is a bare flag; the variable takes true or false.
        let cli = Cli::load(["signaling", "--no-turn"], NO_ENV).unwrap();
        assert!(cli.resolve().unwrap().turn.is_none());
        let cli = Cli::load(["signaling"], [("SIGNALING_NO_TURN", "true")]).unwrap();
        assert!(cli.resolve().unwrap().turn.is_none());
        // Config::default() is the declared defaults without the relay.
        let d = Config::default();
        assert_eq!(d.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(d.heartbeat, Duration::from_secs(20));
        assert!(d.turn.is_none());
    }

    #[test]
    fn file_errors_name_the_file_the_key_and_what_was_expected() {
        let file = TomlFile::new("errors", "listen = 5\n");
        let err = Settings::from_file(&file.path()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "config file {}: key `listen`: invalid type: integer `5`, expected socket address (line 1, column 10)",
                file.path().display()
            )
        );
        let file = TomlFile::new("unknown", "ring_timout_s = 1\n");
        let err = Settings::from_file(&file.path()).unwrap_err().to_string();
        assert!(err.contains("key `ring_timout_s`: unknown field"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let with = |f: fn(&mut Settings)| {
            let mut s = Settings::default();
            f(&mut s);
            s.resolve()
        };
        assert_eq!(key_of(with(|s| s.heartbeat_s = 0)), "heartbeat_s");
        assert_eq!(key_of(with(|s| s.hello_timeout_s = 0)), "hello_timeout_s");
        assert_eq!(
            key_of(with(|s| s.http_header_timeout_s = 0)),
            "http_header_timeout_s"
        );
        assert_eq!(
            key_of(with(|s| s.max_http_connections = 0)),
            "max_http_connections"
        );
        assert_eq!(key_of(with(|s| s.ring_timeout_s = 0)), "ring_timeout_s");
        // Too large to add to an Instant: refused at start, not a panic per connection.
        assert_eq!(key_of(with(|s| s.heartbeat_s = u64::MAX)), "heartbeat_s");
        assert_eq!(key_of(with(|s| s.resume_ttl_s = u64::MAX)), "resume_ttl_s");
        assert_eq!(
            key_of(with(|s| s.turn_credential_ttl_s = u64::MAX)),
            "turn_credential_ttl_s"
        );
        assert_eq!(
            key_of(with(|s| s.max_message_bytes = 10)),
            "max_message_bytes"
        );
        assert_eq!(key_of(with(|s| s.rate_burst = 0)), "rate_per_s");
        assert_eq!(key_of(with(|s| s.send_queue = 0)), "send_queue");
        assert_eq!(
            key_of(with(|s| s.jwt_secret = Some("short".into()))),
            "jwt_secret"
        );
        assert_eq!(
            key_of(with(|s| s.jwt_algorithm = Some(JwtAlgorithm::EdDsa))),
            "jwt_algorithm"
        );
        assert_eq!(
            key_of(with(|s| s.jwt_audience = Some("calls".into()))),
            "jwt_audience"
        );
        assert_eq!(
            key_of(with(|s| s.jwt_issuer = Some("idp".into()))),
            "jwt_issuer"
        );
        assert_eq!(
            key_of(with(|s| s.ice_urls = vec!["http://x".into()])),
            "ice_urls"
        );
        assert_eq!(
            key_of(with(|s| s.turn_relay_ports = "10-20".into())),
            "turn_relay_ports"
        );
        // Without the embedded relay, a TURN secret needs a turn: URL to go with it.
        assert_eq!(
            key_of(with(|s| {
                s.turn_secret = Some("s".into());
                s.no_turn = true;
            })),
            "turn_secret"
        );
        let embedded = Settings::default().resolve().unwrap().turn.unwrap();
        assert_eq!(embedded.listen, SocketAddr::from(([127, 0, 0, 1], 3478)));
        assert_eq!(embedded.relay_ports, 49_152..=65_535);
    }

    #[test]
    fn the_listeners_tls_settings_go_together_and_name_their_key() {
        assert!(Config::default().tls.is_none());
        assert_eq!(key_of(load(&["--tls-cert", "/x/cert.pem"])), "tls_key");
        assert_eq!(key_of(load(&["--tls-key", "/x/key.pem"])), "tls_cert");
        let err = load(&[
            "--tls-cert",
            "/nonexistent/c.pem",
            "--tls-key",
            "/nonexistent/k.pem",
        ])
        .err()
        .unwrap();
        assert!(err.to_string().contains("/nonexistent/c.pem"), "{err}");
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    key: "tls_cert",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn the_relays_tls_settings_go_together() {
        assert_eq!(
            key_of(load(&["--turn-tls-listen", "127.0.0.1:5349"])),
            "turn_tls_listen"
        );
        // The certificate and key must exist.
        let err = load(&[
            "--turn-tls-listen",
            "127.0.0.1:5349",
            "--turn-tls-cert",
            "/nonexistent/cert.pem",
            "--turn-tls-key",
            "/nonexistent/key.pem",
        ])
        .err()
        .unwrap();
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
                "--turn-tls-listen",
                "127.0.0.1:5349",
                "--turn-tls-cert",
                "c.pem",
                "--turn-tls-key",
                "k.pem",
            ];
            args.extend_from_slice(flags);
            assert_eq!(key_of(load(&args)), key, "{flags:?}");
        }
    }

    #[test]
    fn the_readme_table_is_generated_from_the_declarations() {
        let keys = server_kit::config_file::arg_ids::<Settings>();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let table = server_kit::config_file::markdown_table(
            &<Cli as clap::CommandFactory>::command(),
            &keys,
        );
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        if let Err(e) =
            server_kit::config_file::check_generated(&readme, "signaling --help", &table)
        {
            panic!("README.md: {e}");
        }
    }
}
