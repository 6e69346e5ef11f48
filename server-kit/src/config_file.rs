//! A binary's configuration in four layers, and the one error type both binaries report for
//! a bad setting.
//!
//! Each setting is declared once, as a field of a clap + serde struct: its flag, its TOML
//! key (the field name) and its environment variable (the field name in upper case after a
//! prefix, see [`env_from_ids`]) come from the field's name, its default from
//! `default_value_t`, its help text from the doc comment. [`parse_layered`] then reads the
//! layers in order, each over the one before: the defaults, the TOML file, the environment,
//! the flags.
//!
//! clap parses the flags and the environment and says which settings they set; the file is
//! read with serde into the settings struct (whose `Default` is clap's defaults, see
//! [`defaults`]), and clap then updates only the fields the environment or the flags set
//! (`FromArgMatches::update_from_arg_matches`). The environment is turned into flags placed
//! before the command line's, so it can be given as a map (tests do not touch the process
//! environment) and a bad value names its variable.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{ArgAction, Args, Command, CommandFactory, FromArgMatches};

/// A configuration error, naming the layer (file, environment variable or flag) and the
/// bad setting.
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
    /// The file is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("config file {}: {}{message}{}", path.display(), key_prefix(key), line_column(position))]
    Parse {
        /// The file.
        path: PathBuf,
        /// The key of the bad value, when the error is about one.
        key: Option<String>,
        /// What is wrong (what the TOML parser or the setting's type said).
        message: String,
        /// Line and column (from 1) in the file, when known.
        position: Option<(usize, usize)>,
    },
    /// An environment variable has a value its setting cannot take.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable, e.g. `SIGNALING_HEARTBEAT_S`.
        var: String,
        /// What clap said about the value (it names the setting's flag).
        message: String,
    },
    /// The command line has a bad flag or value, or asks for `--help` or `--version`:
    /// [`clap::Error::exit`] prints it and exits as clap does.
    #[error("{0}")]
    CommandLine(clap::Error),
    /// A setting has a value that is the right type but not allowed.
    #[error("`{key}`: {message}")]
    Invalid {
        /// The setting, as it is named in the TOML file.
        key: &'static str,
        /// What is wrong with its value.
        message: String,
    },
}

fn key_prefix(key: &Option<String>) -> String {
    key.as_ref()
        .map(|k| format!("key `{k}`: "))
        .unwrap_or_default()
}

fn line_column(position: &Option<(usize, usize)>) -> String {
    position
        .map(|(line, column)| format!(" (line {line}, column {column})"))
        .unwrap_or_default()
}

/// The error for a bad value of `key`.
pub fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// Reads a TOML file of settings; keys it lacks keep `T`'s serde defaults.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    parse_toml(&text).map_err(|e| e.in_file(path))
}

/// Why a TOML text is not a `T`, before it is known which file it came from.
struct TomlError {
    key: Option<String>,
    message: String,
    position: Option<(usize, usize)>,
}

impl TomlError {
    fn in_file(self, path: &Path) -> ConfigError {
        ConfigError::Parse {
            path: path.into(),
            key: self.key,
            message: self.message,
            position: self.position,
        }
    }
}

fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, TomlError> {
    let located = |e: toml::de::Error, key: Option<String>| TomlError {
        key,
        message: e.message().trim_end().to_owned(),
        position: e.span().map(|span| line_and_column(text, span.start)),
    };
    let deserializer = toml::Deserializer::parse(text).map_err(|e| located(e, None))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let key = (path != ".").then_some(path);
        located(e.into_inner(), key)
    })
}

/// Line and column, both from 1, of byte `offset` of `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Gives an argument (but `--help` and `--version`) the environment variable `prefix` + its
/// id in upper case: with `#[command(mut_args = env_from_ids("SIGNALING_"))]`,
/// `ring_timeout_s` is read from `SIGNALING_RING_TIMEOUT_S`.
pub fn env_from_ids(prefix: &'static str) -> impl FnMut(clap::Arg) -> clap::Arg {
    move |arg| {
        if matches!(arg.get_action(), ArgAction::Help | ArgAction::Version)
            || arg.get_long().is_none()
        {
            return arg;
        }
        let var = format!("{prefix}{}", arg.get_id().as_str().to_uppercase());
        arg.env(var)
    }
}

/// The value of every argument of `A` when nothing is given (the environment is not read).
///
/// A settings struct's `Default` is this, so that its serde defaults (the keys a file
/// lacks) are the same as clap's.
pub fn defaults<A: Args + FromArgMatches>() -> Result<A, clap::Error> {
    let cmd = A::augment_args(Command::new("defaults")).mut_args(|a| a.env(None));
    A::from_arg_matches(&cmd.try_get_matches_from(["defaults"])?)
}

