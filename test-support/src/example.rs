//! Running the SDK's example programs from a test (the browser tests and the NAT lab):
//! their stdout line by line, their stdin, Ctrl-C.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use crate::wait::within_for;

/// How long a test waits for a line of a program, or for it to exit.
pub const WAIT: Duration = Duration::from_secs(30);

/// A program (an SDK example, or anything run through `ip netns exec`) with its stdout
/// collected line by line.
pub struct Example {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Each line with the moment it was read.
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Example {
    pub fn start(exe: &str, args: &[&str]) -> Example {
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {exe}: {e}"));
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let lines: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let sink = lines.clone();
        tokio::spawn(async move {
            let mut stdout = stdout.lines();
            while let Ok(Some(line)) = stdout.next_line().await {
                eprintln!("example: {line}");
                sink.lock().unwrap().push((Instant::now(), line));
            }
        });
        Example {
            child,
            stdin,
            lines,
        }
    }

    /// Waits for a line for which `pred` holds; returns it.
    pub async fn wait_line(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_line_for(WAIT, what, pred).await
    }

    /// [`wait_line`](Self::wait_line) with a limit of its own (a long transfer, say).
    pub async fn wait_line_for(
        &self,
        limit: Duration,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some((_, line)) = self.lines.lock().unwrap().iter().find(|(_, l)| pred(l)) {
                return line.clone();
            }
            if Instant::now() >= deadline {
                let printed = self.lines();
                panic!("the example never printed {what}; it printed {printed:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the program prints one more line for which `pred` holds than it had
    /// printed when called (the next status line, say).
    pub async fn wait_another(&self, what: &str, pred: impl Fn(&str) -> bool) {
        let count = || {
            self.lines
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, l)| pred(l))
                .count()
        };
        let seen = count();
        within_for(WAIT, what, async {
            while count() <= seen {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
    }

    /// Types a chat line into the example.
    pub async fn say(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin
            .write_all(format!("{text}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
    }

    /// Every line printed so far.
    pub fn lines(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap();
        lines.iter().map(|(_, l)| l.clone()).collect()
    }

    /// When the first line for which `pred` holds was read, if one has been.
    pub fn first_seen(&self, pred: impl Fn(&str) -> bool) -> Option<Instant> {
        let lines = self.lines.lock().unwrap();
        lines.iter().find(|(_, l)| pred(l)).map(|(at, _)| *at)
    }

    /// Sends SIGINT (Ctrl-C): the examples hang up and exit.
    pub fn interrupt(&self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status();
        }
    }

    /// Kills the program and waits until it is gone (its ports are free again).
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = within_for(WAIT, "the program to die", self.child.wait()).await;
    }

    /// Waits for the example to exit on its own; returns whether it succeeded.
    pub async fn exit(mut self) -> bool {
        within_for(WAIT, "the example to exit", self.child.wait())
            .await
            .unwrap()
            .success()
    }
}

/// A status line of the examples with RTP packets received: "... N RTP packets in".
pub fn receives_rtp(line: &str) -> bool {
    line.strip_suffix(" RTP packets in")
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .is_some_and(|n| n > 0)
}

/// The examples' line for the call's first RTP packet (of any track), printed as it arrives.
pub fn first_rtp(line: &str) -> bool {
    line.starts_with("first RTP packet in")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_read_and_stdin_is_written() {
        let script = "echo ready; read line; echo \"got $line\"";
        let mut ex = Example::start("sh", &["-c", script]);
        ex.wait_line("ready", |l| l == "ready").await;
        ex.say("one").await;
        ex.wait_line("the echo", |l| l == "got one").await;
        assert_eq!(ex.lines(), ["ready", "got one"]);
        let ready = ex.first_seen(|l| l == "ready").unwrap();
        assert!(ready <= ex.first_seen(|l| l.starts_with("got")).unwrap());
        assert_eq!(ex.first_seen(|l| l == "never"), None);
        assert!(ex.exit().await);
    }

    #[tokio::test]
    async fn another_line_is_one_printed_after_the_call() {
        let ex = Example::start(
            "sh",
            &["-c", "for i in 1 2 3; do echo tick; sleep 0.1; done"],
        );
        ex.wait_line("a tick", |l| l == "tick").await;
        ex.wait_another("another tick", |l| l == "tick").await;
        let ticks = ex.lines().len();
        assert!(ticks >= 2, "{ticks}");
        assert!(ex.exit().await);
    }

    #[test]
    fn status_lines_with_rtp_in() {
        assert!(receives_rtp("path host/host, 12 RTP packets in"));
        assert!(!receives_rtp("path host/host, 0 RTP packets in"));
        assert!(!receives_rtp("waiting for calls"));
        assert!(first_rtp("first RTP packet in (audio/opus)"));
        assert!(!receives_rtp("first RTP packet in (audio/opus)"));
    }
}
