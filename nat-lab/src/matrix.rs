//! Calls across every pair of network conditions of the lab, in one lab and with one
//! signaling server: SDK ↔ SDK (unordered pairs) and browser ↔ SDK (Chromium always behind
//! NAT A, so ordered pairs). Each cell is bounded in time and fails on its own: a cell
//! that does not connect is reported, not a reason to stop.

use std::panic::AssertUnwindSafe;
use std::path::Path as FsPath;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use test_support::browser::browser_installed;

use crate::condition::{Condition, Path, expected};
use crate::lab::{NatLab, Programs};
use crate::pki::Pki;
use crate::sdk_call::Pair;

/// The longest a cell may take, setup, measurement and hang-up included (connecting alone
/// is bounded by [`crate::sdk_call::CONNECT`]).
pub const CELL: Duration = Duration::from_secs(90);

/// The longest a whole run may take; cells not started by then are reported as not run.
pub const RUN: Duration = Duration::from_secs(50 * 60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The SDK's `call` example behind A (lana) calls its `answer` example behind B (lanb).
    Sdk,
    /// Chromium behind A (lana) calls the SDK's `answer` example behind B (lanb).
    Browser,
}

/// One call of the matrix. For [`Condition::SameLan`], both conditions are `SameLan` and
/// the B side is lana2, on LAN A.
#[derive(Clone, Copy, Debug)]
pub struct Cell {
    pub kind: Kind,
    pub a: Condition,
    pub b: Condition,
}

/// What a cell's call did.
#[derive(Debug)]
pub enum Outcome {
    Connected {
        /// The A side's selected pair (the caller or the browser).
        a: Pair,
        /// The B side's (the SDK answerer's).
        b: Pair,
        setup: Duration,
        relayed: u64,
    },
    /// No media both ways in time, or another failure of the call: why.
    NotConnected(String),
}

#[derive(Debug)]
pub struct Row {
    pub cell: Cell,
    pub outcome: Outcome,
}

impl Row {
    pub fn expected(&self) -> Path {
        expected(self.cell.a, self.cell.b)
    }

    /// The path taken, if the call connected.
    pub fn path(&self) -> Option<Path> {
        match &self.outcome {
            Outcome::Connected { a, b, .. } if a.uses_relay() || b.uses_relay() => {
                Some(Path::Relay)
            }
            Outcome::Connected { .. } => Some(Path::Direct),
            Outcome::NotConnected(_) => None,
        }
    }

    /// Connected, along the expected path.
    pub fn ok(&self) -> bool {
        self.path() == Some(self.expected())
    }
}

/// The cells of `kinds`, the same LAN first for each kind.
pub fn cells(kinds: &[Kind]) -> Vec<Cell> {
    let mut cells = Vec::new();
    for &kind in kinds {
        cells.push(Cell {
            kind,
            a: Condition::SameLan,
            b: Condition::SameLan,
        });
        for (i, a) in Condition::NATS.into_iter().enumerate() {
            // SDK ↔ SDK: the two ends run the same code, so (a, b) stands for (b, a) too.
            let from = if kind == Kind::Sdk { i } else { 0 };
            for b in Condition::NATS[from..].iter().copied() {
                cells.push(Cell { kind, a, b });
            }
        }
    }
    cells
}

/// A whole run: its rows, and how long it took (the lab's setup and teardown included).
#[derive(Debug)]
pub struct Run {
    pub rows: Vec<Row>,
    pub took: Duration,
}

impl Run {
    /// The rows that did not connect, or not along their expected path.
    pub fn failed(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| !r.ok())
    }
}

/// Builds a lab under `prefix` with TURN over TLS (its PKI in `pki_dir`), runs the cells
/// of `kinds` (printing each row to stderr as it completes) and tears the lab down. `None`
/// when the lab or a browser cannot run here (a loud skip, or a failure under `CI=true`).
pub async fn run_matrix(
    prefix: &str,
    programs: Programs,
    pki_dir: &FsPath,
    kinds: &[Kind],
) -> Option<Run> {
    let started = Instant::now();
    let rows = run_cells(prefix, programs, pki_dir, kinds).await?;
    Some(Run {
        rows,
        took: started.elapsed(),
    })
}

async fn run_cells(
    prefix: &str,
    programs: Programs,
    pki_dir: &FsPath,
    kinds: &[Kind],
) -> Option<Vec<Row>> {
    if kinds.contains(&Kind::Browser) && !browser_installed() {
        return None;
    }
    let pki = Pki::new(pki_dir)?;
    let lab = NatLab::up(prefix, programs, Some(&pki)).await?;
    let deadline = Instant::now() + RUN;
    let mut rows = Vec::new();
    for cell in cells(kinds) {
        let outcome = if Instant::now() < deadline {
            run_cell(&lab, &pki, cell).await
        } else {
            Outcome::NotConnected(format!(
                "not run: the run's {} min are spent",
                RUN.as_secs() / 60
            ))
        };
        let row = Row { cell, outcome };
        eprintln!("matrix: {}", crate::table::row(&row));
        rows.push(row);
    }
    Some(rows)
}

/// Sets the NATs and makes the cell's call, within [`CELL`]. A failure of the call (a
/// panic of the harness: no media in time, a peer that exited) is its outcome; the
/// call's programs and browser are gone when this returns.
pub async fn run_cell(lab: &NatLab, pki: &Pki, cell: Cell) -> Outcome {
    lab.nat("a", cell.a.mode());
    lab.nat("b", cell.b.mode());
    let b_ns = if cell.a == Condition::SameLan {
        "lana2"
    } else {
        "lanb"
    };
    let call = async {
        match cell.kind {
            Kind::Sdk => {
                let c = lab.call(b_ns, &[], "lana", &[]).await;
                Outcome::Connected {
                    a: c.alice,
                    b: c.bob,
                    setup: c.setup,
                    relayed: c.relayed_in_call,
                }
            }
            Kind::Browser => {
                let c = lab.browser_call(pki, "lana", b_ns, None).await;
                Outcome::Connected {
                    a: c.browser,
                    b: c.bob,
                    setup: c.setup,
                    relayed: c.relayed_in_call,
                }
            }
        }
    };
    match tokio::time::timeout(CELL, AssertUnwindSafe(call).catch_unwind()).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(panic)) => Outcome::NotConnected(reason(panic.as_ref())),
        Err(_) => Outcome::NotConnected(format!("the cell took over {} s", CELL.as_secs())),
    }
}

/// The first line of a panic's message.
fn reason(panic: &(dyn std::any::Any + Send)) -> String {
    let msg = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("the harness panicked");
    msg.lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_has_every_pair_once() {
        let sdk = cells(&[Kind::Sdk]);
        assert_eq!(sdk.len(), 1 + 15);
        let browser = cells(&[Kind::Browser]);
        assert_eq!(browser.len(), 1 + 25);
        assert_eq!(cells(&[Kind::Sdk, Kind::Browser]).len(), 42);
        // Unordered for the SDK: never both (a, b) and (b, a).
        for c in &sdk {
            let same = |d: &&Cell| (d.a, d.b) == (c.a, c.b) || (d.a, d.b) == (c.b, c.a);
            assert_eq!(sdk.iter().filter(same).count(), 1, "{c:?}");
        }
    }

    #[test]
    fn a_panic_becomes_its_first_line() {
        let panic = std::panic::catch_unwind(|| panic!("timed out waiting for media\nmore"));
        assert_eq!(
            reason(panic.unwrap_err().as_ref()),
            "timed out waiting for media"
        );
    }
}
