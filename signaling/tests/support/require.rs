//! Tests that need a tool from a Debian package (the browser tests include this file with
//! `#[path]`).

/// Whether `tool` is installed. Missing: a panic under `CI=true`, else a loud skip.
pub fn require(tool: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    let msg = format!("{tool} is not installed (Debian package {package}; .ci/run installs it)");
    match (found, std::env::var("CI").as_deref()) {
        (true, _) => true,
        (false, Ok("true")) => panic!("{msg}"),
        (false, _) => {
            eprintln!("SKIPPED: {msg}");
            false
        }
    }
}