/// Parses the command line of `C` in layers, each over the one before: every argument's
/// default, then what `read_file` puts in (the TOML file named by the command line or the
/// environment), then `env` (the variables named by the arguments' `env`), then `args`.
///
/// `read_file` gets `C` with the environment and the flags applied (so it can see
/// `--config`); it replaces the settings with the file's, which the environment and flags
/// are then applied over again. An argument's value is taken from the environment and the
/// flags only when one of them names it: an argument must not have an implicit default
/// (`ArgAction::SetTrue` has one; use a `bool` with `default_missing_value = "true"`).
pub fn parse_layered<C: CommandFactory + FromArgMatches>(
    args: impl IntoIterator<Item = impl Into<OsString>>,
    env: impl IntoIterator<Item = (impl Into<OsString>, impl Into<OsString>)>,
    read_file: impl FnOnce(&mut C) -> Result<(), ConfigError>,
) -> Result<C, ConfigError> {
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let env: HashMap<OsString, OsString> =
        env.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
    let full = C::command();
    let given = given_matches(&full, &args, &env)?;
    let defaults = full
        .mut_args(|a| a.env(None))
        .try_get_matches_from(&args[..1.min(args.len())])
        .map_err(ConfigError::CommandLine)?;
    let mut parsed = C::from_arg_matches(&defaults).map_err(ConfigError::CommandLine)?;
    parsed
        .update_from_arg_matches(&given)
        .map_err(ConfigError::CommandLine)?;
    read_file(&mut parsed)?;
    parsed
        .update_from_arg_matches(&given)
        .map_err(ConfigError::CommandLine)?;
    Ok(parsed)
}

/// The arguments the environment or the flags set, and only those (no defaults).
fn given_matches(
    full: &Command,
    args: &[OsString],
    env: &HashMap<OsString, OsString>,
) -> Result<clap::ArgMatches, ConfigError> {
    let quiet = full.clone().mut_args(|a| a.env(None).default_value(None));
    let flags = quiet.clone().try_get_matches_from(args).map_err(|e| {
        use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
        match e.kind() {
            // The quiet command's help would lack the defaults and the variables.
            DisplayHelp | DisplayVersion => {
                let help = full.clone().try_get_matches_from(args).err();
                ConfigError::CommandLine(help.unwrap_or(e))
            }
            _ => ConfigError::CommandLine(e),
        }
    })?;
    let program = args.first().cloned().unwrap_or_default();
    let mut from_env = Vec::new();
    for arg in full.get_arguments() {
        let (Some(var), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        let Some(value) = env.get(var) else { continue };
        if flags.contains_id(arg.get_id().as_str()) {
            continue;
        }
        let mut flag = OsString::from(format!("--{long}="));
        flag.push(value);
        if let Err(e) = quiet
            .clone()
            .try_get_matches_from([program.clone(), flag.clone()])
        {
            return Err(ConfigError::Env {
                var: var.to_string_lossy().into_owned(),
                message: first_line(&e),
            });
        }
        from_env.push(flag);
    }
    let all = std::iter::once(program)
        .chain(from_env)
        .chain(args.iter().skip(1).cloned());
    quiet
        .try_get_matches_from(all)
        .map_err(ConfigError::CommandLine)
}

/// clap's message on one line, without its `error: ` and its usage hints.
fn first_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let message: Vec<&str> = text
        .lines()
        .take_while(|l| !l.is_empty())
        .map(str::trim)
        .collect();
    let message = message.join(" ");
    message
        .strip_prefix("error: ")
        .unwrap_or(&message)
        .to_owned()
}

/// A Markdown table of `cmd`'s arguments: flag, TOML key (for the arguments whose ids are in
/// `file_keys`), environment variable, default, and help text. The README's tables are this,
/// checked by a test with [`check_generated`].
pub fn markdown_table(cmd: &Command, file_keys: &[&str]) -> String {
    let mut out = String::from(
        "| flag | TOML key | environment | default | meaning |\n|---|---|---|---|---|\n",
    );
    let code = |s: &str| {
        if s.is_empty() {
            String::new()
        } else {
            format!("`{s}`")
        }
    };
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(arg.get_action(), ArgAction::Help | ArgAction::Version) {
            continue;
        }
        let id = arg.get_id().as_str();
        let key = if file_keys.contains(&id) { id } else { "" };
        let env = arg
            .get_env()
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_default();
        let default: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let mut help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let values: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| format!("`{}`", v.get_name()))
            .collect();
        if !values.is_empty() && values != ["`true`", "`false`"] {
            help.push_str(&format!(" ({})", values.join(", ")));
        }
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        out.push_str(&format!(
            "| `--{long}` | {} | {} | {} | {} |\n",
            code(key),
            code(&env),
            code(&default.join(",")),
            help.replace('|', "\\|"),
        ));
    }
    out
}

/// The ids of `A`'s arguments: the keys a TOML file of `A` may have.
pub fn arg_ids<A: Args>() -> Vec<String> {
    A::augment_args(Command::new("ids"))
        .get_arguments()
        .map(|a| a.get_id().as_str().to_owned())
        .collect()
}

