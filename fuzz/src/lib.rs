//! Coverage-guided fuzzing on the stable toolchain (docs/fuzzing.md).
//!
//! cargo-fuzz needs a nightly compiler and libFuzzer's C++ sources, neither of which is
//! here; rustc's stable `-C passes=sancov-module` gives LLVM's SanitizerCoverage counters
//! all the same. [`coverage`] reads them, [`mutate`] changes inputs, [`engine`] keeps the
//! inputs that reach new code and stops at the first panic, and [`targets`] are what is
//! fuzzed. `scripts/fuzz` builds and runs it; `fuzz/tests/corpus.rs` replays the committed
//! corpora and runs a short instrumented pass of every target under `cargo test`.
#![warn(missing_docs)]

pub mod choices;
pub mod coverage;
pub mod engine;
pub mod mutate;
pub mod targets;
