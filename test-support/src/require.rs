//! Tests that need a tool from a Debian package, or root: without it a test is skipped
//! loudly, and fails under `CI=true` (CI installs everything and runs as root).

/// Whether `tool` is installed. Missing: a panic under `CI=true`, else a loud skip.
pub fn require(tool: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    found
        || missing(&format!(
            "{tool} is not installed (Debian package {package}; .ci/run installs it)"
        ))
}

/// Whether this runs as root. If not: a panic under `CI=true` (CI runs as root), else a
/// loud skip; `why` says what needs it.
pub fn require_root(why: &str) -> bool {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    root || missing(&format!("{why} needs root; CI runs as root"))
}

/// A missing prerequisite: a panic under `CI=true`, else `SKIPPED` on stderr; false.
fn missing(msg: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_installed_tool_is_found() {
        assert!(require("sh", "dash"));
    }

    #[test]
    fn a_missing_tool_is_a_skip_or_under_ci_a_failure() {
        let under_ci = std::env::var("CI").as_deref() == Ok("true");
        let outcome = std::panic::catch_unwind(|| require("no-such-tool-here", "none"));
        match outcome {
            Ok(found) => assert!(!under_ci && !found),
            Err(_) => assert!(under_ci),
        }
    }
}
