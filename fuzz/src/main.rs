//! `fuzz`: runs one fuzz target until its CPU-time or run budget is spent, or replays a
//! corpus. Build and run it through `scripts/fuzz`, which adds the coverage
//! instrumentation; built without it, fuzzing refuses to start (replaying works).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use fuzz::engine::{self, Options};
use fuzz::targets::{self, TARGETS, Target};

#[derive(Debug, Parser)]
#[command(about = "Coverage-guided fuzzing of the STUN/TURN and signaling cores (docs/fuzzing.md)")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fuzzes one target.
    Run {
        /// The target (`fuzz list` names them).
        target: String,
        /// Stop after this many CPU seconds of this process.
        #[arg(long, default_value_t = 60.0)]
        cpu_seconds: f64,
        /// Stop after this many runs.
        #[arg(long, default_value_t = u64::MAX)]
        runs: u64,
        /// Seed of the mutations.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The corpus directory (default: fuzz/corpus/<target>); new inputs are added to it.
        #[arg(long)]
        corpus: Option<PathBuf>,
        /// Where a failing input is saved.
        #[arg(long, default_value = "fuzz/artifacts")]
        artifacts: PathBuf,
    },
    /// Runs one target on every input of a directory (a corpus, or saved crashes).
    Replay {
        /// The target.
        target: String,
        /// The directory (default: fuzz/corpus/<target>).
        dir: Option<PathBuf>,
    },
    /// Keeps only the inputs of a corpus that each add coverage, smallest first.
    Minimize {
        /// The target.
        target: String,
        /// The directory (default: fuzz/corpus/<target>).
        dir: Option<PathBuf>,
    },
    /// Lists the targets.
    List,
}

fn target(name: &str) -> Result<&'static Target, String> {
    targets::by_name(name).ok_or_else(|| {
        let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
        format!("no target {name:?}; the targets are {}", names.join(", "))
    })
}

fn corpus_of(t: &Target) -> PathBuf {
    PathBuf::from("fuzz/corpus").join(t.name)
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fuzz: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    match args.command {
        Command::List => {
            for t in TARGETS {
                println!("{:<18} {}", t.name, t.about);
            }
            Ok(())
        }
        Command::Replay { target: name, dir } => {
            let t = target(&name)?;
            let dir = dir.unwrap_or_else(|| corpus_of(t));
            let n = engine::replay(t, &dir).map_err(|e| e.to_string())?;
            println!(
                "{name}: {n} inputs from {} replayed, no failure",
                dir.display()
            );
            Ok(())
        }
        Command::Minimize { target: name, dir } => {
            let t = target(&name)?;
            let dir = dir.unwrap_or_else(|| corpus_of(t));
            let (before, kept) = engine::minimize(t, &dir).map_err(|e| e.to_string())?;
            println!(
                "{name}: {kept} of {before} inputs kept in {}",
                dir.display()
            );
            Ok(())
        }
        Command::Run {
            target: name,
            cpu_seconds,
            runs,
            seed,
            corpus,
            artifacts,
        } => {
            let t = target(&name)?;
            let options = Options {
                corpus: corpus.unwrap_or_else(|| corpus_of(t)),
                artifacts: artifacts.join(t.name),
                cpu_seconds,
                max_runs: runs,
                seed,
                max_len: t.max_len,
                run_timeout: Duration::from_secs(10),
            };
            let s = engine::fuzz(t, &options).map_err(|e| e.to_string())?;
            println!(
                "{name}: {} runs in {} CPU-s, no failure; corpus {} ({} new), {} of {} edges, {} features",
                s.runs, s.cpu_seconds_used, s.corpus, s.found, s.edges, s.edges_total, s.features
            );
            Ok(())
        }
    }
}
