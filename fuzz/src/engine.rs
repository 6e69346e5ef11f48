//! The fuzzing loop: pick an input of the corpus, mutate it, run the target on it, keep it
//! when it reached an (edge, hit-count bucket) pair not seen before; stop at the first
//! panic (an invariant broken or a crash), saving the input that caused it.
//!
//! Runs are in-process, as libFuzzer's are: a target must leave no state behind.

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

use crate::coverage::Coverage;
use crate::mutate::mutate;
use crate::targets::Target;

/// Why a fuzzing session failed.
#[derive(Debug, thiserror::Error)]
pub enum FuzzError {
    /// The binary has no coverage counters: it was not built by `scripts/fuzz`.
    #[error(
        "this binary was built without coverage instrumentation; build and run it with scripts/fuzz"
    )]
    NotInstrumented,
    /// The target panicked: a crash or a broken invariant.
    #[error("target {target} failed on the input saved in {}: {message}", saved.display())]
    Crash {
        /// The target.
        target: &'static str,
        /// Where the input was written.
        saved: PathBuf,
        /// The panic's message.
        message: String,
    },
    /// Reading or writing the corpus.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// How long and where to fuzz.
#[derive(Debug, Clone)]
pub struct Options {
    /// The corpus directory: read at start, new inputs written to it.
    pub corpus: PathBuf,
    /// Where a failing input is written.
    pub artifacts: PathBuf,
    /// Stop after this much CPU time (user + system) of this process.
    pub cpu_seconds: f64,
    /// Stop after this many runs.
    pub max_runs: u64,
    /// Seed of the mutation generator.
    pub seed: u64,
    /// Longest input.
    pub max_len: usize,
    /// A run longer than this is a hang: the input is saved and the process aborts.
    pub run_timeout: Duration,
}

/// What a session did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Inputs run, corpus replay included.
    pub runs: u64,
    /// Inputs in the corpus at the end.
    pub corpus: usize,
    /// Of those, found in this session.
    pub found: usize,
    /// Edges reached.
    pub edges: usize,
    /// Edges in the instrumented code.
    pub edges_total: usize,
    /// (edge, bucket) pairs reached.
    pub features: usize,
    /// CPU seconds used.
    pub cpu_seconds_used: u64,
}

/// User + system CPU time of this process, in seconds.
pub fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The file name of an input: the hex of its SHA-256's first 10 bytes.
fn name_of(data: &[u8]) -> String {
    Sha256::digest(data)[..10]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FuzzError + '_ {
    move |source| FuzzError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The inputs in `dir`, sorted by name; none when it does not exist.
pub fn read_corpus(dir: &Path) -> Result<Vec<Vec<u8>>, FuzzError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read(p).map_err(io(p)))
        .collect()
}

fn save(dir: &Path, data: &[u8], prefix: &str) -> Result<PathBuf, FuzzError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(format!("{prefix}{}", name_of(data)));
    std::fs::write(&path, data).map_err(io(&path))?;
    Ok(path)
}

/// Runs `target` on `data`; the panic message if it panicked.
fn run_one(target: &Target, data: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| (target.run)(data))).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

/// Aborts the process when one run lasts longer than `limit`, after saving the input.
struct Watchdog {
    /// Runs started; 0 while none is running.
    current: Arc<AtomicU64>,
    input: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Watchdog {
    fn start(limit: Duration, artifacts: PathBuf, target: &'static str) -> Self {
        let current = Arc::new(AtomicU64::new(0));
        let input = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c, i) = (current.clone(), input.clone());
        std::thread::spawn(move || {
            let mut last = 0;
            loop {
                std::thread::sleep(limit);
                let now = c.load(Ordering::Relaxed);
                if now != 0 && now == last {
                    let data = i.lock().map(|d| d.clone()).unwrap_or_default();
                    let saved = save(&artifacts, &data, "timeout-");
                    eprintln!(
                        "fuzz {target}: one run took over {limit:?} (a hang); input saved in {saved:?}"
                    );
                    std::process::abort();
                }
                last = now;
            }
        });
        Self { current, input }
    }

    /// Before a run: its input, kept for the report if it hangs. Copying it costs far less
    /// than the run.
    fn arm(&self, run: u64, data: &[u8]) {
        if let Ok(mut d) = self.input.lock() {
            d.clear();
            d.extend_from_slice(data);
        }
        self.current.store(run, Ordering::Relaxed);
    }
}

/// One run, watched: whether it reached something new, or the panic message.
fn try_input(
    target: &Target,
    coverage: &mut Coverage,
    watchdog: &Watchdog,
    data: &[u8],
    run: u64,
) -> Result<bool, String> {
    watchdog.arm(run, data);
    coverage.reset();
    run_one(target, data)?;
    Ok(coverage.merge() > 0)
}

