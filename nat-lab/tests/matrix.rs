//! The whole matrix of `scripts/nat-lab matrix`: SDK ↔ SDK and browser ↔ SDK calls across
//! every pair of the lab's network conditions, each connected along its expected path.
//! docs/nat-lab.md has the rule, the reasoning per cell, and how long it takes.
#![allow(clippy::unwrap_used)]

mod support;

use nat_lab::matrix::{Kind, run_matrix};
use nat_lab::table::table;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cell_of_the_matrix_connects_along_its_expected_path() {
    let prefix = "nl8-";
    let kinds = [Kind::Sdk, Kind::Browser];
    let Some(run) = run_matrix(
        prefix,
        support::programs(),
        &support::pki_dir(prefix),
        &kinds,
    )
    .await
    else {
        return;
    };
    eprintln!("{}", table(&run.rows));
    eprintln!("the matrix took {:.0} s", run.took.as_secs_f64());
    let failed: Vec<String> = run.failed().map(nat_lab::table::row).collect();
    assert!(
        failed.is_empty(),
        "{} of {} cells did not connect as expected:\n{}",
        failed.len(),
        run.rows.len(),
        failed.join("\n")
    );
}
