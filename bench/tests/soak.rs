//! The soak's CI version: `signaling-bench --soak` for 60 seconds against the signaling
//! server built from its sources (this crate's `soak-signaling`), with sockets dropped
//! and sessions resumed. The run itself fails on a lost, duplicated or reordered message
//! or a failed call; this test also reads its table. Memory and descriptor slopes are
//! printed, not asserted: a minute is too short for a trend.

use std::process::Command;

/// The value cell of the table row whose measure starts with `measure`.
fn row<'a>(table: &'a str, measure: &str) -> &'a str {
    table
        .lines()
        .find_map(|l| l.strip_prefix(&format!("| {measure}")))
        .and_then(|rest| rest.split(" | ").nth(1))
        .unwrap_or_else(|| panic!("no row {measure:?} in\n{table}"))
}

/// The number before `word` in `cell`, e.g. `count(cell, "lost")` in "… 0 lost, …".
fn count(cell: &str, word: &str) -> u64 {
    let words: Vec<&str> = cell.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    words
        .windows(2)
        .find(|w| w[1] == word)
        .and_then(|w| w[0].parse().ok())
        .unwrap_or_else(|| panic!("no count of {word:?} in {cell:?}"))
}

#[test]
fn a_minute_of_calls_with_dropped_sockets_loses_nothing() {
    let output = Command::new(env!("CARGO_BIN_EXE_signaling-bench"))
        .args(["--soak", "--seconds", "60", "--calls", "40", "--seed", "16"])
        .args(["--server", env!("CARGO_BIN_EXE_soak-signaling")])
        .output()
        .expect("run signaling-bench");
    let table = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{table}");
    assert!(
        output.status.success(),
        "{}\n{table}\n{stderr}",
        output.status
    );

    let calls = row(&table, "calls");
    assert_eq!(count(calls, "done"), 40, "{calls}");
    assert_eq!(count(calls, "failed"), 0, "{calls}");
    let messages = row(&table, "signaling messages");
    assert!(count(messages, "sent") > 0, "{messages}");
    for problem in ["lost", "duplicated", "reordered"] {
        assert_eq!(count(messages, problem), 0, "{messages}");
    }
    assert_eq!(count(messages, "sent"), count(messages, "received"));
    // "<drops> / <resumes> (…)"
    let drops = row(&table, "socket drops / resumes");
    let numbers: Vec<u64> = drops
        .split_whitespace()
        .take(3)
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        numbers.len() == 2 && numbers[0] > 0 && numbers[0] == numbers[1],
        "{drops}"
    );
    assert!(count(row(&table, "datagrams"), "received") > 0);
}
