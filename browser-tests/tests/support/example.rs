//! Running the SDK's example programs from a test (the browser tests and the NAT lab
//! include this file with `#[path]`): their stdout line by line, their stdin, Ctrl-C.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use super::WAIT;

/// A program (an SDK example, or anything run through `ip netns exec`) with its stdout
/// collected line by line.
pub struct Example {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
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
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = lines.clone();
        tokio::spawn(async move {
            let mut stdout = stdout.lines();
            while let Ok(Some(line)) = stdout.next_line().await {
                eprintln!("example: {line}");
                sink.lock().unwrap().push(line);
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
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(line) = self.lines.lock().unwrap().iter().find(|l| pred(l)) {
                return line.clone();
            }
            if Instant::now() >= deadline {
                let printed = self.lines();
                panic!("the example never printed {what}; it printed {printed:#?}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
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
        self.lines.lock().unwrap().clone()
    }

    /// Sends SIGINT (Ctrl-C): the examples hang up and exit.
    pub fn interrupt(&self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status();
        }
    }

    /// Waits for the example to exit on its own; returns whether it succeeded.
    pub async fn exit(mut self) -> bool {
        super::within("the example to exit", self.child.wait())
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
