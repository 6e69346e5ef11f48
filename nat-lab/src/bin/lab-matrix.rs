//! Calls across every pair of network conditions of the NAT lab and prints a Markdown
//! table of what each call did; exits non-zero if any cell did not connect or took
//! another path than expected. Run as root through `scripts/nat-lab matrix`;
//! docs/nat-lab.md.

use std::process::ExitCode;

use clap::Parser;
use nat_lab::Programs;
use nat_lab::matrix::{Kind, run_matrix};
use nat_lab::table::table;

#[derive(Parser)]
struct Args {
    /// SDK ↔ SDK cells only.
    #[arg(long, conflicts_with = "browser_only")]
    sdk_only: bool,
    /// Browser ↔ SDK cells only.
    #[arg(long)]
    browser_only: bool,
    /// The lab's namespace prefix (NAT_LAB_PREFIX of scripts/nat-lab). A run first tears
    /// down any lab under its prefix: two runs at once need different ones.
    #[arg(long, default_value = "nlm-")]
    prefix: String,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    let kinds: &[Kind] = match (args.sdk_only, args.browser_only) {
        (true, _) => &[Kind::Sdk],
        (_, true) => &[Kind::Browser],
        _ => &[Kind::Sdk, Kind::Browser],
    };
    let pki_dir = std::env::temp_dir().join(format!("nat-lab-{}pki", args.prefix));
    let run = run_matrix(
        &args.prefix,
        Programs::beside_this_program(),
        &pki_dir,
        kinds,
    );
    // Ctrl-C drops the run: its calls' programs and browser are killed and the lab is
    // torn down (NatLab's drop) before the program exits.
    let run = tokio::select! {
        run = run => run,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("lab-matrix: interrupted; the lab is torn down");
            return ExitCode::from(130);
        }
    };
    let Some(run) = run else {
        eprintln!("lab-matrix: the lab cannot run here (see SKIPPED above)");
        return ExitCode::from(2);
    };
    println!("{}", table(&run.rows));
    let failed = run.failed().count();
    eprintln!(
        "lab-matrix: {} cells in {:.0} s, {failed} not connected or not as expected",
        run.rows.len(),
        run.took.as_secs_f64()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
