//! The server under test as a child process: started pinned to CPUs with `taskset`, stopped
//! (killed and reaped) when dropped, so that no run leaves a server behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::BenchError;

/// How often [`ChildProcess::wait_until`] asks whether the server is ready.
const POLL: Duration = Duration::from_millis(50);

/// A running server under test. Dropping it stops the server.
pub struct ChildProcess {
    child: Child,
    binary: PathBuf,
}

impl ChildProcess {
    /// Starts `binary` with the arguments and stdio that `configure` sets. With `cpus` (a
    /// `taskset` CPU list such as `0` or `0,2`) it runs as `taskset -c <cpus> <binary> …`;
    /// taskset sets the affinity and then execs the binary, so the process id stays the
    /// server's own (and [`ChildProcess::cpu_seconds`] reads the server, not taskset).
    pub fn start(
        binary: &Path,
        cpus: Option<&str>,
        configure: impl FnOnce(&mut Command),
    ) -> Result<ChildProcess, BenchError> {
        let mut command = match cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus]).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        configure(&mut command);
        let pinned = cpus.map(|c| format!(" under taskset -c {c}"));
        let child = command.spawn().map_err(|e| {
            BenchError::Setup(format!(
                "cannot start {}{}: {e}",
                binary.display(),
                pinned.unwrap_or_default()
            ))
        })?;
        Ok(ChildProcess {
            child,
            binary: binary.to_owned(),
        })
    }

    /// Waits until `ready` says yes (it is asked every 50 ms). Fails if the process exits
    /// first (a bad flag, a busy port, a binary taskset could not run) or if `limit` passes;
    /// `what` says what was waited for, e.g. `"answer STUN"`.
    #[allow(clippy::disallowed_methods)] // a benchmark waits on the real clock
    pub async fn wait_until(
        &mut self,
        what: &str,
        limit: Duration,
        mut ready: impl AsyncFnMut() -> bool,
    ) -> Result<(), BenchError> {
        let binary = self.binary.display();
        let child = &mut self.child;
        let poll = async {
            loop {
                if ready().await {
                    return Ok(());
                }
                if let Some(status) = child.try_wait()? {
                    return Err(BenchError::Setup(format!(
                        "{binary} exited ({status}) before it would {what}"
                    )));
                }
                tokio::time::sleep(POLL).await;
            }
        };
        tokio::time::timeout(limit, poll)
            .await
            .map_err(|_| BenchError::Setup(format!("{binary} did not {what} within {limit:?}")))?
    }

    /// The process id (the server's, also when pinned).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// CPU time (user + system) the server has used so far, seconds.
    pub fn cpu_seconds(&self) -> Result<f64, BenchError> {
        crate::cpu_seconds(Path::new(&format!("/proc/{}/stat", self.id())))
    }
}

impl Drop for ChildProcess {
    /// Stops the server: SIGKILL, then reaps it so that no zombie is left.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(cpus: Option<&str>) -> ChildProcess {
        ChildProcess::start(Path::new("sleep"), cpus, |c| {
            c.arg("30");
        })
        .expect("start sleep")
    }

    #[test]
    fn a_pinned_process_keeps_its_own_pid_and_stops_on_drop() {
        let process = sleeper(Some("0"));
        let pid = process.id();
        // Once taskset has exec'd, the pid's command is the binary, not taskset.
        let comm = |pid| std::fs::read_to_string(format!("/proc/{pid}/comm"));
        let mut name = String::new();
        for _ in 0..500 {
            name = comm(pid).expect("comm");
            if name.trim() == "sleep" {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(name.trim(), "sleep");
        assert!(process.cpu_seconds().expect("cpu") >= 0.0);
        drop(process);
        assert!(comm(pid).is_err(), "process {pid} still exists");
    }

    #[tokio::test]
    async fn waiting_fails_when_the_process_exits_or_the_limit_passes() {
        let mut exits = ChildProcess::start(Path::new("false"), None, |_| {}).expect("start");
        let err = exits
            .wait_until("answer", Duration::from_secs(30), async || false)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("exited"), "{err}");

        let mut stays = sleeper(None);
        let err = stays
            .wait_until("answer", Duration::from_millis(200), async || false)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("did not answer within"), "{err}");
        stays
            .wait_until("answer", Duration::from_secs(30), async || true)
            .await
            .expect("ready at once");
    }

    #[test]
    fn a_missing_binary_is_a_setup_error() {
        let err = ChildProcess::start(Path::new("/nonexistent/server"), None, |_| {})
            .err()
            .expect("no such binary");
        assert!(err.to_string().contains("/nonexistent/server"), "{err}");
    }
}
