//! Reading a binary's TOML configuration file, and the one error type both binaries report
//! for a bad setting.

use std::path::{Path, PathBuf};

/// A configuration error, naming the file and the bad setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key has a value of the wrong type.
    #[error("config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said, with the line and column.
        source: Box<toml::de::Error>,
    },
    /// A setting has a value that is the right type but not allowed.
    #[error("`{key}`: {message}")]
    Invalid {
        /// The setting, as it is named in the TOML file.
        key: &'static str,
        /// What is wrong with its value.
        message: String,
    },
}

/// The error for a bad value of `key`.
pub fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// Reads a TOML file of settings.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.into(),
        source: Box::new(source),
    })
}
