//! Golden fixtures (`protocol/fixtures/{client,server}/*.json`): one file per message shape.
//! Every file must parse, and serializing the parsed message must give back the same JSON,
//! so the files stay an exact picture of the wire.
//!
//! These tests are the only reader of the files today. The web demo
//! (`web-demo/signaling-client.js`) has no tests of its own; `browser-tests` drive it in
//! Chromium against a real server, which checks it end to end but not against these files.

use std::path::Path;

use serde_json::Value;
use signaling_protocol::{parse_client_message, parse_server_message};

fn fixtures(dir: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).expect("read fixture"),
            )
        })
        .collect()
}

fn same_json(a: &str, b: &str) -> bool {
    serde_json::from_str::<Value>(a).ok() == serde_json::from_str::<Value>(b).ok()
}

#[test]
fn client_fixtures_round_trip() {
    let all = fixtures("client");
    assert!(all.len() >= 9, "one fixture per client message");
    for (name, text) in all {
        let msg = parse_client_message(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = serde_json::to_string(&msg).expect("serialize");
        assert!(same_json(&text, &again), "{name}: {again}");
    }
}

#[test]
fn server_fixtures_round_trip() {
    let all = fixtures("server");
    assert!(all.len() >= 10, "one fixture per server message");
    for (name, text) in all {
        let msg = parse_server_message(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = serde_json::to_string(&msg).expect("serialize");
        assert!(same_json(&text, &again), "{name}: {again}");
    }
}
