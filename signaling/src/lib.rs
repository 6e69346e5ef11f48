//! The signaling server: the sans-IO switchboard (the `switchboard` crate) behind a thin
//! axum WebSocket layer ([`server`], [`connection`]).
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

pub mod auth;
pub mod clock;
pub mod config;
pub mod connection;
pub mod ice;
pub mod server;
pub mod turn;
pub mod upgrade;
pub mod web_demo;

pub use auth::{Auth, JwtAlgorithm, JwtAuth};
pub use config::{Config, ConfigError};
pub use server::{Server, StartError};

