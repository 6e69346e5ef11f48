//! The first steps of a server binary, the same for `signaling` and `turn-relay`: the
//! command line in layers over the TOML file, logging to stderr, the configuration checked.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use serde::de::DeserializeOwned;
use tracing_subscriber::EnvFilter;

use crate::config_file::{ConfigError, parse_layered, read_toml};

/// A server binary's command line: `--config`, `--log` and the settings, which the TOML
/// file may set too.
pub trait ServerCli: CommandFactory + FromArgMatches + Sized {
    /// The settings, as the TOML file holds them.
    type Settings: DeserializeOwned;
    /// What the binary starts from once the settings are checked.
    type Config;

    /// The TOML file named by `--config` or the environment.
    fn config_file(&self) -> Option<&Path>;
    /// The settings, replaced by the file's before the environment and flags are applied
    /// over them again.
    fn settings_mut(&mut self) -> &mut Self::Settings;
    /// The log filter (`--log`).
    fn log_filter(&self) -> &str;
    /// The settings, checked and resolved.
    fn resolve(self) -> Result<Self::Config, ConfigError>;

    /// The command line in layers, each over the one before: defaults, the TOML file,
    /// `env`, `args` (see [`parse_layered`]).
    fn load(
        args: impl IntoIterator<Item = impl Into<OsString>>,
        env: impl IntoIterator<Item = (impl Into<OsString>, impl Into<OsString>)>,
    ) -> Result<Self, ConfigError> {
        parse_layered(args, env, |cli: &mut Self| {
            if let Some(path) = cli.config_file() {
                let settings = read_toml(path)?;
                *cli.settings_mut() = settings;
            }
            Ok(())
        })
    }
}

/// Loads the process's command line and environment as `C`, starts logging to stderr with
/// its filter (`RUST_LOG` wins), and resolves the configuration. A configuration error is
/// printed as `<binary>: configuration error: …` and becomes exit code 2; `--help`,
/// `--version` and clap's own errors exit the way clap does.
pub fn configure<C: ServerCli>(binary: &str) -> Result<C::Config, ExitCode> {
    let cli = match C::load(std::env::args_os(), std::env::vars_os()) {
        Ok(cli) => cli,
        Err(ConfigError::CommandLine(e)) => e.exit(),
        Err(e) => return Err(configuration_error(binary, &e)),
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(cli.log_filter()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    cli.resolve().map_err(|e| configuration_error(binary, &e))
}

fn configuration_error(binary: &str, e: &ConfigError) -> ExitCode {
    eprintln!("{binary}: configuration error: {e}");
    ExitCode::from(2)
}
