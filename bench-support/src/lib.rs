//! What the load generators share (`signaling-bench`, `turn-bench`): the server under test
//! as a child process pinned to CPUs ([`ChildProcess`]), the CPU time a process has used
//! ([`cpu_seconds`], read from `/proc/<pid>/stat`), and one error type ([`BenchError`]).
//!
//! Linux only: CPU time comes from procfs, pinning from `taskset` (util-linux).

mod cpu;
mod error;
mod process;

pub use cpu::{cpu_seconds, own_cpu_seconds};
pub use error::BenchError;
pub use process::ChildProcess;
