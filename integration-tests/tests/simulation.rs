//! The seeded fault simulation on a fixed set of seeds (more: `cargo run --release -p
//! integration-tests --bin simulate -- --seeds N`).

use integration_tests::simulation::workload_kinds;
use integration_tests::simulation::{Options, run};

#[test]
fn the_workload_covers_every_transaction_kind() {
    let mut ours: Vec<&str> = workload_kinds().to_vec();
    let mut node: Vec<&str> = domain::kinds::KINDS.iter().map(|k| k.name).collect();
    ours.sort_unstable();
    node.sort_unstable();
    assert_eq!(ours, node);
}

#[test]
fn fixed_seeds_survive_faults_and_crashes() {
    let options = Options::default();
    for seed in [1, 2, 3] {
        let report = run(seed, &options);
        // The workload did reach the node through its faults: most kinds committed.
        assert!(report.acknowledged > 40, "seed {seed}: {report:?}");
        assert!(report.crashes >= options.crashes, "seed {seed}: {report:?}");
        assert!(report.kinds_acknowledged >= 12, "seed {seed}: {report:?}");
        assert!(report.blocks > 1, "seed {seed}: {report:?}");
    }
}
