//! The signaling server: the sans-IO [`switchboard`] behind a thin axum WebSocket layer,
//! with the web demo and an optional embedded TURN relay in the same process.
//!
//! The library is what the `signaling` binary runs, and what tests and benchmarks start
//! in-process: build a [`Config`] (by hand, or from flags, environment and a TOML file with
//! [`Cli`] and [`Settings`]), then [`Server::start`] it.
//!
//! With [`Config::tls`] ([`ListenerTls::load`] of a PEM certificate chain and key) the
//! listener serves HTTPS and WSS; [`Server::reload_tls`] rereads the files (the binary does
//! it on SIGHUP) without dropping open connections.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = signaling::Config::default();
//! config.listen = "127.0.0.1:0".parse()?;
//! let server = signaling::Server::start(config).await?;
//! println!("ws://{}/ws", server.local_addr());
//! server.shutdown().await;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod auth;
mod clock;
mod cluster;
mod config;
mod connection;
mod http;
mod ice;
mod server;
mod tls;
mod turn;
mod upgrade;
mod web_demo;

pub use auth::{Auth, JwtAlgorithm, JwtAuth, KeyError};
pub use config::{Cli, ClusterSettings, Config, ConfigError, Settings};
pub use server::{Server, StartError};
pub use tls::ListenerTls;
pub use turn::{EmbeddedTls, EmbeddedTurn};