/// Checks that the part of `doc` between `<!-- generated: {name} -->` and
/// `<!-- end of generated: {name} -->` is `expected`; the error says what to paste there.
pub fn check_generated(doc: &str, name: &str, expected: &str) -> Result<(), String> {
    let begin = format!("<!-- generated: {name} -->\n");
    let end = format!("<!-- end of generated: {name} -->");
    let wanted = format!("{begin}{expected}{end}");
    let found = doc
        .find(&begin)
        .and_then(|start| Some((start, doc[start..].find(&end)? + start + end.len())));
    match found {
        Some((start, stop)) if doc[start..stop] == wanted => Ok(()),
        _ => Err(format!(
            "the generated section {name:?} is missing or out of date; it should read:\n\n{wanted}\n"
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[derive(Debug, clap::Parser)]
    #[command(name = "demo", mut_args = env_from_ids("DEMO_"))]
    struct Cli {
        /// The file.
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        settings: Settings,
    }

    #[derive(Debug, Clone, PartialEq, clap::Args, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Settings {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// How many.
        #[arg(long, default_value_t = 3)]
        count: u32,
        /// Names.
        #[arg(long, value_delimiter = ',')]
        names: Vec<String>,
        /// A secret.
        #[arg(long, hide_env_values = true)]
        secret: Option<String>,
        /// Off or on.
        #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
            default_value_t = false, default_missing_value = "true")]
        off: bool,
    }

    impl Default for Settings {
        fn default() -> Self {
            defaults().unwrap()
        }
    }

    fn load(file: &str, env: &[(&str, &str)], args: &[&str]) -> Result<Cli, ConfigError> {
        let file = file.to_owned();
        parse_layered(
            std::iter::once("demo").chain(args.iter().copied()),
            env.iter().copied(),
            |cli: &mut Cli| {
                if cli.config.is_some() {
                    cli.settings = parse_toml(&file).map_err(|e| e.in_file(Path::new("x")))?;
                }
                Ok(())
            },
        )
    }

    #[test]
    fn each_layer_overrides_the_one_before() {
        let file = "count = 4\nnames = [\"a,b\", \"c\"]\nlisten = \"127.0.0.1:1\"\noff = true";
        let cli = load(file, &[("DEMO_COUNT", "5"), ("DEMO_CONFIG", "x")], &[]).unwrap();
        assert_eq!(cli.settings.count, 5, "environment over file");
        assert_eq!(
            cli.settings.names,
            ["a,b", "c"],
            "a TOML array is not split"
        );
        assert_eq!(cli.settings.listen.port(), 1);
        assert!(cli.settings.off);
        let cli = load(
            file,
            &[("DEMO_COUNT", "5"), ("DEMO_NAMES", "d,e")],
            &["--config", "x", "--count", "6", "--off=false"],
        )
        .unwrap();
        assert_eq!(cli.settings.count, 6, "flag over environment");
        assert_eq!(cli.settings.names, ["d", "e"], "a list variable is split");
        assert!(!cli.settings.off);
        let cli = load(file, &[], &["--off"]).unwrap();
        assert_eq!(
            cli.settings,
            Settings {
                off: true,
                ..Settings::default()
            }
        );
        assert_eq!(Settings::default().count, 3);
    }

    #[test]
    fn errors_name_the_layer_and_the_key() {
        let err = load("listen = 5", &[], &["--config", "x"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config file x: key `listen`: invalid type: integer `5`, expected socket address (line 1, column 10)"
        );
        let err = load("\ncont = 5", &[], &["--config", "x"]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("config file x:") && text.contains("`cont`") && text.contains("line 2"),
            "{text}"
        );
        let err = load("count = ", &[], &["--config", "x"]).unwrap_err();
        assert!(err.to_string().contains("(line 1, column 9)"), "{err}");
        let err = load("", &[("DEMO_OFF", "maybe")], &[]).unwrap_err();
        assert!(
            err.to_string().ends_with("[possible values: true, false]"),
            "{err}"
        );
        let err = load("", &[("DEMO_COUNT", "many")], &[]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("environment variable DEMO_COUNT: ") && text.contains("--count"),
            "{text}"
        );
        let Err(ConfigError::CommandLine(e)) = load("", &[], &["--count", "many"]) else {
            panic!("a bad flag was accepted")
        };
        assert_eq!(e.exit_code(), 2);
        let Err(ConfigError::CommandLine(help)) = load("", &[], &["--help"]) else {
            panic!("no help")
        };
        let help = help.to_string();
        assert!(
            help.contains("[env: DEMO_COUNT=") && help.contains("[default: 3]"),
            "{help}"
        );
    }

    #[test]
    fn the_table_lists_every_argument() {
        let table = markdown_table(&<Cli as CommandFactory>::command(), &["listen", "count"]);
        assert!(
            table.contains("| `--count` | `count` | `DEMO_COUNT` | `3` | How many |"),
            "{table}"
        );
        assert!(
            table.contains("| `--config` |  | `DEMO_CONFIG` |  | The file |"),
            "{table}"
        );
        let doc = format!("intro\n<!-- generated: t -->\n{table}<!-- end of generated: t -->\n");
        assert_eq!(check_generated(&doc, "t", &table), Ok(()));
        let err = check_generated("intro", "t", &table).unwrap_err();
        assert!(err.contains(&table), "{err}");
    }
}
