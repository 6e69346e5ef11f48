//! The committed corpora, replayed on every `cargo test`, and a short coverage-guided pass
//! of every target with the instrumented build (`scripts/fuzz`): CI's fuzzing smoke test.
//! The long runs (30 CPU-minutes a target) and their figures are in docs/fuzzing.md.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use fuzz::engine;
use fuzz::targets::TARGETS;

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name)
}

#[test]
fn every_committed_input_runs_clean() {
    for t in TARGETS {
        let n = engine::replay(t, &corpus(t.name)).unwrap_or_else(|e| panic!("{e}"));
        assert!(n >= 20, "{}: only {n} committed inputs", t.name);
        eprintln!("{}: {n} committed inputs replayed", t.name);
    }
}

/// Builds the instrumented binary (about two minutes on two cores, in its own target
/// directory) and fuzzes each target for a few CPU-seconds from a copy of its corpus.
#[test]
fn every_target_fuzzes_with_coverage() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let built = Command::new("bash")
        .arg(root.join("scripts/fuzz"))
        .arg("build")
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "scripts/fuzz build failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let binary = root.join(String::from_utf8(built.stdout).unwrap().trim());
    let work = tempfile::tempdir().unwrap();
    for t in TARGETS {
        let copy = work.path().join(t.name);
        std::fs::create_dir_all(&copy).unwrap();
        for entry in std::fs::read_dir(corpus(t.name)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, copy.join(path.file_name().unwrap())).unwrap();
        }
        let out = Command::new(&binary)
            .current_dir(root)
            .args(["run", t.name, "--cpu-seconds", "5", "--seed"])
            .arg(std::process::id().to_string())
            .arg("--corpus")
            .arg(&copy)
            .arg("--artifacts")
            .arg(work.path().join("artifacts"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {stdout}\n{}",
            t.name,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("no failure"), "{stdout}");
        eprint!("{stdout}");
    }
}
