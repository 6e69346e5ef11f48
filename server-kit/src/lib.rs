//! What the two server binaries (`signaling` and `turn-relay`) need around their sans-IO
//! cores, and nothing that speaks a protocol: their configuration in layers, defaults < file
//! < environment < flags ([`config_file`]), TLS material ([`tls`]), the clocks ([`clock`]), a token bucket
//! ([`TokenBucket`]) and graceful shutdown ([`shutdown`]).
//!
//! Every piece but the token bucket is a cargo feature, so a core crate can take the token
//! bucket and nothing else: it then has no way to read the clock or touch a socket.
#![warn(missing_docs)]

#[cfg(feature = "clock")]
pub mod clock;
#[cfg(feature = "config")]
pub mod config_file;
#[cfg(feature = "signal")]
pub mod shutdown;
#[cfg(feature = "startup")]
pub mod startup;
#[cfg(feature = "tls")]
pub mod tls;
mod token_bucket;

#[cfg(feature = "config")]
pub use config_file::{ConfigError, invalid, parse_layered, read_toml};
#[cfg(feature = "tls")]
pub use rustls;
pub use token_bucket::TokenBucket;
