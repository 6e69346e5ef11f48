//! The one error type of the load generators.

use std::path::PathBuf;

/// Why a benchmark run failed. A run fails rather than print a number it could not measure.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The run could not start: bad flags, a server that did not come up.
    #[error("setup: {0}")]
    Setup(String),
    /// The server under test answered something unexpected, or lost messages.
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A `/proc` file could not be read or did not have the field looked for.
    #[error("{}: {problem}", path.display())]
    Proc { path: PathBuf, problem: String },
    /// A bounded step (a protocol exchange, a table row) ran out of time.
    #[error("a step took longer than its time limit")]
    Timeout(#[from] tokio::time::error::Elapsed),
    #[error("task: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[cfg(feature = "websocket")]
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    #[cfg(feature = "stun")]
    #[error("stun: {0}")]
    Stun(#[from] stun_rs::StunError),
}
