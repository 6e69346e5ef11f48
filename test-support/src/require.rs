//! Tests that need a tool from a Debian package, Python modules, or root: without it a
//! test is skipped loudly, and fails under `CI=true` (CI installs everything and runs as
//! root).

/// Whether `tool` is installed. Missing: a panic under `CI=true`, else a loud skip.
pub fn require(tool: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    found
        || missing(&format!(
            "{tool} is not installed (Debian package {package}; .ci/run installs it)"
        ))
}

/// Whether `python` runs and imports every one of `modules`. If not: a panic under
/// `CI=true`, else a loud skip; `install` says how to get them (e.g. the setup script).
pub fn require_python_modules(python: &str, modules: &[&str], install: &str) -> bool {
    let imports = format!("import {}", modules.join(", "));
    let imported = std::process::Command::new(python)
        .args(["-c", &imports])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    imported
        || missing(&format!(
            "{python} cannot import {} ({install}; .ci/run does it)",
            modules.join(", ")
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
pub(crate) fn missing(msg: &str) -> bool {
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
    fn python_modules_are_imported_or_missing() {
        let under_ci = std::env::var("CI").as_deref() == Ok("true");
        let check = |modules: &'static [&'static str]| {
            std::panic::catch_unwind(|| require_python_modules("python3", modules, "none"))
        };
        if !require("python3", "python3") {
            return;
        }
        assert!(check(&["json"]).unwrap());
        match check(&["no_such_module_here"]) {
            Ok(found) => assert!(!under_ci && !found),
            Err(_) => assert!(under_ci),
        }
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