/// Fuzzes `target` until the CPU time or run budget of `options` is spent.
pub fn fuzz(target: &Target, options: &Options) -> Result<Summary, FuzzError> {
    let mut coverage = Coverage::new();
    if !coverage.instrumented() {
        return Err(FuzzError::NotInstrumented);
    }
    // Panics are findings, reported once by the loop; the default hook would print each.
    std::panic::set_hook(Box::new(|_| {}));
    let watchdog = Watchdog::start(options.run_timeout, options.artifacts.clone(), target.name);
    let mut rng = StdRng::seed_from_u64(options.seed);
    let started_cpu = cpu_seconds();
    let mut runs = 0u64;

    let crash = |data: &[u8], message: String| -> FuzzError {
        match save(&options.artifacts, data, "crash-") {
            Ok(saved) => FuzzError::Crash {
                target: target.name,
                saved,
                message,
            },
            Err(e) => e,
        }
    };

    // Replay: the committed corpus and the target's seeds; the ones that add coverage stay.
    let mut corpus: Vec<Vec<u8>> = Vec::new();
    let stored = read_corpus(&options.corpus)?;
    let stored_count = stored.len();
    for data in stored.into_iter().chain((target.seeds)()) {
        runs += 1;
        let new = try_input(target, &mut coverage, &watchdog, &data, runs)
            .map_err(|message| crash(&data, message))?;
        if new {
            corpus.push(data);
        }
    }
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let replayed = corpus.len();
    eprintln!(
        "fuzz {}: {} stored inputs and seeds replayed, {} kept; {} of {} edges, {} features",
        target.name,
        stored_count,
        replayed,
        coverage.covered_edges(),
        coverage.edges(),
        coverage.features()
    );

    let mut found = 0;
    let mut last_report = cpu_seconds();
    let mut data = Vec::with_capacity(options.max_len);
    while runs < options.max_runs {
        if runs.is_multiple_of(256) {
            let cpu = cpu_seconds();
            if cpu - started_cpu >= options.cpu_seconds {
                break;
            }
            if cpu - last_report >= 30.0 {
                last_report = cpu;
                eprintln!(
                    "fuzz {}: {runs} runs, {:.0} CPU-s, corpus {}, {} edges, {} features",
                    target.name,
                    cpu - started_cpu,
                    corpus.len(),
                    coverage.covered_edges(),
                    coverage.features()
                );
            }
        }
        // Newer inputs are picked more often: they are where coverage grew last.
        let pick = corpus.len()
            - 1
            - rng
                .random_range(0..corpus.len())
                .min(rng.random_range(0..corpus.len()));
        let other = rng.random_range(0..corpus.len());
        data.clear();
        data.extend_from_slice(&corpus[pick]);
        mutate(&mut data, &corpus[other], options.max_len, &mut rng);
        runs += 1;
        let new = try_input(target, &mut coverage, &watchdog, &data, runs)
            .map_err(|message| crash(&data, message))?;
        if new {
            save(&options.corpus, &data, "")?;
            corpus.push(data.clone());
            found += 1;
        }
    }
    watchdog.current.store(0, Ordering::Relaxed);
    let _ = std::panic::take_hook();
    let summary = Summary {
        runs,
        corpus: corpus.len(),
        found,
        edges: coverage.covered_edges(),
        edges_total: coverage.edges(),
        features: coverage.features(),
        cpu_seconds_used: (cpu_seconds() - started_cpu) as u64,
    };
    let _ = writeln!(std::io::stderr(), "fuzz {}: done, {summary:?}", target.name);
    Ok(summary)
}

/// Rewrites the corpus in `dir` to the inputs that each add coverage, smallest first
/// (libFuzzer's `-merge=1` in spirit); returns (inputs before, inputs kept).
pub fn minimize(target: &Target, dir: &Path) -> Result<(usize, usize), FuzzError> {
    let mut coverage = Coverage::new();
    if !coverage.instrumented() {
        return Err(FuzzError::NotInstrumented);
    }
    let mut inputs = read_corpus(dir)?;
    let before = inputs.len();
    inputs.sort_by_key(|d| (d.len(), name_of(d)));
    inputs.dedup();
    let mut kept = Vec::new();
    for data in inputs {
        coverage.reset();
        if let Err(message) = run_one(target, &data) {
            return Err(FuzzError::Crash {
                target: target.name,
                saved: dir.to_owned(),
                message: format!("{message} (input {})", name_of(&data)),
            });
        }
        if coverage.merge() > 0 {
            kept.push(data);
        }
    }
    let keep: std::collections::HashSet<String> = kept.iter().map(|d| name_of(d)).collect();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !keep.contains(name) {
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    for data in &kept {
        save(dir, data, "")?;
    }
    Ok((before, kept.len()))
}

/// Runs `target` once on each input in `dir` (no instrumentation needed): what the
/// committed corpus is checked with in `cargo test`.
pub fn replay(target: &Target, dir: &Path) -> Result<usize, FuzzError> {
    let inputs = read_corpus(dir)?;
    for data in &inputs {
        if let Err(message) = run_one(target, data) {
            return Err(FuzzError::Crash {
                target: target.name,
                saved: dir.to_owned(),
                message: format!("{message} (input {})", name_of(data)),
            });
        }
    }
    Ok(inputs.len())
}
