//! The SDK's webrtc-rs fixes reach an app outside this workspace: a project of its own (the
//! template in `tests/outside-app/`, copied to a temporary directory) that depends on
//! peer-sdk by path resolves webrtc-rs to our vendored, patched crates and nothing from the
//! registry, builds, and completes a call with a data channel message both ways through a
//! real signaling server on loopback.
//!
//! Slow the first time: the app is a workspace of its own, so it builds the whole stack
//! (webrtc-rs included) in its own target directory, `target/outside-app` (kept, so later
//! runs are incremental). `--offline`: it uses the registry cache our own build filled.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The crates.io names of the crates we vendor; none may be in the app's graph.
const UPSTREAM: [&str; 6] = [
    "webrtc",
    "rtc",
    "rtc-ice",
    "rtc-datachannel",
    "rtc-sctp",
    "rtc-dtls",
];
/// Our names for them; all must be, from `vendor/`.
const VENDORED: [&str; 6] = [
    "peer-sdk-webrtc",
    "peer-sdk-rtc",
    "peer-sdk-rtc-ice",
    "peer-sdk-rtc-datachannel",
    "peer-sdk-rtc-sctp",
    "peer-sdk-rtc-dtls",
];

/// The app's directory, removed when the test ends.
struct AppDir(PathBuf);

impl Drop for AppDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn peer_sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn repo_dir() -> PathBuf {
    peer_sdk_dir().parent().unwrap().to_path_buf()
}

/// Writes the app from its template into a fresh directory outside the repository, with
/// our `Cargo.lock` so that it resolves to the versions our build already has.
fn create_app() -> AppDir {
    let dir = std::env::temp_dir().join(format!("peer-sdk-outside-app-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let app = AppDir(dir);
    let template = peer_sdk_dir().join("tests/outside-app");
    std::fs::create_dir_all(app.0.join("src")).unwrap();
    let manifest = std::fs::read_to_string(template.join("Cargo.toml.in")).unwrap();
    let manifest = manifest.replace("@PEER_SDK@", peer_sdk_dir().to_str().unwrap());
    std::fs::write(app.0.join("Cargo.toml"), manifest).unwrap();
    std::fs::copy(template.join("src/main.rs"), app.0.join("src/main.rs")).unwrap();
    std::fs::copy(repo_dir().join("Cargo.lock"), app.0.join("Cargo.lock")).unwrap();
    app
}

/// The workspace's target directory (`CARGO_TARGET_TMPDIR` is its `tmp/`).
fn app_target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("outside-app")
}

/// Runs cargo in the app's directory; fails the test with cargo's output if it fails.
fn cargo(app: &AppDir, args: &[&str]) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(args)
        .current_dir(&app.0)
        .env("CARGO_TARGET_DIR", app_target_dir())
        // Line tables only, as the workspace's own dev profile (Cargo.toml): far less disk.
        .env("CARGO_PROFILE_DEV_DEBUG", "line-tables-only")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo {} failed in the outside app:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn an_app_outside_the_workspace_gets_the_patched_webrtc_rs_and_completes_a_call() {
    let app = create_app();

    // What the app resolves to: our vendored crates, no registry webrtc-rs.
    let metadata = cargo(&app, &["metadata", "--offline", "--format-version", "1"]);
    let metadata: serde_json::Value = serde_json::from_slice(&metadata.stdout).unwrap();
    let packages = metadata["packages"].as_array().unwrap();
    for package in packages {
        let name = package["name"].as_str().unwrap();
        assert!(
            !UPSTREAM.contains(&name),
            "the app resolves {name} {} from {}: the SDK's fixes do not reach it",
            package["version"],
            package["source"]
        );
    }
    let vendor = repo_dir().join("vendor");
    for name in VENDORED {
        let package = packages
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not in the app's graph"));
        let manifest = Path::new(package["manifest_path"].as_str().unwrap());
        assert!(
            package["source"].is_null() && manifest.starts_with(&vendor),
            "{name} comes from {} ({}), not from {}",
            package["source"],
            manifest.display(),
            vendor.display()
        );
    }

    cargo(&app, &["build", "--offline", "--quiet"]);
    let exe = app_target_dir().join("debug").join("outside-app");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let server = support::server().await;
        let run = tokio::process::Command::new(&exe)
            .arg(support::url(server.local_addr()))
            .kill_on_drop(true)
            .output();
        // The app gives up after 30 s itself.
        let output =
            test_support::wait::within_for(Duration::from_secs(40), "the outside app", run)
                .await
                .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "the outside app failed ({}):\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let setup = stdout
            .lines()
            .find(|l| l.starts_with("setup: "))
            .expect("the app prints the setup time");
        assert_eq!(stdout.lines().last(), Some("ok"), "{stdout}");
        // Measured, not asserted (docs/benchmarks.md has the numbers).
        eprintln!("outside app: {setup}");
    });
    // The app's own runtime ended with it; the test's ends here.
    runtime.shutdown_timeout(Duration::from_secs(1));
}
