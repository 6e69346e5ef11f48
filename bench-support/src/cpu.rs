//! CPU time of a process, from `/proc/<pid>/stat` (proc(5)).

use std::path::Path;

use crate::BenchError;

/// proc(5) numbers the fields of `/proc/<pid>/stat` from 1: (1) pid, (2) comm, (3) state, …,
/// (14) utime and (15) stime, the time spent in user and kernel mode, in clock ticks.
const UTIME: usize = 14;
const STIME: usize = 15;

/// CPU time (user + system) the process whose stat file is `path` has used so far, seconds.
///
/// A file that cannot be read, or whose utime or stime is missing or not a number, is an
/// error that names the file and the field: a benchmark must not report 0 s instead.
pub fn cpu_seconds(path: &Path) -> Result<f64, BenchError> {
    let problem = |problem| BenchError::Proc {
        path: path.to_owned(),
        problem,
    };
    let stat = std::fs::read_to_string(path).map_err(|e| problem(format!("cannot read: {e}")))?;
    let ticks = cpu_ticks(&stat).map_err(problem)?;
    Ok(ticks as f64 / rustix::param::clock_ticks_per_second() as f64)
}

/// CPU time (user + system) this process has used so far, seconds.
pub fn own_cpu_seconds() -> Result<f64, BenchError> {
    cpu_seconds(Path::new("/proc/self/stat"))
}

/// utime + stime from the text of a stat file, in clock ticks.
fn cpu_ticks(stat: &str) -> Result<u64, String> {
    // Field 2 is the command name in parentheses, and may itself hold spaces and ')'; it is
    // the only field that can, so the fields are counted from the last ')'. What follows it
    // starts with field 3, so field n is at index n - 3.
    let (_, rest) = stat
        .rsplit_once(')')
        .ok_or("no ')' closing field 2 (comm)")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize, name: &str| -> Result<u64, String> {
        let text = fields
            .get(n - 3)
            .ok_or_else(|| format!("field {n} ({name}) is missing"))?;
        text.parse()
            .map_err(|_| format!("field {n} ({name}) is not a count of clock ticks: {text:?}"))
    };
    Ok(field(UTIME, "utime")? + field(STIME, "stime")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stat line as the kernel writes it, for a command named `a b) c`.
    const ODD_COMM: &str =
        "123 (a b) c) S 1 123 123 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1000 1000 10";

    #[test]
    fn counts_fields_after_a_comm_with_spaces_and_parentheses() {
        assert_eq!(cpu_ticks(ODD_COMM), Ok(300));
    }

    #[test]
    fn a_missing_or_bad_field_is_an_error_that_names_it() {
        let cut = "123 (a b) c) S 1 123 123 0 -1 4194560 100 0 0 0 250";
        assert_eq!(cpu_ticks(cut), Err("field 15 (stime) is missing".into()));
        let bad = ODD_COMM.replace(" 250 ", " x ");
        let err = cpu_ticks(&bad).unwrap_err();
        assert!(err.starts_with("field 14 (utime)"), "{err}");
        assert!(cpu_ticks("123 (truncated").is_err());
    }

    #[test]
    fn reads_this_process() {
        let seconds = own_cpu_seconds().expect("/proc/self/stat");
        assert!(seconds >= 0.0, "{seconds}");
        let ticks = cpu_ticks(&std::fs::read_to_string("/proc/self/stat").expect("read"));
        assert!(ticks.is_ok(), "{ticks:?}");
    }

    #[test]
    fn an_unreadable_file_is_an_error_that_names_it() {
        let err = cpu_seconds(Path::new("/proc/0/stat")).unwrap_err();
        assert!(
            err.to_string().starts_with("/proc/0/stat: cannot read"),
            "{err}"
        );
    }
}
