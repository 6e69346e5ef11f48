//! The matrix as a Markdown table, to paste into docs/nat-lab.md.

use std::time::Duration;

use crate::matrix::{Kind, Outcome, Row};

const HEADER: &str = "| kind | NAT A | NAT B | expected | connected | A's pair | B's pair | setup | relayed in 2 s | outcome |\n\
                      |---|---|---|---|---|---|---|---|---|---|\n";

/// Every row under one header.
pub fn table(rows: &[Row]) -> String {
    let mut out = HEADER.to_owned();
    for r in rows {
        out.push_str(&row(r));
        out.push('\n');
    }
    out
}

/// One row, without the line break.
pub fn row(r: &Row) -> String {
    let kind = match r.cell.kind {
        Kind::Sdk => "SDK ↔ SDK",
        Kind::Browser => "browser ↔ SDK",
    };
    let head = format!("| {kind} | {} | {} | {} ", r.cell.a, r.cell.b, r.expected());
    let tail = match &r.outcome {
        Outcome::Connected {
            a,
            b,
            setup,
            relayed,
        } => {
            let verdict = match r.path() {
                Some(p) if p == r.expected() => "as expected".to_owned(),
                Some(p) => format!("**differs: {p}**"),
                None => unreachable!("a connected row has a path"),
            };
            format!(
                "| yes | {a} | {b} | {} | {} | {verdict} |",
                duration(*setup),
                bytes(*relayed)
            )
        }
        Outcome::NotConnected(why) => {
            format!(
                "| **no** | | | | | **not connected**: {} |",
                why.replace('|', "/")
            )
        }
    };
    head + &tail
}

/// Milliseconds under a second (a call on one LAN sets up in tens of them), else seconds.
fn duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn bytes(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{} KB", n / 1_000),
        _ => format!("{:.1} MB", n as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::Condition;
    use crate::matrix::Cell;
    use crate::sdk_call::Pair;

    fn pair(local: &str, remote: &str, relay: Option<&str>) -> Pair {
        Pair {
            local: local.into(),
            remote: remote.into(),
            relay: relay.map(Into::into),
        }
    }

    #[test]
    fn rows_say_what_happened_against_what_was_expected() {
        let cell = Cell {
            kind: Kind::Sdk,
            a: Condition::Sym,
            b: Condition::Sym,
        };
        let relayed = Row {
            cell,
            outcome: Outcome::Connected {
                a: pair("relay", "prflx", Some("udp")),
                b: pair("host", "relay", None),
                setup: Duration::from_millis(1840),
                relayed: 190_400,
            },
        };
        assert_eq!(
            row(&relayed),
            "| SDK ↔ SDK | sym | sym | relay | yes | relay/prflx (udp) | host/relay | 1.8 s | 190 KB | as expected |"
        );
        let direct = Row {
            cell,
            outcome: Outcome::Connected {
                a: pair("host", "srflx", None),
                b: pair("host", "prflx", None),
                setup: Duration::from_micros(46_570),
                relayed: 0,
            },
        };
        assert!(row(&direct).ends_with("| 46 ms | 0 B | **differs: direct** |"));
        let failed = Row {
            cell,
            outcome: Outcome::NotConnected("timed out waiting for media both ways".into()),
        };
        assert!(row(&failed).contains("| **no** |"));
        assert_eq!(table(&[failed]).lines().count(), 3);
    }
}
